"""Import spandrel on machines without a working torchvision.

spandrel imports torchvision at import time for two architectures only (LaMa: `rotate`, `InterpolationMode`;
RestoreFormer: `normalize`). When torchvision is missing or broken (a CUDA build next to a CPU torch), a
minimal stub stands in, so every other architecture (ESRGAN, SwinIR, GFPGAN, ...) works; the stubbed
functions raise if one of those two models is actually run.
"""

from __future__ import annotations

import enum
import importlib
import sys
import types
from typing import Any

_STUB_MODULES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _unavailable(name: str) -> Any:
    def function(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            f"torchvision.transforms.functional.{name} is unavailable: torchvision is not installed"
        )

    function.__name__ = name
    return function


def _torchvision_works() -> bool:
    try:
        importlib.import_module("torchvision.transforms.functional")
    except (ImportError, RuntimeError, OSError):
        # A half-imported broken build must not shadow the stub.
        for name in [
            module for module in sys.modules if module == "torchvision" or module.startswith("torchvision.")
        ]:
            del sys.modules[name]
        return False
    return True


def _stub_modules() -> dict[str, types.ModuleType]:
    modules = {name: types.ModuleType(name) for name in _STUB_MODULES}
    functional = modules["torchvision.transforms.functional"]
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    functional.rotate = _unavailable("rotate")  # type: ignore[attr-defined]
    functional.normalize = _unavailable("normalize")  # type: ignore[attr-defined]
    modules["torchvision.transforms"].functional = functional  # type: ignore[attr-defined]
    modules["torchvision.transforms"].InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    modules["torchvision"].transforms = modules["torchvision.transforms"]  # type: ignore[attr-defined]
    return modules


def import_spandrel() -> types.ModuleType:
    """The spandrel module, importable with or without a working torchvision.

    The stub is in sys.modules only while spandrel imports (it binds the names then): left there, it
    would make transformers' and diffusers' `find_spec("torchvision")` checks raise.
    """
    if "spandrel" in sys.modules or _torchvision_works():
        return importlib.import_module("spandrel")
    stubs = _stub_modules()
    sys.modules.update(stubs)
    try:
        return importlib.import_module("spandrel")
    finally:
        for name, module in stubs.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
