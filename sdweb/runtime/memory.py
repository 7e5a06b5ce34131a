"""Freeing memory, recognising out-of-memory errors (and the one lower-memory retry), A1111's /sdapi/v1/memory.

The device string always comes from the RuntimePlan; this module never decides which device exists.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import os
import resource
import sys
import threading
from collections.abc import Iterator
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

    from sdweb.runtime.policy import RuntimePlan

log = logging.getLogger(__name__)

_OOM_MESSAGES = (
    "out of memory",  # CUDA ("CUDA out of memory"), MPS ("MPS backend out of memory"), HIP
    "can't allocate memory",  # CPU: "DefaultCPUAllocator: can't allocate memory"
    "cudnn_status_alloc_failed",
)


def free_memory(plan_device: str) -> None:
    """Collect garbage and return cached allocator blocks to the driver for the plan's device, and freed
    heap pages to the OS (glibc keeps them otherwise, so RSS would grow with every model switch)."""
    gc.collect()
    trim_heap()
    try:
        if plan_device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.ipc_collect()
        elif plan_device == "mps":
            torch.mps.empty_cache()
    except Exception as error:  # freeing is best effort: an OOM handler must not raise a second error
        log.warning("could not empty the %s cache: %s", plan_device, error)


def trim_heap() -> bool:
    """glibc's malloc_trim(0): hand free heap memory back to the OS. False where there is no glibc."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_GLIBC_DEFAULT_MMAP_MAX = 65536
HEAP_TRIM_THRESHOLD = 512 << 20
_heap_mode = {"kept": False, "loads": 0}  # keep_large_blocks_in_heap applied; loads inside large_blocks_mapped
_heap_mode_lock = threading.Lock()


def keep_large_blocks_in_heap() -> bool:
    """Let glibc serve large blocks from the heap and keep up to HEAP_TRIM_THRESHOLD free at its top, so that the
    buffers a UNet forward allocates afresh each call (oneDNN's reordered copy of each conv weight: 56 to 112 MiB
    for SD 1.5) reuse the pages of the previous call instead of being mmap'd, faulted in zero-filled and unmapped
    every step (glibc mmaps any block over 32 MiB that no free heap block fits). One arena, so the queue's worker
    threads share that heap. Measured in docs/benchmarks.md (cold start, 2026-12-04 18:30): the first image's
    minor faults 2.47 M -> 0.23 M, system time 11 s -> 0.7 s. The heap's free middle still goes back to the OS by
    trim_heap (after a load, on free_memory). False where there is no glibc."""
    libc = _glibc()
    if libc is None:
        return False
    with _heap_mode_lock:
        _heap_mode["kept"] = all(libc.mallopt(param, value) == 1 for param, value in
                                 ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD), (_M_ARENA_MAX, 1)))
        return _heap_mode["kept"]


@contextlib.contextmanager
def large_blocks_mapped() -> Iterator[None]:
    """While a model loads, large blocks are mmap'd again (glibc's default), so the load's read buffers and
    conversion temporaries go back to the OS when freed instead of staying in the heap, where the next ones
    would not always fit: with them in the heap the peak while loading grew from 1.11x to 1.15x the weights for
    SD 1.5 and from 1.08x to 1.20x for SDXL (docs/benchmarks.md). Sampling keeps them in the heap. Loads on
    several threads count: the heap mode comes back when the last one ends."""
    libc = _glibc()
    with _heap_mode_lock:
        switch = libc is not None and _heap_mode["kept"]
        if switch:
            _heap_mode["loads"] += 1
            if _heap_mode["loads"] == 1:
                libc.mallopt(_M_MMAP_MAX, _GLIBC_DEFAULT_MMAP_MAX)
    try:
        yield
    finally:
        if switch:
            with _heap_mode_lock:
                _heap_mode["loads"] -= 1
                if _heap_mode["loads"] == 0 and _heap_mode["kept"]:
                    libc.mallopt(_M_MMAP_MAX, 0)


