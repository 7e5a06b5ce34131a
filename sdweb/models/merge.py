"""The Checkpoint Merger, as A1111's (a1111.md §16.5): No interpolation, Weighted sum ``A·(1−M) + B·M``, Add
difference ``A + (B − C)·M``; save as float16; bake in a VAE; discard weights by name; ``.safetensors`` output
with A1111's merge metadata (``sd_merge_recipe``, ``sd_merge_models``); copy the ``.yaml`` config.

Merged tensor by tensor: the inputs are read one tensor at a time (safetensors files are opened lazily, zip
``.ckpt`` files memory-mapped) and the output is streamed into a temp file that replaces the target only when
complete, so memory holds a few tensors, not three models, and a failed merge leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import safetensors
import torch

from sdweb.core.atomic import atomic_stream
from sdweb.core.errors import UserError
from sdweb.models.loader import check_checkpoint, read_metadata, read_state_dict

METHODS = ("No interpolation", "Weighted sum", "Add difference")
CONFIG_SOURCES = ("A, B or C", "B", "C", "Don't")
SKIP_ON_MERGE = ("cond_stage_model.transformer.text_model.embeddings.position_ids",)
VAE_PREFIX = "first_stage_model."
_DTYPE_NAMES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.float64: "F64",
                torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                torch.bool: "BOOL"}
_DTYPES = {name: dtype for dtype, name in _DTYPE_NAMES.items()}


@dataclass(frozen=True)
class MergeInput:
    path: Path
    name: str  # the registry name, e.g. "sub/model.safetensors"
    model_name: str  # A1111's model_name (no extension, "/" -> "_"), used in the default output name
    sha256: str | None = None
    legacy_hash: str = ""


@dataclass(frozen=True)
class MergePlan:
    primary: MergeInput
    secondary: MergeInput | None = None
    tertiary: MergeInput | None = None
    method: str = "Weighted sum"
    multiplier: float = 0.3
    save_as_half: bool = False
    custom_name: str = ""
    bake_in_vae: Path | None = None
    discard_weights: str = ""
    save_metadata: bool = True
    config_source: str = CONFIG_SOURCES[0]


class TensorSource:
    """One model file's tensors, read on demand."""

    def __init__(self, path: Path, stack: ExitStack) -> None:
        self.path = path
        if path.suffix.lower() == ".safetensors":
            handle = stack.enter_context(safetensors.safe_open(str(path), framework="pt", device="cpu"))
            self._get: Callable[[str], torch.Tensor] = handle.get_tensor
            header = _safetensors_header(path)
            self.keys = [key for key in header if key != "__metadata__"]
            self.shapes = {key: tuple(header[key]["shape"]) for key in self.keys}
            self.dtypes = {key: _DTYPES.get(header[key]["dtype"], torch.float32) for key in self.keys}
        else:
            tensors = read_state_dict(path)  # zip .ckpt files are memory-mapped, not read whole
            self._get = tensors.__getitem__
            self.keys = list(tensors)
            self.shapes = {key: tuple(tensor.shape) for key, tensor in tensors.items()}
            self.dtypes = {key: tensor.dtype for key, tensor in tensors.items()}

    def get(self, key: str) -> torch.Tensor:
        return self._get(key)


def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(length))


def default_name(plan: MergePlan) -> str:
    """A1111's output names: ``0.7(A) + 0.3(B)``, ``A + 0.3(B - C)``, or A's name."""
    a = plan.primary.model_name
    if plan.method == "Weighted sum" and plan.secondary:
        return f"{round(1 - plan.multiplier, 2)}({a}) + {round(plan.multiplier, 2)}({plan.secondary.model_name})"
    if plan.method == "Add difference" and plan.secondary and plan.tertiary:
        return f"{a} + {round(plan.multiplier, 2)}({plan.secondary.model_name} - {plan.tertiary.model_name})"
    return a


def output_path(plan: MergePlan, folder: Path, is_inpainting: bool) -> Path:
    name = (plan.custom_name or "").strip() or default_name(plan)
    if any(part in name for part in ("/", "\\", "\x00")) or name in (".", ".."):
        raise UserError(f"Custom name {name!r} cannot be a file name.", code="bad_merge_name",
                        hint="Use a plain name without slashes; it is saved in the checkpoints folder.")
    if name.lower().endswith(".safetensors"):
        name = name[: -len(".safetensors")]
    if is_inpainting and not name.endswith(".inpainting"):
        name += ".inpainting"
    return folder / f"{name}.safetensors"


