"""Loading upscaler and face-restoration networks with spandrel, safely, with errors that name the file.

Files are read here, not by spandrel: pickle files (.pth/.pt/.ckpt/.bin) with ``torch.load(weights_only=True)``
(no code runs), .safetensors with safetensors. spandrel then detects the architecture and its hyperparameters
from the keys and shapes. The architecture table is spandrel's own plus, when installed, spandrel-extra-arches
(CodeFormer lives there); it is a private copy, spandrel's global registry is never changed.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import pickle
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from sdweb.core.errors import InvalidModelFileError
from sdweb.postprocess.spandrel_import import import_spandrel

log = logging.getLogger(__name__)

__all__ = [
    "MODEL_SUFFIXES",
    "architecture_registry",
    "describe_state_dict",
    "load_model_file",
    "read_state_dict",
    "upscaler_dtype",
]

MODEL_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")

@functools.cache
def architecture_registry() -> Any:
    """spandrel's architectures plus spandrel-extra-arches' (CodeFormer, ...) when that package is installed.

    A copy: spandrel's own MAIN_REGISTRY is left as it is. Built once (it never changes afterwards).
    """
    spandrel = import_spandrel()
    registry = spandrel.MAIN_REGISTRY.copy()
    try:
        extra = importlib.import_module("spandrel_extra_arches")
    except ImportError:
        log.info("spandrel-extra-arches is not installed: CodeFormer models cannot be loaded")
    else:
        registry.add(*extra.EXTRA_REGISTRY, ignore_duplicates=True)
    return registry


def has_extra_architectures() -> bool:
    return importlib.util.find_spec("spandrel_extra_arches") is not None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a model file (unwrapped from ``params_ema``/``state_dict``/... and ``module.`` prefixes).

    Raises InvalidModelFileError naming the file when it cannot be read or holds more than tensors.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise InvalidModelFileError(f"{path.name}: {suffix or 'no extension'} is not a model file type.",
                                    hint=f"Upscaler and face models are {', '.join(MODEL_SUFFIXES)} files.")
    try:
        if suffix == ".safetensors":
            raw: Any = safetensors.torch.load_file(str(path), device="cpu")
        else:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():  # a pickle of objects other than tensors: never unpickled
            raise InvalidModelFileError(
                f"{path.name} holds Python objects other than tensors, so it was not loaded (it could run code).",
                hint="Use a .safetensors version of this model, or a plain state-dict .pth file.") from error
        raise _unreadable(path, error) from error
    except Exception as error:  # a damaged file makes the readers fail in many ways (IndexError, EOFError, ...)
        raise _unreadable(path, error) from error
    spandrel = import_spandrel()
    state = spandrel.canonicalize_state_dict(raw) if isinstance(raw, dict) else {}
    state = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if not state:
        raise InvalidModelFileError(f"{path.name} does not hold a model's weights (no tensors found).",
                                    hint="The file is damaged or is not a model file: download it again.")
    return state


def describe_state_dict(state: dict[str, torch.Tensor], name: str) -> Any:
    """spandrel's ImageModelDescriptor for these weights (architecture, scale, ...), on the CPU in fp32."""
    spandrel = import_spandrel()
    try:
        descriptor = architecture_registry().load(state)
    except spandrel.UnsupportedModelError as error:
        extra = "" if has_extra_architectures() else " (CodeFormer needs the spandrel-extra-arches package)"
        raise InvalidModelFileError(
            f"{name}: unknown model architecture{extra}.",
            hint="Only architectures that spandrel knows (ESRGAN, Real-ESRGAN, SwinIR, DAT, HAT, ScuNET, "
                 "GFPGAN, CodeFormer, ...) can be used; remove or replace this file.") from error
    except (RuntimeError, KeyError, ValueError, IndexError, AssertionError, TypeError) as error:
        raise InvalidModelFileError(f"{name}: its weights do not fit the architecture they look like: "
                                    f"{_short(error)}",
                                    hint="The file is damaged or a variant spandrel cannot read.") from error
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise InvalidModelFileError(f"{name} is a {descriptor.architecture.name} model, not an image upscaler.",
                                    hint="Put inpainting models elsewhere; only image-to-image models work here.")
    return descriptor.eval()


def load_model_file(path: Path) -> Any:
    """Read and describe a model file; every failure is an InvalidModelFileError naming it."""
    return describe_state_dict(read_state_dict(Path(path)), Path(path).name)


def upscaler_dtype(descriptor: Any, device: str, preferred: torch.dtype) -> torch.dtype:
    """Half precision where the device is not the CPU, the runtime plan uses it and the architecture supports it.

    ``preferred`` is the plan's half dtype (fp32 with --no-half); an architecture without fp16 support (SwinIR,
    GFPGAN, ...) runs in fp32, as A1111 does.
    """
    if device == "cpu":
        return torch.float32
    if preferred == torch.float16 and descriptor.supports_half:
        return torch.float16
    if preferred == torch.bfloat16 and descriptor.supports_bfloat16:
        return torch.bfloat16
    return torch.float32


def _unreadable(path: Path, error: BaseException) -> InvalidModelFileError:
    what = "safetensors" if path.suffix.lower() == ".safetensors" else "PyTorch"
    return InvalidModelFileError(f"{path.name} could not be read: it is not a valid {what} model file "
                                 f"({_short(error)}).", hint="The file is damaged or incomplete: download it again.")


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0][:200] if text else type(error).__name__) or type(error).__name__
