"""Reading model files safely: tensor names, shapes and dtypes from a header, and tensors on the CPU.

.safetensors: the header is validated (every tensor lies inside the file) before anything maps it.
.ckpt/.pt/.pth/.bin: torch's weights-only unpickler with the few globals real SD checkpoints need.
.gguf (city96-style quantized transformers): the gguf package's reader; shapes in torch order.
A damaged, truncated, unsafe or misplaced file becomes an `InvalidModelFileError` that names it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import safetensors
import safetensors.torch
import torch

from sdweb.core.errors import InvalidModelFileError

__all__ = [
    "GGUF_SUFFIXES",
    "PICKLE_SUFFIXES",
    "SAFETENSORS_SUFFIXES",
    "FileHeader",
    "read_gguf_tensors",
    "read_header",
    "read_metadata",
    "read_shapes",
    "read_state_dict",
]

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
GGUF_SUFFIXES = (".gguf",)
MAX_HEADER_BYTES = 100 * 1024 * 1024
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "C64": 8}  # fmt: skip
_UNSAFE_HINT = "Convert it to .safetensors, or pass --disable-safe-unpickle if you trust where it came from."


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES + GGUF_SUFFIXES:
        raise InvalidModelFileError(
            f"{path.name}: unsupported model file type {suffix or '(none)'!r}.",
            hint="Use .safetensors (preferred), .ckpt or (for quantized transformers) .gguf.",
        )
    return suffix


def _damaged(path: Path, why: str) -> InvalidModelFileError:
    return InvalidModelFileError(
        f"{path.name} is damaged or not a model file: {why}.",
        code="damaged_model_file",
        hint="Download it again; an interrupted download leaves a truncated file.",
    )


@dataclass(frozen=True)
class FileHeader:
    """What a model file holds, without its tensor data: name -> shape (torch order), name -> dtype
    (safetensors names "F16", "BF16", "F8_E4M3", ...; GGUF quant names "Q8_0", "Q4_K", ...) and metadata."""

    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    metadata: dict[str, str]


def _safetensors_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Shapes and __metadata__ from the header, after checking that the file can hold what it claims."""
    header = _safetensors_file_header(path)
    return header.shapes, header.metadata