def check_plan(plan: MergePlan) -> tuple[bool, Any]:
    """Refuse what A1111 refuses, by name: missing models, families that cannot be merged, A not the inpainting
    model. Returns (result is inpainting, primary family)."""
    if plan.method not in METHODS:
        raise UserError(f"Interpolation method {plan.method!r} is unknown; use one of {', '.join(METHODS)}.",
                        code="bad_merge")
    if plan.method != "No interpolation" and plan.secondary is None:
        raise UserError(f"{plan.method} needs a secondary model (B).", code="bad_merge")
    if plan.method == "Add difference" and plan.tertiary is None:
        raise UserError("Add difference needs a tertiary model (C).", code="bad_merge")
    if not math.isfinite(plan.multiplier):
        raise UserError("Multiplier must be a number.", code="bad_merge")
    if plan.discard_weights:
        try:
            re.compile(plan.discard_weights)
        except re.error as error:
            raise UserError(f"Discard weights: {plan.discard_weights!r} is not a regular expression ({error}).",
                            code="bad_merge") from None
    family = check_checkpoint(plan.primary.path)
    for other in (plan.secondary, plan.tertiary) if plan.method != "No interpolation" else ():
        if other is None:
            continue
        other_family = check_checkpoint(other.path)
        if other_family.base != family.base:
            raise UserError(f"{plan.primary.name} is {family.label} and {other.name} is {other_family.label}; "
                            "models of different families cannot be merged.", code="bad_merge")
        if other_family.is_inpaint and not family.is_inpaint:
            raise UserError("When merging an inpainting model with a normal one, A must be the inpainting model.",
                            code="bad_merge")
    return family.is_inpaint, family


def _vae_tensors(path: Path) -> dict[str, torch.Tensor]:
    tensors = read_state_dict(path)
    inside = {k[len(VAE_PREFIX):]: v for k, v in tensors.items() if k.startswith(VAE_PREFIX)} or tensors
    if any(key.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for key in inside):
        raise UserError(f"{path.name} is a VAE in the diffusers layout; baking needs the usual single-file layout "
                        "(keys encoder.down.*, decoder.up.*).", code="bad_merge")
    return inside


def _combine(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None, plan: MergePlan) -> torch.Tensor:
    if plan.method == "Weighted sum":
        return a + (b - a) * plan.multiplier  # = A·(1−M) + B·M
    return a + (b - c) * plan.multiplier if c is not None else a + b * plan.multiplier


def _merged(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None, plan: MergePlan, key: str) -> torch.Tensor:
    """One tensor merged; an inpainting A (9 input channels) with a normal B merges the 4 channels they share."""
    if c is not None and c.shape != b.shape:
        raise UserError(f"Tensor {key} has shape {list(b.shape)} in B and {list(c.shape)} in C; these "
                        "checkpoints have different architectures.", code="bad_merge")
    if a.shape == b.shape:
        return _combine(a, b, c, plan)
    if a.dim() == 4 and a.shape[0:1] + a.shape[2:] == b.shape[0:1] + b.shape[2:] and a.shape[1] == 9 \
            and b.shape[1] == 4:
        return torch.cat([_combine(a[:, 0:4], b, c, plan), a[:, 4:]], dim=1)
    raise UserError(f"Tensor {key} has shape {list(a.shape)} in A and {list(b.shape)} in B; these checkpoints "
                    "have different architectures.", code="bad_merge")


def _output_dtype(key: str, plan: MergePlan, sources: list[TensorSource | None],
                  vae: Mapping[str, torch.Tensor]) -> torch.dtype:
    a = sources[0]
    dtype = a.dtypes[key]  # type: ignore[union-attr]
    inner = key[len(VAE_PREFIX):] if key.startswith(VAE_PREFIX) else None
    if inner is not None and inner in vae:
        dtype = vae[inner].dtype
    elif plan.method != "No interpolation" and _is_merged(key, sources):
        for source in sources[1:]:
            if source is not None and key in source.dtypes:
                dtype = torch.promote_types(dtype, source.dtypes[key])
    if plan.save_as_half and dtype.is_floating_point:
        return torch.float16
    return dtype


def _is_merged(key: str, sources: list[TensorSource | None]) -> bool:
    b = sources[1]
    return "model" in key and key not in SKIP_ON_MERGE and b is not None and key in b.shapes


def _tensor(key: str, plan: MergePlan, sources: list[TensorSource | None],
            vae: Mapping[str, torch.Tensor]) -> torch.Tensor:
    a, b, c = sources
    inner = key[len(VAE_PREFIX):] if key.startswith(VAE_PREFIX) else None
    if inner is not None and inner in vae:
        return vae[inner]
    value = a.get(key)  # type: ignore[union-attr]
    if plan.method == "No interpolation" or not _is_merged(key, sources):
        return value
    b_value = b.get(key)  # type: ignore[union-attr]
    c_value = c.get(key) if c is not None and key in c.shapes else None
    if plan.method == "Add difference" and c_value is None:
        c_value = torch.zeros_like(b_value)
    compute = torch.promote_types(torch.promote_types(value.dtype, b_value.dtype), torch.float32)
    return _merged(value.to(compute), b_value.to(compute), c_value.to(compute) if c_value is not None else None,
                   plan, key)


