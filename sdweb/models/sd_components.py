"""The components of an SD 1.x / 2.x / SDXL single file, built one at a time, as diffusers' `from_single_file`
builds them, without its memory peak.

`from_single_file` reads the whole state dict (through safetensors' mmap) and keeps it until every component is
converted, so the file's pages count in the process's RSS on top of the loaded weights (1.5x the fp32 weights for
SD 1.5). Here each component's tensors are read on their own with plain reads (`sdweb.models.weights`),
converted by diffusers' own functions (`convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
`convert_ldm_clip_checkpoint`, `convert_open_clip_checkpoint`), and moved by diffusers' `load_model_dict_into_meta`
into a model built on the meta device, each read tensor let go as soon as the model holds its copy in the target
dtype. The peak is about the loaded weights; the models are those of `from_single_file`, bit for bit
(tests/service/test_component_loading.py). Callers hold `MODEL_BUILD_LOCK` (models/build_lock.py).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from sdweb.models.families import UNET_PREFIX, VAE_PREFIX
from sdweb.models.weights import TensorFile

__all__ = ["build_pipeline", "load_clip_text_encoder", "load_unet", "load_vae", "read_prefixed"]

CPU_MAP = {"": torch.device("cpu")}  # from_single_file's device map for a CPU load


def read_prefixed(file: TensorFile, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of `file` under `prefix`, keys as in the file."""
    return {key: file.get(key) for key in file.shapes if key.startswith(prefix)}


class _HandOver(dict):
    """A state dict whose `items()` gives each tensor away as it goes: once the model holds the tensor (cast to the
    target dtype), nothing else keeps the tensor read from the file, so its memory is freed tensor by tensor."""

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:  # type: ignore[override]
        for key in list(self.keys()):
            yield key, self.pop(key)


def _fill(model: torch.nn.Module, converted: dict[str, torch.Tensor], dtype: torch.dtype,
          keep_in_fp32: list[str] | None, device_map: Mapping[str, torch.device] | None) -> None:
    """diffusers' `load_model_dict_into_meta`, taking the tensors out of `converted` one by one."""
    from diffusers.models.model_loading_utils import load_model_dict_into_meta

    expected = model.state_dict()
    unexpected = [key for key in converted if key not in expected]
    handed = _HandOver(converted)
    converted.clear()
    load_model_dict_into_meta(model, handed, dtype=dtype, keep_in_fp32_modules=keep_in_fp32,
                              device_map=dict(device_map) if device_map is not None else None,
                              unexpected_keys=unexpected)


def _load_diffusers_model(class_name: str, file: TensorFile, prefix: str, config_dir: Path, subfolder: str,
                          dtype: torch.dtype) -> Any:
    """A diffusers UNet or VAE as `<class>.from_single_file(config=config_dir, subfolder=..., torch_dtype=dtype)`
    gives it (on the CPU)."""
    import diffusers
    from accelerate import dispatch_model, init_empty_weights
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    model_class = getattr(diffusers, class_name)
    convert = {"UNet2DConditionModel": convert_ldm_unet_checkpoint,
               "AutoencoderKL": convert_ldm_vae_checkpoint}[class_name]
    config = model_class.load_config(str(config_dir), subfolder=subfolder, local_files_only=True)
    with init_empty_weights():
        model = model_class.from_config(config)
    converted = convert(checkpoint=read_prefixed(file, prefix), config=config)
    keep = model_class._keep_in_fp32_modules if dtype == torch.float16 else None
    _fill(model, converted, dtype, [keep] if isinstance(keep, str) else keep, CPU_MAP)
    model.to(dtype)
    model.eval()
    dispatch_model(model, device_map=dict(CPU_MAP))
    return model


def load_unet(file: TensorFile, config_dir: Path, dtype: torch.dtype) -> Any:
    """The UNet (the file's non-EMA weights, as from_single_file takes them)."""
    return _load_diffusers_model("UNet2DConditionModel", file, UNET_PREFIX, config_dir, "unet", dtype)


def load_vae(file: TensorFile, config_dir: Path, dtype: torch.dtype) -> Any:
    return _load_diffusers_model("AutoencoderKL", file, VAE_PREFIX, config_dir, "vae", dtype)


def load_clip_text_encoder(file: TensorFile, prefix: str, open_clip: bool, class_name: str, config_dir: Path,
                           component: str, dtype: torch.dtype) -> Any:
    """A CLIP text encoder (transformers `class_name`) from the weights under `prefix` (OpenAI CLIP-L layout, or
    OpenCLIP's fused q/k/v layout when `open_clip`), as from_single_file's `create_diffusers_clip_model_from_ldm`
    gives it."""
    import transformers
    from accelerate import init_empty_weights
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint

    model_class = getattr(transformers, class_name)
    config = model_class.config_class.from_pretrained(str(config_dir), subfolder=component, local_files_only=True)
    with init_empty_weights():
        model = model_class(config)
    tensors = read_prefixed(file, prefix)
    converted = convert_open_clip_checkpoint(model, tensors, prefix=prefix) if open_clip \
        else convert_ldm_clip_checkpoint(tensors)
    del tensors  # open_clip's q/k/v are copies: the fused tensors can go now
    if not hasattr(model, "text_model"):  # CLIPTextModel is flat since transformers 5.6
        converted = {key.removeprefix("text_model."): value for key, value in converted.items()}
    _fill(model, converted, dtype, None, None)
    model.to(dtype)
    model.eval()
    return model


def build_pipeline(pipeline_class: Any, config_dir: Path, models: Mapping[str, Any]) -> Any:
    """`pipeline_class` with `models` (by component name), the schedulers and tokenizers of `config_dir`, its
    model_index's flags and None for the components it lists as null, as from_single_file assembles it."""
    index = json.loads((config_dir / "model_index.json").read_text(encoding="utf-8"))
    parts: dict[str, Any] = {}
    for name, value in index.items():
        if name.startswith("_"):
            continue
        if not isinstance(value, list):
            parts[name] = value  # a flag: requires_safety_checker, force_zeros_for_empty_prompt, ...
        elif name in models:
            parts[name] = models[name]
        elif value[0] is None or name == "safety_checker":  # from_single_file never loads a safety checker
            parts[name] = None
        else:
            loader = getattr(importlib.import_module(value[0]), value[1])
            parts[name] = loader.from_pretrained(str(config_dir), subfolder=name, local_files_only=True)
    return pipeline_class(**parts)