def _safetensors_file_header(path: Path) -> FileHeader:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _damaged(path, f"{size} bytes, too short for a safetensors file")
            if prefix == b"version ":
                raise _damaged(path, "it is a Git LFS pointer, not the model itself")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
                raise _damaged(path, f"the header claims {header_len} bytes but the file has {size}")
            raw = handle.read(header_len)
    except OSError as exc:
        raise InvalidModelFileError(f"{path.name} cannot be read: {exc.strerror or exc}.") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, "the header is not valid JSON") from exc
    except RecursionError:  # thousands of nested brackets: no real header is nested more than 3 deep
        raise _damaged(path, "the header is nested too deeply to be a safetensors header") from None
    if not isinstance(header, dict):
        raise _damaged(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_size = size - 8 - header_len
    shapes = {name: _checked_entry(path, name, entry, data_size) for name, entry in header.items()}
    dtypes = {name: str(entry["dtype"]) for name, entry in header.items()}
    metadata = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
    return FileHeader(shapes, dtypes, metadata)


def _checked_entry(path: Path, name: str, entry: Any, data_size: int) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (int(o) for o in entry["data_offsets"])
        dtype = str(entry["dtype"])
    except (TypeError, KeyError, ValueError) as exc:
        raise _damaged(path, f"tensor {name!r} has a malformed header entry") from exc
    if any(d < 0 for d in shape) or not 0 <= begin <= end <= data_size:
        raise _damaged(path, f"tensor {name!r} lies outside the file (truncated?)")
    itemsize = _DTYPE_BYTES.get(dtype)
    if itemsize is not None and end - begin != math.prod(shape) * itemsize:
        raise _damaged(path, f"tensor {name!r} has {end - begin} bytes for shape {list(shape)} of {dtype}")
    return shape


class _LightningCallback:
    """Stands in for pytorch_lightning's ModelCheckpoint, which old SD 1.x .ckpt files name as a dict key."""


def _ckpt_safe_globals() -> list[Any]:
    # What A1111's safe unpickler also accepts in real SD checkpoints: numpy scalars and dtypes
    # (training metadata) and the Lightning callback class. None of them runs code from the file.
    core = getattr(numpy, "_core", None) or numpy.core
    allowed: list[Any] = [
        (core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        (core.multiarray.scalar, "numpy._core.multiarray.scalar"),
        numpy.dtype,
        (_LightningCallback, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
    ]
    allowed += [type(numpy.dtype(code)) for code in ("f2", "f4", "f8", "i4", "i8", "u1", "b1")]
    return allowed


@contextlib.contextmanager
def _safe_unpickling() -> Iterator[None]:
    with torch.serialization.safe_globals(_ckpt_safe_globals()):
        yield


# How torch's weights_only unpickler words a refused global or call (as opposed to a damaged stream).
_REFUSED_SIGNS = (
    "GLOBAL",
    "allowlist this global",
    "unrecognized function",
    "Can only build",
    "Can only create",
)


def _pickle_problem(path: Path) -> str:
    with contextlib.suppress(OSError), path.open("rb") as handle:
        if handle.read(40).startswith(b"version https://git-lfs"):
            return "it is a Git LFS pointer, not the model itself"
    return "the pickle stream is unreadable"


def _torch_load(path: Path, allow_unsafe_pickle: bool) -> Any:
    try:
        mmap = zipfile.is_zipfile(path)
        with _safe_unpickling():
            return torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle, mmap=mmap)
    except MemoryError:
        raise
    except pickle.UnpicklingError as exc:
        if any(sign in str(exc) for sign in _REFUSED_SIGNS):
            raise InvalidModelFileError(
                f"{path.name} contains code or objects that safe loading refuses.",
                code="unsafe_pickle",
                hint=_UNSAFE_HINT,
            ) from exc
        raise _damaged(path, _pickle_problem(path)) from exc
    except Exception as exc:  # torch.load raises many types for damaged files (RuntimeError, EOFError, ...)
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise _damaged(path, f"unreadable ({type(exc).__name__}: {first_line})") from exc


def _flatten_tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a loaded pickle, `{"state_dict": ...}` unwrapped, nested dicts joined with dots."""
    while isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    found: dict[str, torch.Tensor] = {}
    if not isinstance(obj, Mapping):
        return found
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            found[name] = value
        elif isinstance(value, Mapping) and not prefix:  # one level: {"string_to_param": {"*": t}}
            found |= _flatten_tensors(value, f"{name}.")
    return found


def read_shapes(
    path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False
) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape. For .safetensors only the header is read; .ckpt files are unpickled safely."""
    return read_header(path, allow_unsafe_pickle=allow_unsafe_pickle).shapes


_TORCH_DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
                      torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2", torch.int64: "I64",
                      torch.int32: "I32", torch.uint8: "U8", torch.int8: "I8", torch.bool: "BOOL"}  # fmt: skip


def read_header(path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False) -> FileHeader:
    """Shapes, dtypes and metadata. .safetensors and .gguf: only the header is read; .ckpt files are
    unpickled safely (their tensors are then dropped)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix in SAFETENSORS_SUFFIXES:
        return _safetensors_file_header(path)
    if suffix in GGUF_SUFFIXES:
        return _gguf_header(path)
    tensors = _flatten_tensors(_torch_load(path, allow_unsafe_pickle))
    return FileHeader(
        {name: tuple(tensor.shape) for name, tensor in tensors.items()},
        {name: _TORCH_DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype)) for name, tensor in tensors.items()},
        {},
    )


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """A safetensors file's __metadata__ ({} for other formats)."""
    path = Path(path)
    return _safetensors_header(path)[1] if _suffix(path) in SAFETENSORS_SUFFIXES else {}


def read_state_dict(
    path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False
) -> dict[str, torch.Tensor]:
    """All tensors of a model file on the CPU (`{"state_dict": ...}` unwrapped)."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix in PICKLE_SUFFIXES:
        return _flatten_tensors(_torch_load(path, allow_unsafe_pickle))
    if suffix in GGUF_SUFFIXES:
        raise InvalidModelFileError(
            f"{path.name} is a GGUF file: sdweb reads GGUF only for quantized Flux, Chroma and SD3 transformers.",
            code="gguf_not_supported_here",
            hint="Put it in models/Stable-diffusion (or models/diffusion_models) and choose it as the checkpoint.",
        )
    _safetensors_header(path)  # validates sizes before safetensors maps the file
    try:
        return safetensors.torch.load_file(path, device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise _damaged(path, str(exc)[:200]) from exc



# -------------------------------------------------------------------------------------------- gguf


def _gguf_reader(path: Path) -> Any:
    try:
        from gguf import GGUFReader
    except ImportError as exc:  # a dependency; a broken install should still say what is missing
        raise InvalidModelFileError(
            f"{path.name} is a GGUF file, and reading GGUF needs the `gguf` package.",
            code="gguf_missing",
            hint="pip install gguf",
        ) from exc
    try:
        with path.open("rb") as handle:
            if handle.read(4) != b"GGUF":
                raise _damaged(path, "it does not start with the GGUF magic bytes")
        return GGUFReader(path)
    except OSError as exc:
        raise InvalidModelFileError(f"{path.name} cannot be read: {exc.strerror or exc}.") from exc
    except (ValueError, KeyError, IndexError, struct.error) as exc:  # what the reader raises on a cut file
        raise _damaged(path, f"the GGUF data is incomplete or malformed ({str(exc)[:120]})") from exc


def _gguf_header(path: Path) -> FileHeader:
    reader = _gguf_reader(path)
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    for tensor in reader.tensors:
        shapes[tensor.name] = tuple(int(d) for d in reversed(tensor.shape))  # ggml lists dims innermost first
        dtypes[tensor.name] = tensor.tensor_type.name
    metadata = {}
    architecture = reader.fields.get("general.architecture")
    if architecture is not None:
        metadata["general.architecture"] = bytes(architecture.parts[architecture.data[0]]).decode("utf-8", "replace")
    return FileHeader(shapes, dtypes, metadata)


def read_gguf_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """All tensors of a GGUF file on the CPU, quantized ones as diffusers' `GGUFParameter` (raw blocks plus
    their quant type; diffusers' GGUF layers dequantize them on the fly), F16/F32 ones as plain tensors."""
    path = Path(path)
    _gguf_header(path)  # validates the file first
    from diffusers.models.model_loading_utils import load_gguf_checkpoint

    try:
        return load_gguf_checkpoint(str(path))
    except (ValueError, KeyError, IndexError, struct.error) as exc:  # an unsupported quant type or a damaged file
        raise InvalidModelFileError(
            f"{path.name} cannot be loaded: {(str(exc).strip().splitlines() or [''])[0][:200]}",
            code="damaged_model_file",
            hint="Use a GGUF file with Q8_0, Q5_0/1, Q4_0/1, K-quants, F16 or BF16 tensors, or download it again.",
        ) from exc
