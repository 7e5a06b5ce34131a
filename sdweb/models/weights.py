"""Tensors of a model file read one at a time, and modules filled from them without a second full copy.

`TensorFile` opens a .safetensors file lazily (one tensor per `get`), or holds the tensors of a pickle or
GGUF file. Stored fp8 weights (e4m3fn / e5m2) are upcast on read, and ComfyUI's `*_fp8_scaled` files (a
`scaled_fp8` marker, a `<layer>.scale_weight` per weight) have their scale applied: CPUs have no fp8 matmul.
`fill_module` builds nothing itself: it checks the keys and shapes a plan will give against a model made
under `accelerate.init_empty_weights()` (weights on the meta device), then assigns tensor by tensor, cast
to the compute dtype, so the peak is the model plus one tensor.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import safetensors
import torch

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.reading import (
    GGUF_SUFFIXES,
    SAFETENSORS_SUFFIXES,
    FileHeader,
    read_gguf_tensors,
    read_state_dict,
)

__all__ = ["FP8_DTYPES", "TensorFile", "check_fits", "fill_module", "is_auxiliary_key", "open_tensor_file"]

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
SCALED_FP8_MARKER = "scaled_fp8"


def is_auxiliary_key(key: str) -> bool:
    """Keys that are not weights of the model: the fp8-scaled marker and scales (applied on read)."""
    return key == SCALED_FP8_MARKER or key.endswith((".scale_weight", ".scale_input"))


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
    "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}


class SafetensorsReader:
    """Reads one tensor at a time from a .safetensors file with plain reads into its own buffer, not through a
    memory map: the pages of the tensors already converted do not stay in the process's resident memory, so
    loading peaks at about the loaded weights' size (a mapped 8 GB file would add up to 8 GB)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("rb")
        (header_len,) = struct.unpack("<Q", self._file.read(8))
        header = json.loads(self._file.read(header_len).decode("utf-8"))
        header.pop("__metadata__", None)
        self._entries = header
        self._data_start = 8 + header_len

    def get_tensor(self, key: str) -> torch.Tensor:
        entry = self._entries[key]  # KeyError: the caller names the missing weight
        dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise safetensors.SafetensorError(f"unsupported dtype {entry['dtype']}")
        begin, end = (int(o) for o in entry["data_offsets"])
        shape = [int(d) for d in entry["shape"]]
        if end == begin:
            return torch.empty(shape, dtype=dtype)
        buffer = torch.empty(end - begin, dtype=torch.uint8)  # not zero-filled, unlike a bytearray
        self._file.seek(self._data_start + begin)
        if self._file.readinto(buffer.numpy()) != end - begin:
            raise OSError(f"the file ends inside {key!r}")
        return buffer.view(dtype).reshape(shape)

    def close(self) -> None:
        self._file.close()


class TensorFile:
    """The tensors of one model file, by name; `get` returns compute-ready tensors (fp8 upcast and scaled)."""

    def __init__(self, path: Path, header: FileHeader, handle: Any = None,
                 tensors: Mapping[str, torch.Tensor] | None = None) -> None:
        self.path = path
        self.header = header
        self._handle = handle  # a safetensors safe_open handle, or None
        self._tensors = tensors or {}

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self.header.shapes

    @property
    def is_gguf(self) -> bool:
        return self.path.suffix.lower() in GGUF_SUFFIXES

    def raw(self, key: str) -> torch.Tensor:
        """The tensor as stored (GGUF: a quantized `GGUFParameter` or a plain tensor)."""
        try:
            if self._handle is not None:
                return self._handle.get_tensor(key)
            return self._tensors[key]
        except KeyError:
            raise InvalidModelFileError(f"{self.name} lacks the weight {key!r}; the file is damaged or incomplete.",
                                        code="damaged_model_file") from None
        except (safetensors.SafetensorError, OSError) as exc:
            raise InvalidModelFileError(f"{self.name} cannot be read at {key!r}: {str(exc)[:160]}",
                                        code="damaged_model_file",
                                        hint="Download it again; an interrupted download leaves a truncated file.") from exc

    def get(self, key: str) -> torch.Tensor:
        """The tensor ready to compute with: fp8 weights as float32, times their `scale_weight` if any."""
        tensor = self.raw(key)
        if tensor.dtype not in FP8_DTYPES:
            return tensor
        tensor = tensor.to(torch.float32)
        scale_key = key.removesuffix(".weight") + ".scale_weight"
        if key.endswith(".weight") and scale_key in self.header.shapes:
            tensor = tensor * self.raw(scale_key).to(torch.float32)
        return tensor


@contextlib.contextmanager
def open_tensor_file(path: str | os.PathLike[str], header: FileHeader, *,
                     allow_unsafe_pickle: bool = False) -> Iterator[TensorFile]:
    """A TensorFile for `path` (its header already read and validated), open for the `with` block."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        try:
            reader = SafetensorsReader(path)
        except (OSError, ValueError, struct.error) as exc:
            raise InvalidModelFileError(f"{path.name} cannot be read: {str(exc)[:200]}", code="damaged_model_file",
                                        hint="Download it again; an interrupted download leaves a truncated file.") from exc
        try:
            yield TensorFile(path, header, handle=reader)
        except (safetensors.SafetensorError, OSError) as exc:
            raise InvalidModelFileError(f"{path.name} cannot be read: {str(exc)[:200]}", code="damaged_model_file",
                                        hint="Download it again; an interrupted download leaves a truncated file.") from exc
        finally:
            reader.close()
        return
    if suffix in GGUF_SUFFIXES:
        yield TensorFile(path, header, tensors=read_gguf_tensors(path))
        return
    yield TensorFile(path, header, tensors=read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle))


def check_fits(model: torch.nn.Module, shapes: Mapping[str, tuple[int, ...]], file_name: str, what: str) -> None:
    """InvalidModelFileError unless `shapes` (diffusers key -> shape the file will give) cover every parameter
    of `model` with the right shape and hold nothing it does not have."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    parameters = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    missing = sorted(parameters - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k, shape in shapes.items() if k in expected and expected[k] != tuple(shape))
    if not (missing or unexpected or wrong):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        key = wrong[0]
        problems.append(f"{len(wrong)} of another shape (e.g. {key}: {list(shapes[key])}, expected {list(expected[key])})")
    raise InvalidModelFileError(f"{file_name} does not fit a {what}: {'; '.join(problems)}.",
                                code="model_layout_mismatch",
                                hint="The file may be damaged, or made for another model family or variant.")


def fill_module(model: torch.nn.Module, items: Iterable[tuple[str, torch.Tensor]], dtype: torch.dtype,
                file_name: str, what: str) -> torch.nn.Module:
    """Assign (key, tensor) pairs into a model built on the meta device, casting floating tensors to `dtype`
    (modules the class keeps in fp32 for fp16 stay fp32), then check that no weight was left unset."""
    from accelerate.utils import set_module_tensor_to_device

    keep_fp32 = set(getattr(model, "_keep_in_fp32_modules", None) or ()) if dtype == torch.float16 else set()
    for key, tensor in items:
        value = tensor
        if tensor.is_floating_point():
            value = tensor.to(torch.float32 if keep_fp32 & set(key.split(".")) else dtype)
        set_module_tensor_to_device(model, key, "cpu", value=value)
    left = [name for name, param in model.named_parameters() if param.device.type == "meta"]
    if left:
        raise InvalidModelFileError(f"{file_name} lacks {len(left)} weights of the {what} (e.g. {left[0]}).",
                                    code="model_layout_mismatch",
                                    hint="The file may be damaged or of an unsupported variant.")
    return model.eval()
