"""A1111's `modules.devices`: the device and dtype sdweb's runtime plan chose (runtime/policy.py decides)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sdweb.compat.a1111.world import WORLD

cpu = "cpu"


def _plan() -> Any:
    services = WORLD.services
    return getattr(services, "runtime_plan", None) if services is not None else None


def _device() -> Any:
    import torch

    plan = _plan()
    return torch.device(getattr(plan, "device", "cpu")) if plan is not None else torch.device("cpu")


def _dtype() -> Any:
    import torch

    plan = _plan()
    return getattr(plan, "unet_compute_dtype", None) or torch.float32


def get_device_for(task: str) -> Any:
    return _device()


def get_optimal_device() -> Any:
    return _device()


def get_optimal_device_name() -> str:
    return str(_device())


def torch_gc() -> None:
    """Free cached memory on the plan's device (runtime.memory does it)."""
    from sdweb.runtime.memory import free_memory

    free_memory(str(getattr(_plan(), "device", "cpu")))


@contextlib.contextmanager
def autocast(disable: bool = False) -> Iterator[None]:
    yield


@contextlib.contextmanager
def without_autocast(disable: bool = False) -> Iterator[None]:
    yield


def __getattr__(name: str) -> Any:
    if name in ("device", "device_interrogate", "device_gfpgan", "device_esrgan", "device_codeformer"):
        return _device()
    if name in ("dtype", "dtype_unet", "dtype_inference"):
        return _dtype()
    if name == "dtype_vae":
        return getattr(_plan(), "vae_dtype", None) or _dtype()
    raise AttributeError(f"module 'modules.devices' has no attribute {name!r}")
