"""Diffusers state dicts -> A1111/LDM single-file keys.

The prefix maps are computed from the model config (block count, layers per block), so the same code
serves SD1 (4 blocks), SDXL (3 blocks), tiny test models and distilled variants. The inverse, LDM ->
diffusers, is diffusers' own `from_single_file`; a round trip through it is the test of this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from sdweb.models.ldm_convert_clip import clip_l_to_ldm, open_clip_to_ldm

__all__ = [
    "FAMILIES",
    "clip_l_to_ldm",
    "controlnet_to_ldm",
    "open_clip_to_ldm",
    "pipeline_to_ldm",
    "unet_to_ldm",
    "vae_to_ldm",
]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CONTROLNET_PREFIX = "control_model."

FAMILIES = ("sd1", "sd1-inpaint", "sd2", "sd2-v", "sd2-inpaint", "sdxl", "sdxl-inpaint", "sdxl-refiner")

StateDict = Mapping[str, torch.Tensor]
# (diffusers module prefix, LDM module prefix, renames applied to the rest of the key)
PrefixMap = list[tuple[str, str, Sequence[tuple[str, str]]]]

_NO_RENAMES: tuple[tuple[str, str], ...] = ()
_UNET_RESNET_RENAMES = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("time_emb_proj.", "emb_layers.1."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("conv_shortcut.", "skip_connection."),
)
_VAE_RESNET_RENAMES = (("conv_shortcut.", "nin_shortcut."),)
_VAE_ATTENTION_RENAMES = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)
_UNET_TOP_LEVEL = (
    ("time_embedding.linear_1.", "time_embed.0."),
    ("time_embedding.linear_2.", "time_embed.2."),
    ("conv_in.", "input_blocks.0.0."),
    ("add_embedding.linear_1.", "label_emb.0.0."),
    ("add_embedding.linear_2.", "label_emb.0.2."),
    ("class_embedding.linear_1.", "label_emb.0.0."),
    ("class_embedding.linear_2.", "label_emb.0.2."),
)


def _per_block(value: int | Sequence[int], count: int) -> list[int]:
    return [int(value)] * count if isinstance(value, int) else [int(v) for v in value]


def _plain(pairs: Iterable[tuple[str, str]]) -> PrefixMap:
    return [(src, dst, _NO_RENAMES) for src, dst in pairs]


def _down_side_map(config: Mapping[str, Any]) -> tuple[PrefixMap, int]:
    """Prefix map of conv_in, time embedding, down blocks and mid block; also the input block count."""
    block_types = list(config["down_block_types"])
    layers = _per_block(config["layers_per_block"], len(block_types))
    prefix_map = _plain(_UNET_TOP_LEVEL)
    index = 1
    for block, count in enumerate(layers):
        for layer in range(count):
            prefix_map.append(
                (f"down_blocks.{block}.resnets.{layer}.", f"input_blocks.{index}.0.", _UNET_RESNET_RENAMES)
            )
            prefix_map.append(
                (f"down_blocks.{block}.attentions.{layer}.", f"input_blocks.{index}.1.", _NO_RENAMES)
            )
            index += 1
        if block < len(block_types) - 1:
            prefix_map.append(
                (f"down_blocks.{block}.downsamplers.0.conv.", f"input_blocks.{index}.0.op.", _NO_RENAMES)
            )
            index += 1
    # LDM's middle block interleaves resnet, attention, resnet.
    prefix_map += [
        ("mid_block.resnets.0.", "middle_block.0.", _UNET_RESNET_RENAMES),
        ("mid_block.attentions.0.", "middle_block.1.", _NO_RENAMES),
        ("mid_block.resnets.1.", "middle_block.2.", _UNET_RESNET_RENAMES),
    ]
    return prefix_map, index


def unet_prefix_map(unet_config: Mapping[str, Any]) -> PrefixMap:
    """The diffusers -> LDM module prefix map of a UNet2DConditionModel config."""
    prefix_map, _ = _down_side_map(unet_config)
    prefix_map += _plain([("conv_norm_out.", "out.0."), ("conv_out.", "out.2.")])
    block_types = list(unet_config["up_block_types"])
    down_layers = _per_block(unet_config["layers_per_block"], len(unet_config["down_block_types"]))
    up_layers = [count + 1 for count in reversed(down_layers)]
    index = 0
    for block, count in enumerate(up_layers):
        for layer in range(count):
            prefix_map.append(
                (f"up_blocks.{block}.resnets.{layer}.", f"output_blocks.{index}.0.", _UNET_RESNET_RENAMES)
            )
            prefix_map.append(
                (f"up_blocks.{block}.attentions.{layer}.", f"output_blocks.{index}.1.", _NO_RENAMES)
            )
            index += 1
        if block < len(block_types) - 1:
            # The upsampler follows the last layer's resnet, and its attention when the block has one.
            slot = 2 if "Attn" in block_types[block] else 1
            prefix_map.append(
                (f"up_blocks.{block}.upsamplers.0.", f"output_blocks.{index - 1}.{slot}.", _NO_RENAMES)
            )
    return prefix_map


def controlnet_prefix_map(controlnet_config: Mapping[str, Any]) -> PrefixMap:
    """The diffusers -> LDM prefix map of a ControlNetModel config (ControlNet extension layout)."""
    prefix_map, input_blocks = _down_side_map(controlnet_config)
    hint_blocks = 2 * (len(controlnet_config["conditioning_embedding_out_channels"]) - 1)
    prefix_map += _plain(
        [
            ("controlnet_cond_embedding.conv_in.", "input_hint_block.0."),
            ("controlnet_cond_embedding.conv_out.", f"input_hint_block.{2 * hint_blocks + 2}."),
            ("controlnet_mid_block.", "middle_block_out.0."),
        ]
    )
    # input_hint_block interleaves convs with SiLUs, so the convs sit at even indices.
    prefix_map += _plain(
        (f"controlnet_cond_embedding.blocks.{i}.", f"input_hint_block.{2 * i + 2}.")
        for i in range(hint_blocks)
    )
    prefix_map += _plain((f"controlnet_down_blocks.{i}.", f"zero_convs.{i}.0.") for i in range(input_blocks))
    return prefix_map


def vae_prefix_map(vae_config: Mapping[str, Any]) -> PrefixMap:
    """The diffusers -> LDM prefix map of an AutoencoderKL config."""
    down_count = len(vae_config["down_block_types"])
    up_count = len(vae_config["up_block_types"])
    prefix_map = _plain(
        [("encoder.conv_norm_out.", "encoder.norm_out."), ("decoder.conv_norm_out.", "decoder.norm_out.")]
    )
    for block in range(down_count):
        prefix_map.append(
            (f"encoder.down_blocks.{block}.resnets.", f"encoder.down.{block}.block.", _VAE_RESNET_RENAMES)
        )
        prefix_map.append(
            (f"encoder.down_blocks.{block}.downsamplers.0.", f"encoder.down.{block}.downsample.", _NO_RENAMES)
        )
    # LDM numbers decoder levels from the lowest resolution up, diffusers in execution order.
    for block in range(up_count):
        ldm_block = up_count - 1 - block
        prefix_map.append(
            (f"decoder.up_blocks.{block}.resnets.", f"decoder.up.{ldm_block}.block.", _VAE_RESNET_RENAMES)
        )
        prefix_map.append(
            (f"decoder.up_blocks.{block}.upsamplers.0.", f"decoder.up.{ldm_block}.upsample.", _NO_RENAMES)
        )
    for part in ("encoder", "decoder"):
        prefix_map.append((f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.", _VAE_RESNET_RENAMES))
        prefix_map.append((f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.", _VAE_RESNET_RENAMES))
        prefix_map.append((f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", _VAE_ATTENTION_RENAMES))
    return prefix_map


def _rename(key: str, prefix_map: PrefixMap) -> str:
    """Apply the longest matching prefix; keys with no match keep their name (conv_in, quant_conv, ...)."""
    best = max(
        (entry for entry in prefix_map if key.startswith(entry[0])), key=lambda e: len(e[0]), default=None
    )
    if best is None:
        return key
    source, target, renames = best
    rest = "." + key[len(source) :]
    for old, new in renames:
        if "." + old in rest:
            rest = rest.replace("." + old, "." + new, 1)
            break
    return target + rest[1:]


def convert_with_map(state_dict: StateDict, prefix_map: PrefixMap, prefix: str) -> dict[str, torch.Tensor]:
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        new_key = prefix + _rename(key, prefix_map)
        if new_key in converted:
            raise ValueError(f"two diffusers keys map to {new_key!r}")
        converted[new_key] = tensor
    return converted


def _check_all_mapped(
    state_dict: StateDict, prefix_map: PrefixMap, identity_keys: set[str], what: str
) -> None:
    unmapped = [
        key
        for key in state_dict
        if key not in identity_keys and not any(key.startswith(entry[0]) for entry in prefix_map)
    ]
    if unmapped:
        raise ValueError(f"{what}: no LDM name for {len(unmapped)} keys, e.g. {unmapped[:3]}")


def unet_to_ldm(
    unet_state_dict: StateDict, unet_config: Mapping[str, Any], prefix: str = UNET_PREFIX
) -> dict[str, torch.Tensor]:
    """UNet2DConditionModel weights -> `model.diffusion_model.*` keys."""
    prefix_map = unet_prefix_map(unet_config)
    _check_all_mapped(unet_state_dict, prefix_map, set(), "UNet")
    return convert_with_map(unet_state_dict, prefix_map, prefix)


def controlnet_to_ldm(
    controlnet_state_dict: StateDict, controlnet_config: Mapping[str, Any], prefix: str = CONTROLNET_PREFIX
) -> dict[str, torch.Tensor]:
    """ControlNetModel weights -> `control_model.*` keys as in control_v11p_sd15_*.pth."""
    prefix_map = controlnet_prefix_map(controlnet_config)
    _check_all_mapped(controlnet_state_dict, prefix_map, set(), "ControlNet")
    return convert_with_map(controlnet_state_dict, prefix_map, prefix)


def vae_to_ldm(
    vae_state_dict: StateDict, vae_config: Mapping[str, Any], prefix: str = VAE_PREFIX
) -> dict[str, torch.Tensor]:
    """AutoencoderKL weights -> `first_stage_model.*` keys (prefix "" for a standalone VAE file)."""
    prefix_map = vae_prefix_map(vae_config)
    identity = {
        f"{part}.{layer}.{kind}"
        for part in ("encoder", "decoder")
        for layer in ("conv_in", "conv_out")
        for kind in ("weight", "bias")
    } | {f"{conv}.{kind}" for conv in ("quant_conv", "post_quant_conv") for kind in ("weight", "bias")}
    _check_all_mapped(vae_state_dict, prefix_map, identity, "VAE")
    converted = convert_with_map(vae_state_dict, prefix_map, prefix)
    # LDM's mid attention uses 1x1 convs where diffusers uses linear layers.
    for key, tensor in converted.items():
        if ".mid.attn_1." in key and key.endswith(".weight") and tensor.ndim == 2:
            converted[key] = tensor[:, :, None, None]
    return converted


def pipeline_to_ldm(pipe: Any, family: str) -> dict[str, torch.Tensor]:
    """A whole diffusers SD pipeline -> one A1111 single-file state dict (tensors not cast)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    converted = unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config)
    converted |= vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config)
    if family.startswith("sd1"):
        converted |= clip_l_to_ldm(pipe.text_encoder.state_dict(), "cond_stage_model.transformer.")
    elif family.startswith("sd2"):
        converted |= open_clip_to_ldm(
            pipe.text_encoder.state_dict(),
            "cond_stage_model.model.",
            pad_final_layer=True,
            identity_projection=True,
        )
    elif family == "sdxl-refiner":
        converted |= open_clip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.0.model.")
    else:
        converted |= clip_l_to_ldm(pipe.text_encoder.state_dict(), "conditioner.embedders.0.transformer.")
        converted |= open_clip_to_ldm(pipe.text_encoder_2.state_dict(), "conditioner.embedders.1.model.")
    return converted
