"""What a checkpoint is, from its key names and tensor shapes alone (a safetensors header suffices).

`detect_family` names the family, or raises `InvalidModelFileError` with a guess of what the file is
instead. `infer_architecture` reads the architecture numbers (widths, depths, attention layout, encoder
sizes) from the shapes, as config overrides per diffusers component, so tiny, full-size and distilled
files load through the same bundled templates.

Supported UNet variants: any number of levels, any widths, per-level attention or none, per-layer
transformer depths in down and up blocks (SDXL, SSD-1B, Segmind Vega style), a missing middle block
(BK-SDM small/tiny), one `layers_per_block` for all levels (BK-SDM's 1 down / 2 up included). Not
supported (raise `InvalidModelFileError`): levels with different layer counts, a level where only some
layers have attention, a middle block without attention, a middle block deeper or shallower than the
first layer of the last level when that level has attention (diffusers ties them), and UNets with 5 or
8 input channels (depth, instruct-pix2pix).

Not visible in shapes, so taken from the family template: attention head counts (SD1 keeps 8 heads,
SD2/SDXL 64-wide heads, at least one head), GroupNorm groups (32; 8 for the test factory's tiny widths
below 128), activations, VAE scaling.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.families import FAMILIES, UNET_PREFIX, VAE_PREFIX, Family
from sdweb.models.flow_detect import detect_flow_family

__all__ = ["Shapes", "detect_family", "guess_kind", "infer_architecture", "vae_config_from_ldm_shapes"]

Shapes = Mapping[str, tuple[int, ...]]
Overrides = dict[str, dict[str, Any]]

_CONV_IN = UNET_PREFIX + "input_blocks.0.0.weight"
_TINY_NORM_GROUPS = 8  # sdweb.testing's tiny models; real ones use the template's 32
_OPEN_CLIP_H_DEPTH = 24  # SD2 runs the first 23 of OpenCLIP ViT-H's 24 layers
_SD2_TEXT_HIDDEN = 1024


# ---------------------------------------------------------------------------------------- detection


def detect_family(shapes: Shapes, file_name: str) -> Family:
    """The family of a single-file checkpoint: an A1111/LDM SD file, or a flow-matching transformer (Flux,
    Chroma, SD 3 / 3.5; all-in-one or transformer-only, with or without `model.diffusion_model.` or
    `diffusion_model.`: see sdweb.models.flow_detect). InvalidModelFileError naming the file otherwise."""
    flow = detect_flow_family(shapes, file_name)
    if flow is not None:
        return flow
    conv_in = shapes.get(_CONV_IN)
    if conv_in is None or len(conv_in) != 4:
        raise _not_a_checkpoint(shapes, file_name)
    in_channels = conv_in[1]
    detectable = [f for f in FAMILIES.values()
                  if f.engine == "unet" and f.name not in {g.v_variant for g in FAMILIES.values()}]
    matching = [f for f in detectable if all(_has_prefix(shapes, p) for p in f.text_encoder_prefixes)]
    # SDXL's first encoder prefix is a prefix of nothing else, but prefer the family needing most encoders.
    matching.sort(key=lambda f: -len(f.text_encoder_prefixes))
    if not matching:
        raise InvalidModelFileError(
            f"{file_name} has a Stable Diffusion UNet but no text encoder weights, so it cannot be loaded as a checkpoint.",
            hint="Use a full checkpoint (UNet, VAE and text encoder), as A1111 expects in models/Stable-diffusion.",
        )
    for family in matching:
        if family.unet_in_channels == in_channels:
            return family
    base = matching[0]
    raise InvalidModelFileError(
        f"{file_name} is a {base.label} checkpoint whose UNet takes {in_channels} input channels "
        "(depth or instruct-pix2pix models, for example); sdweb supports 4 (normal) and 9 (inpainting).",
        hint="Use a normal or inpainting checkpoint.",
    )


def _has_prefix(shapes: Shapes, prefix: str) -> bool:
    return any(key.startswith(prefix) for key in shapes)


_LORA = re.compile(
    r"(^lora_(unet|te\d?)_)|(\.lora_(down|up)\.)|(\.lora_[AB]\.)|(\.hada_w1_a$)|(\.lokr_w1)|(\.lora\.(down|up)\.)"
)
_TEXT_ENCODER = re.compile(r"(^|\.)encoder\.(block\.\d+\.layer\.\d+\.SelfAttention|layers\.\d+\.self_attn)\.|"
                           r"^(model\.)?(language_model\.)?layers\.\d+\.self_attn\.q_proj\.")
_UPSCALER = re.compile(r"(^|\.)(conv_first\.weight|RRDB_trunk\.|body\.\d+\.rdb\d\.)|\.sub\.\d+\.RDB\d\.")


def guess_kind(shapes: Shapes) -> str | None:
    """What a non-checkpoint file most likely is: "lora", "vae", "controlnet", "text_encoder", "upscaler",
    "embedding", "diffusers-unet", or None when nothing matches."""
    keys = list(shapes)
    if not keys:
        return None
    if any(_LORA.search(key) for key in keys):
        return "lora"
    if any(key.startswith("control_model.") or "input_hint_block" in key for key in keys) or any(
        key.startswith("controlnet_cond_embedding.") for key in keys
    ):
        return "controlnet"
    if any(_TEXT_ENCODER.search(key) for key in keys):
        return "text_encoder"
    top = {key.split(".", 1)[0] for key in keys}
    if top <= {"encoder", "decoder", "quant_conv", "post_quant_conv", "conv1", "conv2"} or all(
        k.startswith(VAE_PREFIX) for k in keys
    ):
        return "vae"
    if any(_UPSCALER.search(key) for key in keys) or (
        "model.0.weight" in shapes and _has_prefix(shapes, "model.1.sub.")
    ):
        return "upscaler"
    if any(key.startswith(("string_to_param", "emb_params")) for key in keys) or top <= {"clip_l", "clip_g"}:
        return "embedding"
    if "conv_in.weight" in shapes and _has_prefix(shapes, "down_blocks."):
        return "diffusers-unet"
    return None


# kind -> (what it looks like, where it belongs, how it is used)
_GUESSES = {
    "lora": ("a LoRA", "models/Lora", "Use it with <lora:name:1> in the prompt."),
    "vae": ("a VAE", "models/VAE", "Choose it in the SD VAE setting."),
    "controlnet": ("a ControlNet model", "models/ControlNet", "Use it in the ControlNet section."),
    "text_encoder": ("a text encoder (CLIP or T5)", "models/text_encoder",
                     "Choose it under VAE / Text encoder with a transformer-only Flux, Chroma or SD 3 model."),
    "upscaler": ("an upscaler (ESRGAN family)", "models/ESRGAN", "Use it in Extras or hires. fix."),
    "embedding": ("a textual-inversion embedding", "embeddings/", "Use its file name in the prompt."),
    "diffusers-unet": (
        "a single diffusers-format UNet file",
        "models/Stable-diffusion as part of its whole diffusers folder",
        "A diffusers model folder holds model_index.json and one subfolder per component.",
    ),
}


def _not_a_checkpoint(shapes: Shapes, file_name: str) -> InvalidModelFileError:
    if not shapes:
        return InvalidModelFileError(
            f"{file_name} contains no tensors.",
            code="not_a_checkpoint",
            hint="Download it again or remove it.",
        )
    kind = guess_kind(shapes)
    if kind is None:
        return InvalidModelFileError(
            f"{file_name} is not a Stable Diffusion checkpoint: unknown architecture.",
            code="not_a_checkpoint",
            hint="sdweb loads SD 1.x, SD 2.x, SDXL, Flux.1, Chroma and SD 3 / 3.5 checkpoints (.safetensors, .ckpt, "
                 ".gguf) and diffusers folders.",
        )
    what, where, usage = _GUESSES[kind]
    return InvalidModelFileError(
        f"{file_name} is not a checkpoint: it looks like {what}: put it in {where}.",
        code=f"not_a_checkpoint_{kind}",
        hint=usage,
    )


# ------------------------------------------------------------------------------------- architecture


def infer_architecture(shapes: Shapes, family: Family) -> Overrides:
    """Config overrides per diffusers component ("unet", "vae", "text_encoder", "text_encoder_2"), read
    from the tensor shapes of an LDM single file of `family`."""
    overrides: Overrides = {"unet": _unet_config(shapes, family), "vae": _vae_config(shapes)}
    encoders = ("text_encoder_2",) if family.only_text_encoder_2 else ("text_encoder", "text_encoder_2")
    for component, prefix in zip(encoders, family.text_encoder_prefixes, strict=False):
        if prefix in family.open_clip_prefixes:
            overrides[component] = _open_clip_config(shapes, prefix, drop_last=family.base == "sd2")
            if component == "text_encoder":  # a CLIPTextModel: no projection layer to size
                overrides[component].pop("projection_dim")
        else:
            overrides[component] = _clip_l_config(shapes, prefix + "text_model.")
    if family.add_time_ids:
        overrides["unet"] |= _addition_embedding(shapes, family)
    return overrides


def _need(shapes: Shapes, key: str) -> tuple[int, ...]:
    shape = shapes.get(key)
    if shape is None:
        raise InvalidModelFileError(
            f"the weight {key!r} is missing; the file is damaged or of an unsupported layout."
        )
    return shape


def _count(shapes: Shapes, prefix: str) -> int:
    """1 + the largest N among keys `prefix + N.`, or 0."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(m.group(1)) for key in shapes if (m := pattern.match(key))]
    return max(found) + 1 if found else 0


