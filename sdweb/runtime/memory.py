"""Freeing memory, recognising out-of-memory errors, and A1111's /sdapi/v1/memory numbers.

The device string always comes from the RuntimePlan; this module never decides which device exists.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import sys
from typing import Any

import torch

log = logging.getLogger(__name__)

_OOM_MESSAGES = (
    "out of memory",  # CUDA ("CUDA out of memory"), MPS ("MPS backend out of memory"), HIP
    "can't allocate memory",  # CPU: "DefaultCPUAllocator: can't allocate memory"
    "cudnn_status_alloc_failed",
)


def free_memory(plan_device: str) -> None:
    """Collect garbage and return cached allocator blocks to the driver for the plan's device."""
    gc.collect()
    try:
        if plan_device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.ipc_collect()
        elif plan_device == "mps":
            torch.mps.empty_cache()
    except Exception as error:  # freeing is best effort: an OOM handler must not raise a second error
        log.warning("could not empty the %s cache: %s", plan_device, error)


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
