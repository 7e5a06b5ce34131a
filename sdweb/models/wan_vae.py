"""The Qwen-Image VAE from the files users have: diffusers' `AutoencoderKLQwenImage` has no single-file loader.

The VAE is the Wan 2.1 one (causal 3-D convolutions; `AutoencoderKLQwenImage` and `AutoencoderKLWan` have the
same weight names). Files come in two layouts:

- Wan's original keys, as ComfyUI's `qwen_image_vae.safetensors`: `encoder.conv1`, `encoder.downsamples.N.
  residual.{0,2,3,6}` / `.shortcut` / `.resample.1` / `.time_conv`, `encoder.middle.{0,1,2}`, `encoder.head.
  {0,2}`, `conv1` / `conv2` (the quant convolutions), and the same for the decoder with `upsamples.N`;
- diffusers' keys, as the Qwen/Qwen-Image repository's `vae/diffusion_pytorch_model.safetensors`.

`to_diffusers_key` / `to_wan_key` rename one key either way at any depth (the decoder's flat `upsamples` list is
`num_res_blocks + 1` resnets then an upsampler per level: diffusers' own converter assumes 2 resnets per level);
`vae_numbers` reads base width, latent channels, width multipliers, resnets per level and the temporal
downsampling from the shapes. The per-channel latent mean and std are not in the files: the family's template
holds Qwen-Image's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from sdweb.core.errors import InvalidModelFileError

__all__ = ["is_wan_layout", "load_qwen_vae", "qwen_vae_tensors", "to_diffusers_key", "to_wan_key", "vae_numbers"]

Shapes = Mapping[str, tuple[int, ...]]

_RESIDUAL = (("residual.0.gamma", "norm1.gamma"), ("residual.2.", "conv1."), ("residual.3.gamma", "norm2.gamma"),
             ("residual.6.", "conv2."), ("shortcut.", "conv_shortcut."))
_TOP = (("conv1.", "quant_conv."), ("conv2.", "post_quant_conv."), ("encoder.conv1.", "encoder.conv_in."),
        ("decoder.conv1.", "decoder.conv_in."), ("encoder.head.0.", "encoder.norm_out."),
        ("encoder.head.2.", "encoder.conv_out."), ("decoder.head.0.", "decoder.norm_out."),
        ("decoder.head.2.", "decoder.conv_out."))
_MIDDLE = {"0": "resnets.0.", "1": "attentions.0.", "2": "resnets.1."}
_WAN_INDEXED = re.compile(r"^(encoder|decoder)\.(downsamples|upsamples|middle)\.(\d+)\.(.*)$")
_DIFFUSERS_MIDDLE = re.compile(r"^(encoder|decoder)\.mid_block\.((?:resnets|attentions)\.\d+\.)(.*)$")
_DIFFUSERS_INDEXED = re.compile(r"^(encoder|decoder)\.(down_blocks|up_blocks)\.(\d+)\.(?:(resnets|upsamplers)\.(\d+)\.)?(.*)$")


def is_wan_layout(shapes: Shapes) -> bool:
    return "encoder.conv1.weight" in shapes


def _swap(rest: str, pairs: tuple[tuple[str, str], ...], forward: bool) -> str:
    for wan, diffusers in pairs:
        old, new = (wan, diffusers) if forward else (diffusers, wan)
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def to_diffusers_key(key: str, res_blocks: int) -> str:
    """A Wan-layout VAE key in diffusers' names (`res_blocks`: resnets per encoder level)."""
    match = _WAN_INDEXED.match(key)
    if match is None:
        return _swap(key, _TOP, forward=True)
    side, group, index, rest = match.groups()
    if group == "middle":
        return f"{side}.mid_block.{_MIDDLE[index]}{_swap(rest, _RESIDUAL, forward=True)}"
    if group == "downsamples":
        return f"{side}.down_blocks.{index}.{_swap(rest, _RESIDUAL, forward=True)}"
    level, position = divmod(int(index), res_blocks + 2)  # the decoder: res_blocks + 1 resnets, then an upsampler
    if position <= res_blocks:
        return f"{side}.up_blocks.{level}.resnets.{position}.{_swap(rest, _RESIDUAL, forward=True)}"
    return f"{side}.up_blocks.{level}.upsamplers.0.{rest}"