def safetensors_header(entries: list[tuple[str, torch.dtype, tuple[int, ...]]], metadata: Mapping[str, str]) -> bytes:
    """The length-prefixed JSON header of a .safetensors file holding `entries` (key, dtype, shape) in that order;
    the tensors' bytes follow it (`write_tensor`)."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for key, dtype, shape in entries:
        size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        header[key] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def write_tensor(handle: BinaryIO, tensor: torch.Tensor) -> None:
    flat = tensor.detach().contiguous().reshape(-1)
    handle.write(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")


def merge_metadata(plan: MergePlan, is_inpainting: bool) -> dict[str, str]:
    """A1111's safetensors metadata of a merge (empty when Save metadata is off)."""
    if not plan.save_metadata:
        return {}
    recipe = {"type": "webui", "primary_model_hash": plan.primary.sha256,
              "secondary_model_hash": plan.secondary.sha256 if plan.secondary else None,
              "tertiary_model_hash": plan.tertiary.sha256 if plan.tertiary else None,
              "interp_method": plan.method, "multiplier": plan.multiplier, "save_as_half": plan.save_as_half,
              "custom_name": plan.custom_name, "config_source": CONFIG_SOURCES.index(plan.config_source)
              if plan.config_source in CONFIG_SOURCES else 0,
              "bake_in_vae": plan.bake_in_vae.name if plan.bake_in_vae else "None",
              "discard_weights": plan.discard_weights, "is_inpainting": is_inpainting, "is_instruct_pix2pix": False}
    models: dict[str, Any] = {}
    for model in (plan.primary, plan.secondary, plan.tertiary):
        if model is None:
            continue
        own = read_metadata(model.path) if model.path.suffix.lower() == ".safetensors" else {}
        models[model.sha256 or model.name] = {"name": model.name, "legacy_hash": model.legacy_hash,
                                              "sd_merge_recipe": _json_or_none(own.get("sd_merge_recipe"))}
        models.update(_json_or_none(own.get("sd_merge_models")) or {})
    return {"format": "pt", "sd_merge_recipe": json.dumps(recipe), "sd_merge_models": json.dumps(models)}


def _json_or_none(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def copy_config(plan: MergePlan, target: Path) -> Path | None:
    """The ``<model>.yaml`` of A, B or C (as chosen) copied beside the result; None when there is none."""
    choices = {"A, B or C": (plan.primary, plan.secondary, plan.tertiary), "B": (plan.secondary,),
               "C": (plan.tertiary,)}.get(plan.config_source, ())
    for model in choices:
        config = model.path.with_suffix(".yaml") if model is not None else None
        if config is not None and config.is_file():
            destination = target.with_suffix(".yaml")
            shutil.copyfile(config, destination)
            return destination
    return None


def run_merge(plan: MergePlan, folder: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Merge as planned into ``folder``; returns the new file. UserError (naming what is wrong) for bad plans;
    an existing file of the same name is never overwritten."""
    is_inpainting, _ = check_plan(plan)
    target = output_path(plan, folder, is_inpainting)
    if target.exists():
        raise UserError(f"{target.name} already exists in {folder}.", code="merge_exists",
                        hint="Type another Custom Name, or delete the old file first.")
    discard = re.compile(plan.discard_weights) if plan.discard_weights else None
    vae = _vae_tensors(plan.bake_in_vae) if plan.bake_in_vae else {}
    with ExitStack() as stack:
        sources: list[TensorSource | None] = [TensorSource(plan.primary.path, stack)]
        for model in (plan.secondary, plan.tertiary):
            wanted = model is not None and plan.method != "No interpolation"
            sources.append(TensorSource(model.path, stack) if wanted else None)  # type: ignore[union-attr]
        if plan.method != "Add difference":
            sources[2] = None
        primary = sources[0]
        keys = [key for key in primary.keys if not (discard and discard.search(key))]  # type: ignore[union-attr]
        _check_vae_fits(vae, primary, plan)  # type: ignore[arg-type]
        entries = [(key, _output_dtype(key, plan, sources, vae), primary.shapes[key]) for key in keys]  # type: ignore[union-attr]
        with atomic_stream(target) as handle:
            handle.write(safetensors_header(entries, merge_metadata(plan, is_inpainting)))
            for done, (key, dtype, _) in enumerate(entries, start=1):
                write_tensor(handle, _tensor(key, plan, sources, vae).to(dtype))
                if progress is not None:
                    progress(done, len(entries))
    copy_config(plan, target)
    return target


def _check_vae_fits(vae: Mapping[str, torch.Tensor], primary: TensorSource, plan: MergePlan) -> None:
    if not vae:
        return
    fitting = [key for key in vae if VAE_PREFIX + key in primary.shapes]
    if not fitting:
        raise UserError(f"{plan.bake_in_vae.name if plan.bake_in_vae else 'The VAE'} has no weights that fit "
                        f"{plan.primary.name}.", code="bad_merge", hint="Choose a VAE made for this model family.")
    for key in fitting:
        if tuple(vae[key].shape) != primary.shapes[VAE_PREFIX + key]:
            raise UserError(f"VAE tensor {key} has shape {list(vae[key].shape)}, the checkpoint's has "
                            f"{list(primary.shapes[VAE_PREFIX + key])}: this VAE is for another model family.",
                            code="bad_merge")
