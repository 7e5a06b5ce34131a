"""Hugging Face CLIP text encoders -> the text-encoder keys of A1111/LDM single files.

OpenAI CLIP (SD1, SDXL's first encoder) keeps the transformers layout under `...transformer.text_model.`;
OpenCLIP (SD2, SDXL's G encoder) uses open_clip's own names with fused q/k/v projections.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

StateDict = Mapping[str, torch.Tensor]

_LAYER_KEY = re.compile(r"encoder\.layers\.(\d+)\.(.+)")
_OPEN_CLIP_TOP_LEVEL = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}
_OPEN_CLIP_LAYER_RENAMES = {
    "self_attn.out_proj.": "attn.out_proj.",
    "layer_norm1.": "ln_1.",
    "layer_norm2.": "ln_2.",
    "mlp.fc1.": "mlp.c_fc.",
    "mlp.fc2.": "mlp.c_proj.",
}


def _strip_text_model(key: str) -> str:
    # transformers >= 5.6 flattens CLIPTextModel (no `text_model.`); CLIPTextModelWithProjection keeps it.
    return key.removeprefix("text_model.")


def clip_l_to_ldm(text_encoder_state_dict: StateDict, prefix: str) -> dict[str, torch.Tensor]:
    """OpenAI CLIP text encoder -> `prefix + text_model.*` (prefix `cond_stage_model.transformer.` for SD1,
    `conditioner.embedders.0.transformer.` for SDXL)."""
    return {
        f"{prefix}text_model.{_strip_text_model(key)}": tensor
        for key, tensor in text_encoder_state_dict.items()
        if key != "text_projection.weight"
    }


def _open_clip_layer_key(rest: str) -> str:
    for old, new in _OPEN_CLIP_LAYER_RENAMES.items():
        if rest.startswith(old):
            return new + rest[len(old) :]
    raise ValueError(f"OpenCLIP: no LDM name for encoder layer key {rest!r}")


def _open_clip_layers(state_dict: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """Per layer index, the open_clip resblock keys (without prefix) and tensors, with q/k/v fused."""
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        match = _LAYER_KEY.fullmatch(key)
        if match is None:
            continue
        rest = match.group(2)
        if rest.startswith(("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj.")):
            continue
        layers.setdefault(int(match.group(1)), {})[_open_clip_layer_key(rest)] = tensor
    for index, layer in layers.items():
        for kind in ("weight", "bias"):
            parts = [state_dict[f"encoder.layers.{index}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
            layer[f"attn.in_proj_{kind}"] = torch.cat(parts, dim=0)
    return layers


def open_clip_to_ldm(
    text_encoder_state_dict: StateDict,
    prefix: str,
    *,
    pad_final_layer: bool = False,
    identity_projection: bool = False,
) -> dict[str, torch.Tensor]:
    """OpenCLIP text encoder in HF layout -> open_clip keys under `prefix` (`cond_stage_model.model.` for SD2,
    `conditioner.embedders.1.model.` for SDXL G, `conditioner.embedders.0.model.` for the SDXL refiner).

    pad_final_layer: SD2 files hold one more resblock than diffusers runs (A1111 stops at the penultimate
    layer); write a copy of the last layer there so the file has the real layout.
    identity_projection: write an identity `text_projection` when the HF model has none (SD2's CLIPTextModel).
    """
    state_dict = {_strip_text_model(key): tensor for key, tensor in text_encoder_state_dict.items()}
    _check_known(state_dict)
    converted = {f"{prefix}{_OPEN_CLIP_TOP_LEVEL[key]}": state_dict[key] for key in _OPEN_CLIP_TOP_LEVEL}
    layers = _open_clip_layers(state_dict)
    if pad_final_layer and layers:
        layers[max(layers) + 1] = {key: tensor.clone() for key, tensor in layers[max(layers)].items()}
    for index, layer in sorted(layers.items()):
        converted |= {f"{prefix}transformer.resblocks.{index}.{key}": tensor for key, tensor in layer.items()}
    if "text_projection.weight" in state_dict:
        # open_clip multiplies x @ text_projection; the HF Linear stores the transpose.
        converted[f"{prefix}text_projection"] = state_dict["text_projection.weight"].T.contiguous()
    elif identity_projection:
        width = state_dict["final_layer_norm.weight"].shape[0]
        converted[f"{prefix}text_projection"] = torch.eye(
            width, dtype=state_dict["final_layer_norm.weight"].dtype
        )
    return converted


def _check_known(state_dict: Mapping[str, torch.Tensor]) -> None:
    unknown = [
        key
        for key in state_dict
        if key not in _OPEN_CLIP_TOP_LEVEL
        and key != "text_projection.weight"
        and not _LAYER_KEY.fullmatch(key)
    ]
    if unknown:
        raise ValueError(f"OpenCLIP: no LDM name for {len(unknown)} keys, e.g. {unknown[:3]}")
