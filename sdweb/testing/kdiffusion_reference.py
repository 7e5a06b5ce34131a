"""k-diffusion (the library A1111 pins) as a test-only reference, driven by A1111's rules.

k-diffusion is a dev dependency installed with ``--no-deps``: its package ``__init__`` imports torchvision,
kornia, clean-fid and more, so only ``k_diffusion/sampling.py`` and ``external.py`` are loaded, with a
two-function stand-in for ``k_diffusion.utils`` (the only helper they use is ``append_dims``). A1111 replaces
``k_diffusion.sampling.torch`` with an object whose ``randn_like`` returns its per-image generators' next
noise; :func:`a1111_noise` does the same for one reference run and restores the module afterwards.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

PACKAGE = "k_diffusion"


def available() -> bool:
    # once loaded, sys.modules holds load()'s spec-less stand-in package, which find_spec refuses
    return PACKAGE in sys.modules or importlib.util.find_spec(PACKAGE) is not None


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * missing]


def load() -> tuple[types.ModuleType, types.ModuleType]:
    """(k_diffusion.sampling, k_diffusion.external), loaded without the package's __init__."""
    if f"{PACKAGE}.sampling" in sys.modules and f"{PACKAGE}.external" in sys.modules:
        return sys.modules[f"{PACKAGE}.sampling"], sys.modules[f"{PACKAGE}.external"]
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("k-diffusion is not installed (pip install --no-deps k-diffusion==0.1.1.post1)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(folder)]
    sys.modules[PACKAGE] = package
    utils = types.ModuleType(f"{PACKAGE}.utils")
    utils.append_dims = _append_dims
    sys.modules[utils.__name__] = utils
    package.utils = utils
    loaded = []
    for name in ("sampling", "external"):
        module_spec = importlib.util.spec_from_file_location(f"{PACKAGE}.{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module.__name__] = module
        module_spec.loader.exec_module(module)
        setattr(package, name, module)
        loaded.append(module)
    return loaded[0], loaded[1]


class _TorchWithNoise:
    """A1111's TorchHijack: torch, except that randn_like gives the next per-image noise."""

    def __init__(self, next_noise: Callable[[], torch.Tensor]) -> None:
        self._next_noise = next_noise

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return self._next_noise()

    def __getattr__(self, item: str) -> Any:
        return getattr(torch, item)


@contextmanager
def a1111_noise(sampling: types.ModuleType, next_noise: Callable[[], torch.Tensor]) -> Iterator[None]:
    original = sampling.torch
    sampling.torch = _TorchWithNoise(next_noise)
    try:
        yield
    finally:
        sampling.torch = original