def to_wan_key(key: str, res_blocks: int) -> str:
    """The inverse of :func:`to_diffusers_key` (for writing files in the Wan layout)."""
    middle = _DIFFUSERS_MIDDLE.match(key)
    if middle is not None:
        side, block, rest = middle.groups()
        index = {value: name for name, value in _MIDDLE.items()}[block]
        return f"{side}.middle.{index}.{_swap(rest, _RESIDUAL, forward=False)}"
    match = _DIFFUSERS_INDEXED.match(key)
    if match is None:
        return _swap(key, _TOP, forward=False)
    side, group, index, inner, inner_index, rest = match.groups()
    if group == "down_blocks":
        return f"{side}.downsamples.{index}.{_swap(rest, _RESIDUAL, forward=False)}"
    base = int(index) * (res_blocks + 2)
    if inner == "resnets":
        return f"{side}.upsamples.{base + int(inner_index)}.{_swap(rest, _RESIDUAL, forward=False)}"
    return f"{side}.upsamples.{base + res_blocks + 1}.{rest}"


def _indexes(shapes: Shapes, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for key in shapes if (m := pattern.match(key))})


def _res_blocks(shapes: Shapes, wan: bool) -> int:
    """Resnets per encoder level: the blocks before the first downsampler."""
    prefix = "encoder.downsamples." if wan else "encoder.down_blocks."
    blocks = _indexes(shapes, prefix)
    resamplers = [i for i in blocks if f"{prefix}{i}.resample.1.weight" in shapes]
    return resamplers[0] if resamplers else len(blocks)


def _need(shapes: Shapes, key: str) -> tuple[int, ...]:
    shape = shapes.get(key)
    if shape is None:
        raise InvalidModelFileError(f"the VAE weight {key!r} is missing; the file is damaged or not a Qwen-Image VAE.",
                                    code="vae_family_mismatch")
    return shape


def vae_numbers(shapes: Shapes) -> dict[str, Any]:
    """AutoencoderKLQwenImage config numbers from diffusers-named shapes."""
    base = _need(shapes, "encoder.conv_in.weight")[0]
    res_blocks = _res_blocks(shapes, wan=False)
    blocks = len(_indexes(shapes, "encoder.down_blocks."))
    levels = (blocks + 1) // (res_blocks + 1)
    if not res_blocks or levels * (res_blocks + 1) - 1 != blocks:
        raise InvalidModelFileError("unsupported Qwen-Image VAE layout (its encoder levels do not fit).",
                                    code="vae_family_mismatch")
    widths = [_need(shapes, f"encoder.down_blocks.{level * (res_blocks + 1)}.conv1.weight")[0]
              for level in range(levels)]
    temporal = [f"encoder.down_blocks.{level * (res_blocks + 1) + res_blocks}.time_conv.weight" in shapes
                for level in range(levels - 1)]
    return {"base_dim": base, "z_dim": _need(shapes, "post_quant_conv.weight")[0],
            "dim_mult": [width // base for width in widths], "num_res_blocks": res_blocks,
            "temperal_downsample": temporal}


def qwen_vae_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VAE's tensors under diffusers' names (a Wan-layout file renamed; a diffusers one as it is)."""
    shapes = {key: tuple(value.shape) for key, value in tensors.items()}
    if not is_wan_layout(shapes):
        return dict(tensors)
    res_blocks = _res_blocks(shapes, wan=True)
    return {to_diffusers_key(key, res_blocks): value for key, value in tensors.items()}


def load_qwen_vae(file_name: str, tensors: Mapping[str, torch.Tensor], template: Mapping[str, Any],
                  dtype: torch.dtype) -> Any:
    """An AutoencoderKLQwenImage (CPU, `dtype`) with the weights of a Qwen-Image VAE, configured from `template`
    (the family's bundled config) and the tensors' shapes; InvalidModelFileError naming the file otherwise."""
    import diffusers
    from accelerate import init_empty_weights

    from sdweb.models.weights import check_fits, fill_module

    converted = qwen_vae_tensors(tensors)
    shapes = {key: tuple(value.shape) for key, value in converted.items()}
    try:
        config = {k: v for k, v in template.items() if not k.startswith("_")} | vae_numbers(shapes)
    except InvalidModelFileError as exc:
        raise InvalidModelFileError(f"{file_name}: {exc.message}", code=exc.code,
                                    hint="Use the Qwen-Image VAE (qwen_image_vae.safetensors).") from exc
    with init_empty_weights():
        vae = diffusers.AutoencoderKLQwenImage.from_config(config)
    check_fits(vae, shapes, file_name, "Qwen-Image VAE")
    return fill_module(vae, converted.items(), dtype, file_name, "Qwen-Image VAE")