@functools.cache
def _glibc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return None


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not known for known in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def oom_in_vae(error: BaseException) -> bool:
    """Whether an out-of-memory error was raised inside a VAE (decode or encode), judged by its traceback:
    diffusers keeps every autoencoder under diffusers/models/autoencoders/."""
    for link in _chain(error):
        frame = link.__traceback__
        while frame is not None:
            path = PurePath(frame.tb_frame.f_code.co_filename)
            if "autoencoders" in path.parts or path.name.startswith("autoencoder"):
                return True
            frame = frame.tb_next
    return False


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures, also when wrapped as the cause of another error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, torch.OutOfMemoryError | MemoryError):
            return True
        if isinstance(current, RuntimeError) and any(text in str(current).lower() for text in _OOM_MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


def process_rss_bytes() -> int:
    """This process's resident memory (current from /proc; the peak from getrusage where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS reports bytes, Linux KiB


def total_ram_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 0


def available_ram_bytes() -> int | None:
    """RAM a new allocation can still get without the OOM killer: MemAvailable plus free swap (Linux); None
    where that is unknown (then no check is made)."""
    fields: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in ("MemAvailable", "SwapFree"):
                    fields[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if "MemAvailable" not in fields:
        return None
    return fields["MemAvailable"] + fields.get("SwapFree", 0)


def memory_stats(device: str) -> dict[str, Any]:
    """The body of A1111's GET /sdapi/v1/memory for the plan's device.

    As in A1111, ``ram.used`` is this process's resident size and ``ram.free`` is total minus that.
    """
    total = total_ram_bytes()
    used = process_rss_bytes()
    ram = {"free": max(total - used, 0), "used": used, "total": total}
    return {"ram": ram, "cuda": _cuda_stats(device)}


def _cuda_stats(device: str) -> dict[str, Any]:
    if not device.startswith("cuda"):
        return {"error": "unavailable"}
    try:
        free, total = torch.cuda.mem_get_info(device)
        stats = torch.cuda.memory_stats(device)
    except Exception as error:  # a lost device must not break a status endpoint
        return {"error": f"{error}"}

    def pair(key: str) -> dict[str, int]:
        return {"current": int(stats.get(f"{key}.all.current", 0)), "peak": int(stats.get(f"{key}.all.peak", 0))}

    return {
        "system": {"free": int(free), "used": int(total - free), "total": int(total)},
        "active": pair("active_bytes"),
        "allocated": pair("allocated_bytes"),
        "reserved": pair("reserved_bytes"),
        "inactive": pair("inactive_split_bytes"),
        "events": {"retries": int(stats.get("num_alloc_retries", 0)), "oom": int(stats.get("num_ooms", 0))},
    }


# ------------------------------------------------------------------------------- out of memory: one retry

OOM_MODES = ("vae_tiling", "model_offload")  # lower-memory modes, in the order they are tried
OOM_MODE_LABELS = {"vae_tiling": "VAE tiling", "model_offload": "model CPU offload"}


def oom_fallback_modes(plan: RuntimePlan, *, is_sdxl: bool, in_vae: bool, vae_tiling_on: bool) -> tuple[str, ...]:
    """The lower-memory modes worth one retry after an out-of-memory error; () when none would help.

    An OOM in the VAE (decode/encode) is retried with VAE tiling. One in the UNet or text encoder is retried
    with model CPU offload (CUDA only, where no offload is in use; VAE tiling with it)."""
    if in_vae:
        return () if vae_tiling_on else ("vae_tiling",)
    if plan.device.startswith("cuda") and plan.offload_for(is_sdxl) == "none":
        return ("model_offload",) if vae_tiling_on else ("vae_tiling", "model_offload")
    return ()


@contextlib.contextmanager
def lower_memory_modes(pipe: DiffusionPipeline, plan: RuntimePlan, modes: tuple[str, ...]) -> Iterator[None]:
    """Run with these OOM_MODES on, then restore the plan's own placement (the modes are for one retry)."""
    unknown = set(modes) - set(OOM_MODES)
    if unknown:
        raise ValueError(f"unknown low-memory mode(s) {sorted(unknown)}; known: {', '.join(OOM_MODES)}")
    if "vae_tiling" in modes:
        pipe.vae.enable_tiling()
    if "model_offload" in modes:
        pipe.enable_model_cpu_offload(device=plan.device)
    try:
        yield
    finally:
        if "model_offload" in modes:
            pipe.remove_all_hooks()
            pipe.to(plan.device)
        if "vae_tiling" in modes:
            pipe.vae.disable_tiling()


def model_cache_budget(plan_device: str) -> int:
    """How many bytes of loaded checkpoints the model cache may keep: 80% of the device's memory for a CUDA
    device, else 60% of the machine's RAM (the models live there, and the OS and the job need the rest)."""
    if plan_device.startswith("cuda"):
        with contextlib.suppress(RuntimeError, AssertionError):
            return int(torch.cuda.get_device_properties(torch.device(plan_device)).total_memory * 0.8)
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): no byte bound, the count limit applies
        return 1 << 62
    return int(ram * 0.6)


def module_bytes(modules: Any) -> int:
    """Bytes of the parameters and buffers of the torch modules among `modules` (a pipeline's components)."""
    total = 0
    for module in modules:
        if isinstance(module, torch.nn.Module):
            total += sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
    return total