def _norm_groups(widths: list[int], template_groups: int = 32) -> int:
    if min(widths) >= 4 * template_groups and all(w % template_groups == 0 for w in widths):
        return template_groups
    groups = _TINY_NORM_GROUPS
    while groups > 1 and any(w % groups for w in widths):
        groups //= 2
    return groups


def _heads(width: int, family: Family) -> int:
    """Heads do not change weight shapes; follow the family's rule, falling back to a divisor of width."""
    wanted = family.unet_fixed_heads or max(1, width // (family.unet_head_width or 64))
    while width % wanted:
        wanted -= 1
    return wanted


class _Attention:
    """The SpatialTransformer at an LDM block path: its depth, projection kind and context width."""

    def __init__(self, shapes: Shapes, path: str) -> None:
        self.depth = _count(shapes, path + "transformer_blocks.")
        proj_in = shapes.get(path + "proj_in.weight")
        self.linear = proj_in is not None and len(proj_in) == 2
        to_k = shapes.get(path + "transformer_blocks.0.attn2.to_k.weight")
        self.context = to_k[1] if to_k else None


def _resnet_width(shapes: Shapes, path: str) -> int | None:
    shape = shapes.get(path + "out_layers.3.weight")
    return shape[0] if shape else None


def _read_levels(shapes: Shapes, side: str) -> list[list[tuple[int, _Attention | None]]]:
    """Per level (execution order), per layer: (resnet width, attention or None)."""
    levels: list[list[tuple[int, _Attention | None]]] = [[]]
    start = 1 if side == "input_blocks" else 0
    for index in range(start, _count(shapes, f"{UNET_PREFIX}{side}.")):
        path = f"{UNET_PREFIX}{side}.{index}."
        if f"{path}0.op.weight" in shapes:  # downsampler: the level ends
            levels.append([])
            continue
        width = _resnet_width(shapes, path + "0.")
        if width is None:
            raise InvalidModelFileError(f"unsupported UNet layout: {side}.{index} has no resnet.")
        attention = (
            _Attention(shapes, path + "1.") if _has_prefix(shapes, path + "1.transformer_blocks.") else None
        )
        levels[-1].append((width, attention))
        upsampled = any(f"{path}{slot}.conv.weight" in shapes for slot in (1, 2))
        if side == "output_blocks" and upsampled:
            levels.append([])
    return [level for level in levels if level]


def _depths(level: list[tuple[int, _Attention | None]], where: str) -> list[int]:
    depths = [attention.depth if attention else 0 for _, attention in level]
    if 0 in depths and any(depths):
        raise InvalidModelFileError(f"unsupported UNet layout: only some layers of {where} have attention.")
    return depths


def _unet_config(shapes: Shapes, family: Family) -> dict[str, Any]:
    conv_in = _need(shapes, _CONV_IN)
    down = _read_levels(shapes, "input_blocks")
    up = _read_levels(shapes, "output_blocks")
    layers = len(down[0]) if down else 0
    if not layers or any(len(level) != layers for level in down):
        raise InvalidModelFileError("unsupported UNet layout: down levels have different numbers of layers.")
    # diffusers' converter numbers up layers with the same layers_per_block (+1 for the skip input).
    if len(up) != len(down) or any(len(level) != layers + 1 for level in up):
        raise InvalidModelFileError("unsupported UNet layout: up levels do not mirror the down levels.")
    widths = [level[-1][0] for level in down]
    down_depths = [_depths(level, f"down level {i}") for i, level in enumerate(down)]
    up_depths = [_depths(level, f"up level {i}") for i, level in enumerate(up)]
    heads = [_heads(width, family) for width in widths]
    config: dict[str, Any] = {
        "in_channels": conv_in[1],
        "out_channels": _need(shapes, UNET_PREFIX + "out.2.weight")[0],
        "block_out_channels": widths,
        "layers_per_block": layers,
        "down_block_types": ["CrossAttnDownBlock2D" if any(d) else "DownBlock2D" for d in down_depths],
        "up_block_types": ["CrossAttnUpBlock2D" if any(d) else "UpBlock2D" for d in up_depths],
        # SD1's config names one head count for all blocks; SD2/SDXL list them per block.
        "attention_head_dim": heads[0] if family.unet_fixed_heads and len(set(heads)) == 1 else heads,
        "norm_num_groups": _norm_groups(widths),
    }
    attention = next((a for level in down + up for _, a in level if a is not None), None)
    if attention is not None:
        config["use_linear_projection"] = attention.linear
        config["cross_attention_dim"] = attention.context
    time_width = _need(shapes, UNET_PREFIX + "time_embed.0.weight")[0]
    if time_width != 4 * widths[0]:
        config["time_embedding_dim"] = time_width
    return config | _transformer_depths(shapes, down_depths, up_depths)


def _transformer_depths(shapes: Shapes, down: list[list[int]], up: list[list[int]]) -> dict[str, Any]:
    """transformer_layers_per_block (+ reverse_transformer_layers_per_block when asymmetric) and the
    middle block type. Depth 0 marks a layer without attention, where any value fits."""
    mid_path = UNET_PREFIX + "middle_block."
    has_mid = _has_prefix(shapes, mid_path)
    mid_depth = _count(shapes, mid_path + "1.transformer_blocks.") if has_mid else 0
    if has_mid and not mid_depth:
        raise InvalidModelFileError("unsupported UNet layout: the middle block has no attention.")
    result: dict[str, Any] = {"mid_block_type": "UNetMidBlock2DCrossAttn" if has_mid else None}
    last = len(down) - 1
    # diffusers builds the middle block with the depth of the last level's first layer.
    if has_mid and any(down[last]) and down[last][0] != mid_depth:
        raise InvalidModelFileError(
            f"unsupported UNet layout: middle block depth {mid_depth} differs from the last level's {down[last][0]}."
        )
    per_level = []
    for level, depths in enumerate(down):
        seen = {d for d in depths + up[last - level] if d}
        if has_mid and level == last:
            seen.add(mid_depth)
        per_level.append(seen)
    if all(len(seen) <= 1 for seen in per_level):
        used = set().union(*per_level)
        values = [min(seen) if seen else (min(used) if len(used) == 1 else 1) for seen in per_level]
        result["transformer_layers_per_block"] = values[0] if len(set(values)) == 1 else values
        return result
    filled_down = [[d or 1 for d in depths] for depths in down]
    if has_mid and not any(down[last]):
        filled_down[last] = [mid_depth] * len(down[last])
    result["transformer_layers_per_block"] = filled_down
    result["reverse_transformer_layers_per_block"] = [[d or 1 for d in depths] for depths in up]
    return result


def _addition_embedding(shapes: Shapes, family: Family) -> dict[str, Any]:
    """SDXL's micro-conditioning: label_emb input = add_time_ids * addition_time_embed_dim + pooled width."""
    adm_in = _need(shapes, UNET_PREFIX + "label_emb.0.0.weight")[1]
    pooled = _need(shapes, family.text_encoder_prefixes[-1] + "text_projection")[1]
    config: dict[str, Any] = {"projection_class_embeddings_input_dim": adm_in}
    if (adm_in - pooled) > 0 and (adm_in - pooled) % family.add_time_ids == 0:
        config["addition_time_embed_dim"] = (adm_in - pooled) // family.add_time_ids
    return config


def _vae_config(shapes: Shapes) -> dict[str, Any]:
    return vae_config_from_ldm_shapes(shapes, VAE_PREFIX)


def vae_config_from_ldm_shapes(shapes: Shapes, prefix: str) -> dict[str, Any]:
    """AutoencoderKL config numbers of LDM-layout VAE weights under `prefix` ("" for a bare VAE file)."""
    down = prefix + "encoder.down."
    levels = _count(shapes, down)
    if not levels:
        raise InvalidModelFileError(
            "no VAE weights (first_stage_model.*); merge a VAE into it or use a complete checkpoint."
        )
    widths = [_need(shapes, f"{down}{i}.block.0.conv2.weight")[0] for i in range(levels)]
    latent = _need(shapes, prefix + "decoder.conv_in.weight")[1]
    return {
        "block_out_channels": widths,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "layers_per_block": _count(shapes, f"{down}0.block."),
        "latent_channels": latent,
        "in_channels": _need(shapes, prefix + "encoder.conv_in.weight")[1],
        "out_channels": _need(shapes, prefix + "decoder.conv_out.weight")[0],
        "norm_num_groups": _norm_groups(widths),
        "mid_block_add_attention": _has_prefix(shapes, prefix + "encoder.mid.attn_1."),
    }


def _text_heads(hidden: int) -> int:
    heads = max(1, hidden // 64)
    while hidden % heads:
        heads -= 1
    return heads


def _clip_l_config(shapes: Shapes, prefix: str) -> dict[str, Any]:
    """OpenAI CLIP in transformers layout under `prefix` (`...transformer.text_model.`)."""
    vocab, hidden = _need(shapes, prefix + "embeddings.token_embedding.weight")
    return {
        "hidden_size": hidden,
        "vocab_size": vocab,
        "max_position_embeddings": _need(shapes, prefix + "embeddings.position_embedding.weight")[0],
        "num_hidden_layers": _count(shapes, prefix + "encoder.layers."),
        "intermediate_size": _need(shapes, prefix + "encoder.layers.0.mlp.fc1.weight")[0],
        "num_attention_heads": _text_heads(hidden),
        "projection_dim": hidden,
    }


def _open_clip_config(shapes: Shapes, prefix: str, drop_last: bool) -> dict[str, Any]:
    """OpenCLIP (fused q/k/v) under `prefix`. SD2 stops at the penultimate layer, so its last resblock is
    not part of the diffusers model; a real ViT-H file converted from diffusers holds 23 blocks already."""
    vocab, hidden = _need(shapes, prefix + "token_embedding.weight")
    blocks = _count(shapes, prefix + "transformer.resblocks.")
    layers = blocks
    if drop_last:
        layers = min(blocks, _OPEN_CLIP_H_DEPTH - 1) if hidden == _SD2_TEXT_HIDDEN else blocks - 1
    projection = shapes.get(prefix + "text_projection")
    return {
        "hidden_size": hidden,
        "vocab_size": vocab,
        "max_position_embeddings": _need(shapes, prefix + "positional_embedding")[0],
        "num_hidden_layers": max(layers, 1),
        "intermediate_size": _need(shapes, prefix + "transformer.resblocks.0.mlp.c_fc.weight")[0],
        "num_attention_heads": _text_heads(hidden),
        "projection_dim": projection[1] if projection and len(projection) == 2 else hidden,
    }
