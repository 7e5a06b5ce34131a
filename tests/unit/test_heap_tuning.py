"""glibc keeps large freed blocks in the heap once the app state is built, so a buffer allocated afresh on every
UNet step (oneDNN's reordered copy of a conv weight) reuses the previous step's pages instead of being mmap'd and
faulted in zero-filled each time (docs/benchmarks.md, cold start). Checked in fresh processes: the allocator
settings are process-wide."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

SCRIPT = """
import ctypes, resource, sys

if sys.argv[1] == "direct":
    from sdweb.runtime.memory import keep_large_blocks_in_heap
    assert keep_large_blocks_in_heap()
elif sys.argv[1] in ("loading", "after-load"):
    from sdweb.runtime.memory import keep_large_blocks_in_heap, large_blocks_mapped
    assert keep_large_blocks_in_heap()
    load = large_blocks_mapped()
    load.__enter__()
    if sys.argv[1] == "after-load":
        with large_blocks_mapped():  # a nested load ends first; the heap mode comes back with the last
            pass
        load.__exit__(None, None, None)
elif sys.argv[1] == "app":
    from sdweb.cli import parse_options
    from sdweb.state import build_app_state
    build_app_state(parse_options(["--data-dir", sys.argv[2], "--no-hashing"], {})).queue.shutdown()

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def use_64_mib():
    block = libc.malloc(64 << 20)
    ctypes.memset(block, 1, 64 << 20)  # touch every page
    libc.free(block)

use_64_mib()  # the first use faults its pages in either way
faults = []
for _ in range(3):  # the fewest of three: the app's own threads may take a piece of the freed block once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    use_64_mib()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print("FAULTS", min(faults))
"""


def _second_use_faults(tmp_path, mode: str) -> int:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    for name in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(tmp_path / "data")], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("FAULTS")))


def test_a_large_block_freed_and_allocated_again_reuses_its_pages(tmp_path):
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert _second_use_faults(tmp_path, "default") > pages // 2  # glibc's default: mmap'd afresh, every page faults
    assert _second_use_faults(tmp_path, "direct") < pages // 20
    assert _second_use_faults(tmp_path, "app") < pages // 20  # build_app_state sets it


def test_a_model_load_maps_large_blocks_and_sampling_keeps_them_in_the_heap(tmp_path):
    """During a load (large_blocks_mapped) glibc mmaps large blocks again, so read buffers leave the heap when
    freed (the load's peak stays near the weights); when the last load ends the heap keeps them again."""
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert _second_use_faults(tmp_path, "loading") > pages // 2
    assert _second_use_faults(tmp_path, "after-load") < pages // 20
