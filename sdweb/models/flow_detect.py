"""Flow-matching families (Flux.1, Chroma, SD 3 / 3.5, Z-Image, Qwen-Image, Flux.2 Klein) from key names and tensor
shapes alone.

A file may carry a transformer (BFL keys for Flux, Chroma and Flux.2, MMDiT keys for SD3, diffusers keys for Qwen-Image;
bare, under `model.diffusion_model.` as ComfyUI/Forge checkpoints have it, or `diffusion_model.`), a VAE (LDM or
Wan keys under `vae.` or `first_stage_model.`) and text encoders (`text_encoders.{clip_l,clip_g,t5xxl}.transformer.`,
ComfyUI's `text_encoders.qwen25_7b.transformer.` for Qwen2.5-VL, `text_encoders.qwen3_4b` / `qwen3_8b.transformer.model.`
for Qwen3).
`file_components` says which; `detect_flow_family` names the family from the records' sentinel keys; the
config readers turn shapes into diffusers config numbers, so tiny, full-size and pruned files share one path:

- Flux / Chroma: width and input channels from `img_in`, head width from the q-norm size (heads = width /
  head width), block counts from key indices, joint width from `txt_in`, pooled width from `vector_in`,
  `guidance_embeds` from `guidance_in`, output channels from `final_layer.linear`, Chroma's approximator
  from `distilled_guidance_layer`. The RoPE axes (no weights) follow `flux_rope_axes`.
- SD3: width, input channels and patch from `x_embedder.proj`, layers from `joint_blocks`, head width from
  `ln_q` (3.5), else width / layers (SD3's rule: 64 per layer), caption and joint widths from
  `context_embedder`, pooled from `y_embedder`, dual attention layers from `x_block.attn2`, qk-norm from
  `ln_q`, the position grid from `pos_embed`.
- Z-Image: width and patch input from `x_embedder`, head width from `q_norm` (heads = width / head width),
  layers and refiner layers from key indices, caption width from `cap_embedder.1`; RoPE axes by `rope_axes_3`.
- Qwen-Image: width and input channels from `img_in`, head width from `attn.norm_q`, layers from key indices,
  joint width from `txt_norm`, output channels from `proj_out` (2 x 2 patches); RoPE axes by `flux_rope_axes`.
- Flux.2 (Klein): as Flux, with the MLP ratio from `img_mlp.0` (gate and up), the timestep channels from `time_in`,
  four RoPE axes of a quarter head each (`rope_axes_4`); `txt_in` is 3 x the Qwen3's width (`klein_size`).
- Qwen3 text encoders: width and vocabulary from `embed_tokens`, head width from `q_norm`, heads from `q_proj`
  / `k_proj`. Qwen2.5-VL: the same for its language model (128-wide heads), its vision tower's width, depth, MLP
  and output widths from `patch_embed`, `blocks.N`, `merger` (80-wide heads, as in every released size).
- CLIP (HF layout, with or without `text_model.`) and T5 (HF `encoder.block.N.layer.*`): widths, depths,
  vocabulary, heads (T5: from the relative attention bias; CLIP: width / 64, as in every released CLIP).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.families import FAMILIES, TEXT_ENCODERS_PREFIX, Family

__all__ = [
    "TRANSFORMER_PREFIXES",
    "FileComponents",
    "clip_config",
    "clip_inner_prefix",
    "qwen25vl_config",
    "qwen25vl_prefixes",
    "qwen_config",
    "rope_axes_3",
    "detect_flow_family",
    "encoder_widths",
    "file_components",
    "flux_rope_axes",
    "klein_size",
    "rope_axes_4",
    "strip_prefix",
    "t5_config",
    "transformer_config",
    "transformer_prefix",
]

Shapes = Mapping[str, tuple[int, ...]]

TRANSFORMER_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "")
VAE_PREFIXES = ("vae.", "first_stage_model.")
# text-encoder slot -> the name ComfyUI saves it under in all-in-one files (`text_encoders.<name>.transformer.`)
# (Qwen3: `qwen3_4b` for Z-Image and Klein 4B, `qwen3_8b` for Klein 9B; its decoder's keys under a further `model.`)
ENCODER_SLOTS = {"clip_l": ("clip_l",), "clip_g": ("clip_g",), "t5xxl": ("t5xxl",), "qwen25vl": ("qwen25_7b",),
                 "qwen3": ("qwen3_4b", "qwen3_8b")}
_FLOW_FAMILIES = tuple(f for f in FAMILIES.values() if f.engine == "flow")
FLUX2_DEV_JOINT = 15360  # Flux.2 Dev's `txt_in` width: 3 x Mistral Small 3.1's 5120
# Flux.2 Klein's `txt_in` width (3 x the Qwen3's) -> the model's size as users know it
KLEIN_SIZES = {3 * 2560: "4B", 3 * 4096: "9B"}
_QUANT_MARKERS = ("bitsandbytes__nf4", "bitsandbytes__fp4", ".quant_state.", ".absmax", ".quant_map")


def _count(shapes: Shapes, prefix: str) -> int:
    """1 + the largest N among keys `prefix + N.`, or 0."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(m.group(1)) for key in shapes if (m := pattern.match(key))]
    return max(found) + 1 if found else 0


def _need(shapes: Shapes, key: str) -> tuple[int, ...]:
    shape = shapes.get(key)
    if shape is None:
        raise InvalidModelFileError(f"the weight {key!r} is missing; the file is damaged or of an unsupported layout.")
    return shape


def strip_prefix(shapes: Shapes, prefix: str) -> dict[str, tuple[int, ...]]:
    """The entries under `prefix`, named without it."""
    return {key[len(prefix):]: shape for key, shape in shapes.items() if key.startswith(prefix)}


# ------------------------------------------------------------------------------------ what a file holds


def transformer_prefix(shapes: Shapes) -> str | None:
    """The prefix of a flow transformer's keys in this file ("" for a bare one), or None when it has none."""
    sentinels = {key for family in _FLOW_FAMILIES for key in family.sentinel_keys[:1]}
    for prefix in TRANSFORMER_PREFIXES:
        if any(prefix + key in shapes for key in sentinels):
            return prefix
    return None


def _vae_prefix(shapes: Shapes) -> str | None:
    for prefix in VAE_PREFIXES:
        for conv in ("conv_in", "conv1"):  # LDM / diffusers, or Wan's (the Qwen-Image VAE)
            if prefix + f"decoder.{conv}.weight" in shapes and prefix + f"encoder.{conv}.weight" in shapes:
                return prefix
    return None


@dataclass(frozen=True)
class FileComponents:
    """Which parts of a pipeline one file carries, and under which key prefix."""

    transformer_prefix: str | None
    vae_prefix: str | None
    text_encoder_prefixes: dict[str, str]  # slot ("clip_l", "clip_g", "t5xxl") -> prefix

    @property
    def components(self) -> frozenset[str]:
        """"transformer", "vae" and the text-encoder slots present."""
        found = set(self.text_encoder_prefixes)
        if self.transformer_prefix is not None:
            found.add("transformer")
        if self.vae_prefix is not None:
            found.add("vae")
        return frozenset(found)


def file_components(shapes: Shapes) -> FileComponents:
    """What a flow checkpoint carries: all-in-one (ComfyUI / Forge layout) or transformer-only."""
    prefix = transformer_prefix(shapes)
    encoders = {}
    for slot, names in ENCODER_SLOTS.items():
        for saved_as in names:
            encoder_prefix = f"{TEXT_ENCODERS_PREFIX}{saved_as}.transformer."
            if slot == "qwen3" and encoder_prefix + "model.embed_tokens.weight" in shapes:
                encoder_prefix += "model."
            if any(key.startswith(encoder_prefix) for key in shapes):
                encoders[slot] = encoder_prefix
                break
    return FileComponents(prefix, _vae_prefix(shapes), encoders)


# ---------------------------------------------------------------------------------------- detection


def _refuse_known_unsupported(inner: Shapes, file_name: str) -> None:
    if "double_stream_modulation_img.lin.weight" in inner and (
            inner.get("txt_in.weight", (0, 0))[1:] == (FLUX2_DEV_JOINT,) or "single_stream_modulation.lin.weight"
            not in inner):
        raise InvalidModelFileError(
            f"{file_name} is a Flux.2 Dev transformer, which needs the Mistral Small 3.1 text encoder sdweb does not "
            "support; sdweb loads the Flux.2 Klein 4B / 9B models (Qwen3 text encoders).",
            code="unsupported_family", hint="Use flux-2-klein-4b or flux-2-klein-9b (or their base versions).")
    if any(marker in key for key in inner for marker in _QUANT_MARKERS) or inner.get("img_in.weight", (0, 0))[1:] == (1,):
        raise InvalidModelFileError(
            f"{file_name} is a bitsandbytes NF4/FP4 quantized transformer, which sdweb cannot load.",
            code="unsupported_quantization",
            hint="Use the GGUF (Q8_0, Q5, Q4) or fp8 / fp16 version of the model instead.")
    if "__index_timestep_zero__" in inner:
        raise InvalidModelFileError(
            f"{file_name} is Qwen-Image-Edit-2511 (several reference images, the Edit Plus pipeline), which sdweb "
            "cannot run yet.", code="unsupported_family", hint="Use Qwen-Image-Edit or Qwen-Image.")
    if "distilled_guidance_layer.in_proj.weight" in inner and "img_in.weight" not in inner:
        raise InvalidModelFileError(
            f"{file_name} is Chroma Radiance (a pixel-space model); sdweb loads the latent Chroma models.",
            code="unsupported_family", hint="Use Chroma1-HD or another latent Chroma file.")


def _in_channels(inner: Shapes) -> int | None:
    for key in ("img_in.weight", "x_embedder.proj.weight", "x_embedder.weight"):
        if key in inner and len(inner[key]) >= 2:
            return inner[key][1]
    return None


def detect_flow_family(shapes: Shapes, file_name: str) -> Family | None:
    """The flow family of a file holding a Flux / Chroma / SD3 transformer (all-in-one or transformer-only),
    None when it holds none. Among the families whose sentinel keys are all present and whose transformer
    takes the file's input channels, the one with most sentinels wins (Chroma over schnell, dev over
    schnell, 3.5 medium over 3.5 large over SD3), then the one whose `file_name_word` is in the file name
    (Kontext over dev: their weights look alike). InvalidModelFileError for a known unsupported variant."""
    prefix = transformer_prefix(shapes)
    if prefix is None:
        return None
    inner = strip_prefix(shapes, prefix)
    _refuse_known_unsupported(inner, file_name)
    in_channels = _in_channels(inner)
    name = file_name.lower()
    candidates = [f for f in _FLOW_FAMILIES if f.sentinel_keys and all(k in inner for k in f.sentinel_keys)
                  and (not f.file_name_word or f.file_name_word in name)]
    matching = [f for f in candidates if f.unet_in_channels == in_channels]
    if not matching:
        what = candidates[0].label if candidates else "flow-matching"
        raise InvalidModelFileError(
            f"{file_name} is a {what} transformer whose input takes {in_channels} channels; sdweb supports "
            f"{', '.join(sorted({str(f.unet_in_channels) for f in candidates})) or 'none'} for it "
            "(Flux depth / canny control models are not supported).",
            code="unsupported_family", hint="Use a normal or Fill model of the family.")
    return max(matching, key=lambda f: (len(f.sentinel_keys), bool(f.file_name_word)))


# ------------------------------------------------------------------------------------ config numbers


def flux_rope_axes(head_dim: int) -> list[int]:
    """RoPE axes (no weights, so not in the file) for a Flux / Chroma head width: (16, 56, 56) for the real
    128; otherwise the first axis about 1/8 of the head, the other two equal, all even (16 -> 4, 6, 6)."""
    first = max(2, head_dim // 8 // 2 * 2)
    while first < head_dim and (head_dim - first) % 4:
        first += 2
    rest = (head_dim - first) // 2
    if rest <= 0:
        raise InvalidModelFileError(f"unsupported attention head width {head_dim}.")
    return [first, rest, rest]


def _stream_blocks_config(inner: Shapes, hidden: int, head_dim: int, in_channels: int) -> dict[str, Any]:
    """What Flux.1 and Flux.2 (BFL keys: double_blocks, single_blocks, img_in, txt_in) size the same way."""
    return {
        "in_channels": in_channels,
        "out_channels": _need(inner, "final_layer.linear.weight")[0],
        "num_layers": _count(inner, "double_blocks."),
        "num_single_layers": _count(inner, "single_blocks."),
        "attention_head_dim": head_dim,
        "num_attention_heads": hidden // head_dim,
        "joint_attention_dim": _need(inner, "txt_in.weight")[1],
    }


def _flux_config(inner: Shapes, family: Family) -> dict[str, Any]:
    hidden, in_channels = _need(inner, "img_in.weight")
    head_dim = _need(inner, "double_blocks.0.img_attn.norm.query_norm.scale")[0]
    if hidden % head_dim or _need(inner, "double_blocks.0.img_mlp.0.weight")[0] != 4 * hidden:
        raise InvalidModelFileError("unsupported Flux layout (attention or MLP widths do not fit diffusers' model).")
    config: dict[str, Any] = {**_stream_blocks_config(inner, hidden, head_dim, in_channels),
                              "axes_dims_rope": flux_rope_axes(head_dim), "patch_size": 1}
    if family.transformer_class == "ChromaTransformer2DModel":
        approximator = _need(inner, "distilled_guidance_layer.in_proj.weight")
        config |= {
            "approximator_num_channels": approximator[1],
            "approximator_hidden_dim": approximator[0],
            "approximator_layers": _count(inner, "distilled_guidance_layer.layers."),
        }
    else:
        config |= {
            "pooled_projection_dim": _need(inner, "vector_in.in_layer.weight")[1],
            "guidance_embeds": "guidance_in.in_layer.weight" in inner,
        }
    return config


def _sd3_config(inner: Shapes) -> dict[str, Any]:
    hidden, in_channels, patch, _ = _need(inner, "x_embedder.proj.weight")
    layers = _count(inner, "joint_blocks.")
    ln_q = inner.get("joint_blocks.0.x_block.attn.ln_q.weight")
    # without qk-norm (SD3 medium) the heads equal the depth: width = 64 x depth
    sd3_head = hidden // layers if layers and hidden % layers == 0 else 64
    head_dim = ln_q[0] if ln_q is not None else sd3_head
    grid = _need(inner, "pos_embed")[1]
    max_size = math.isqrt(grid)
    if hidden % head_dim or max_size * max_size != grid:
        raise InvalidModelFileError("unsupported SD3 layout (attention width or position grid do not fit).")
    caption, joint = _need(inner, "context_embedder.weight")
    return {
        "in_channels": in_channels,
        "patch_size": patch,
        "out_channels": _need(inner, "final_layer.linear.weight")[0] // (patch * patch),
        "num_layers": layers,
        "attention_head_dim": head_dim,
        "num_attention_heads": hidden // head_dim,
        "joint_attention_dim": joint,
        "caption_projection_dim": caption,
        "pooled_projection_dim": _need(inner, "y_embedder.mlp.0.weight")[1],
        "pos_embed_max_size": max_size,
        "dual_attention_layers": [i for i in range(layers) if f"joint_blocks.{i}.x_block.attn2.qkv.weight" in inner],
        "qk_norm": "rms_norm" if ln_q is not None else None,
    }


def rope_axes_3(head_dim: int) -> list[int]:
    """Z-Image's three RoPE axes (no weights): (32, 48, 48) for its 128-wide heads, i.e. a quarter then two
    equal rest parts, all even (16 -> 4, 6, 6)."""
    first = max(2, head_dim // 4 // 2 * 2)
    while first < head_dim and (head_dim - first) % 4:
        first += 2
    if head_dim - first <= 0:
        raise InvalidModelFileError(f"unsupported attention head width {head_dim}.")
    return [first, (head_dim - first) // 2, (head_dim - first) // 2]


def _zimage_config(inner: Shapes) -> dict[str, Any]:
    dim, patch_in = _need(inner, "x_embedder.weight")
    head_dim = _need(inner, "layers.0.attention.q_norm.weight")[0]
    if dim % head_dim or patch_in % 4 or _need(inner, "layers.0.attention.qkv.weight")[0] != 3 * dim:
        raise InvalidModelFileError("unsupported Z-Image layout (attention or patch widths do not fit diffusers' model).")
    return {
        "dim": dim,
        "in_channels": patch_in // 4,  # 2 x 2 patches of one frame
        "n_layers": _count(inner, "layers."),
        "n_refiner_layers": _count(inner, "noise_refiner."),
        "n_heads": dim // head_dim,
        "n_kv_heads": dim // head_dim,
        "cap_feat_dim": _need(inner, "cap_embedder.1.weight")[1],
        "axes_dims": rope_axes_3(head_dim),
    }


def _qwen_image_config(inner: Shapes, patch: int) -> dict[str, Any]:
    width, in_channels = _need(inner, "img_in.weight")
    head_dim = _need(inner, "transformer_blocks.0.attn.norm_q.weight")[0]
    out = _need(inner, "proj_out.weight")[0]
    if width % head_dim or out % (patch * patch) or _need(inner, "txt_in.weight")[0] != width:
        raise InvalidModelFileError("unsupported Qwen-Image layout (attention or patch widths do not fit diffusers' "
                                    "model).")
    return {
        "in_channels": in_channels,
        "out_channels": out // (patch * patch),
        "num_layers": _count(inner, "transformer_blocks."),
        "attention_head_dim": head_dim,
        "num_attention_heads": width // head_dim,
        "joint_attention_dim": _need(inner, "txt_norm.weight")[0],
        "axes_dims_rope": flux_rope_axes(head_dim),
    }


def _flux2_config(inner: Shapes) -> dict[str, Any]:
    hidden, in_channels = _need(inner, "img_in.weight")
    head_dim = _need(inner, "double_blocks.0.img_attn.norm.query_norm.scale")[0]
    mlp_in = _need(inner, "double_blocks.0.img_mlp.0.weight")[0]  # gate and up: 2 x mlp_ratio x width
    if hidden % head_dim or mlp_in % (2 * hidden):
        raise InvalidModelFileError("unsupported Flux.2 layout (attention or MLP widths do not fit diffusers' model).")
    return {
        **_stream_blocks_config(inner, hidden, head_dim, in_channels),
        "timestep_guidance_channels": _need(inner, "time_in.in_layer.weight")[1],
        "mlp_ratio": mlp_in / (2 * hidden),
        "axes_dims_rope": rope_axes_4(head_dim),
        "guidance_embeds": "guidance_in.in_layer.weight" in inner,
    }


def rope_axes_4(head_dim: int) -> list[int]:
    """Flux.2's four RoPE axes (time, row, column, text position; no weights): a quarter of the head each, even
    (128 -> 32, 32, 32, 32)."""
    if head_dim % 8:
        raise InvalidModelFileError(f"unsupported attention head width {head_dim}.")
    return [head_dim // 4] * 4


def klein_size(inner: Shapes) -> str:
    """"4B" or "9B" from a Klein transformer's `txt_in` width, "" for another width (a tiny or unknown one)."""
    return KLEIN_SIZES.get(inner.get("txt_in.weight", (0, 0))[1], "")


def encoder_widths(shapes: Shapes, family: Family) -> dict[str, int]:
    """slot -> the text encoder width the file's transformer takes, where one family runs with encoders of several
    widths (Qwen3: Z-Image's caption width; Flux.2 Klein's `txt_in` over its 3 hidden states: 4B 2560, 9B 4096)."""
    prefix = transformer_prefix(shapes)
    inner = strip_prefix(shapes, prefix or "")
    for spec in family.text_encoders:
        if spec.slot != "qwen3":
            continue
        if "cap_embedder.1.weight" in inner:
            return {"qwen3": inner["cap_embedder.1.weight"][1]}
        if "txt_in.weight" in inner:
            return {"qwen3": inner["txt_in.weight"][1] // len(spec.hidden_states)}
    return {}


def transformer_config(inner: Shapes, family: Family, template: Mapping[str, Any]) -> dict[str, Any]:
    """The transformer config: `template` (the family's bundled full-size config) with the numbers read from
    `inner`, the transformer's shapes without prefix."""
    if family.transformer_class == "ZImageTransformer2DModel":
        return dict(template) | _zimage_config(inner)
    if family.transformer_class == "QwenImageTransformer2DModel":
        return dict(template) | _qwen_image_config(inner, int(template.get("patch_size", 2)))
    if family.transformer_class == "Flux2Transformer2DModel":
        return dict(template) | _flux2_config(inner)
    if family.transformer_class == "SD3Transformer2DModel":
        numbers = _sd3_config(inner)
        numbers["sample_size"] = min(int(template.get("sample_size", 128)), numbers["pos_embed_max_size"])
    else:
        numbers = _flux_config(inner, family)
    return dict(template) | numbers


def clip_inner_prefix(shapes: Shapes, prefix: str) -> str:
    """`prefix + "text_model."` when the CLIP weights under `prefix` use it, else `prefix` (flattened form)."""
    return prefix + "text_model." if prefix + "text_model.embeddings.token_embedding.weight" in shapes else prefix


def clip_config(shapes: Shapes, prefix: str) -> dict[str, Any]:
    """CLIPTextConfig numbers of the HF-layout CLIP text encoder under `prefix` (heads: width / 64, min 1)."""
    inner = clip_inner_prefix(shapes, prefix)
    vocab, hidden = _need(shapes, inner + "embeddings.token_embedding.weight")
    heads = max(1, hidden // 64)
    while hidden % heads:
        heads -= 1
    projection = shapes.get(prefix + "text_projection.weight")
    return {
        "hidden_size": hidden,
        "vocab_size": vocab,
        "max_position_embeddings": _need(shapes, inner + "embeddings.position_embedding.weight")[0],
        "num_hidden_layers": _count(shapes, inner + "encoder.layers."),
        "intermediate_size": _need(shapes, inner + "encoder.layers.0.mlp.fc1.weight")[0],
        "num_attention_heads": heads,
        "projection_dim": projection[0] if projection else hidden,
    }


def qwen_config(shapes: Shapes, prefix: str) -> dict[str, Any]:
    """Qwen3 / Qwen2 text-model config numbers of the HF-layout decoder under `prefix` (`embed_tokens`,
    `layers.N.self_attn.*`, `norm`; the caller strips any `model.`). Head width from the q-norm (Qwen3) or, without
    one, width / heads at 128 per head (every Qwen2.5 size)."""
    vocab, hidden = _need(shapes, prefix + "embed_tokens.weight")
    attention = prefix + "layers.0.self_attn."
    q_norm = shapes.get(attention + "q_norm.weight")
    head_dim = q_norm[0] if q_norm else min(128, hidden)
    queries, keys = _need(shapes, attention + "q_proj.weight")[0], _need(shapes, attention + "k_proj.weight")[0]
    if queries % head_dim or keys % head_dim:
        raise InvalidModelFileError("unsupported Qwen text encoder layout (attention widths do not fit).")
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": _count(shapes, prefix + "layers."),
        "intermediate_size": _need(shapes, prefix + "layers.0.mlp.gate_proj.weight")[0],
        "head_dim": head_dim,
        "num_attention_heads": queries // head_dim,
        "num_key_value_heads": keys // head_dim,
    }


_QWEN25VL_LM_PREFIXES = ("model.language_model.", "model.", "language_model.", "")  # transformers 5, ComfyUI / HF, bare
_QWEN25VL_VISION_PREFIXES = ("model.visual.", "visual.")
VISION_HEAD_WIDTH = 80  # Qwen2.5-VL's vision tower: 1280 wide, 16 heads


def qwen25vl_prefixes(shapes: Shapes, root: str) -> tuple[str, str | None]:
    """Where a Qwen2.5-VL's language model and vision tower (None: the file has none) start under `root`."""
    language = next((root + p for p in _QWEN25VL_LM_PREFIXES if root + p + "embed_tokens.weight" in shapes), root)
    vision = next((root + p for p in _QWEN25VL_VISION_PREFIXES if root + p + "patch_embed.proj.weight" in shapes),
                  None)
    return language, vision


def _vision_config(shapes: Shapes, prefix: str) -> dict[str, Any]:
    hidden, _, temporal, patch, _ = _need(shapes, prefix + "patch_embed.proj.weight")
    merged = _need(shapes, prefix + "merger.mlp.0.weight")[1]
    merge = math.isqrt(merged // hidden)
    heads = max(1, hidden // VISION_HEAD_WIDTH)
    while hidden % heads:
        heads -= 1
    if merge * merge * hidden != merged:
        raise InvalidModelFileError("unsupported Qwen2.5-VL vision tower (its patch merger does not fit).")
    return {
        "hidden_size": hidden,
        "depth": _count(shapes, prefix + "blocks."),
        "intermediate_size": _need(shapes, prefix + "blocks.0.mlp.gate_proj.weight")[0],
        "num_heads": heads,
        "out_hidden_size": _need(shapes, prefix + "merger.mlp.2.weight")[0],
        "patch_size": patch,
        "temporal_patch_size": temporal,
        "spatial_merge_size": merge,
    }


def qwen25vl_config(shapes: Shapes, root: str, template: Mapping[str, Any], vision: bool) -> dict[str, Any]:
    """The Qwen2.5-VL encoder's config from the file under `root`: the text model's (flat, for
    `Qwen2_5_VLTextModel`) or, with `vision`, the whole model's (`text_config` + `vision_config`, for
    `Qwen2_5_VLModel`). The M-RoPE sections scale with the head width (16, 24, 24 for 128)."""
    language, tower = qwen25vl_prefixes(shapes, root)
    text = dict(template["text_config"]) | qwen_config(shapes, language)
    head_dim = text["head_dim"]
    if head_dim % 16:
        raise InvalidModelFileError(f"unsupported Qwen2.5-VL layout (attention heads {head_dim} wide).")
    text["rope_scaling"] = {"type": "mrope", "mrope_section": [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]}
    if not vision:
        return text
    if tower is None:
        raise InvalidModelFileError("it has no vision tower (`visual.` weights).", code="module_mismatch")
    numbers = _vision_config(shapes, tower)
    if numbers["out_hidden_size"] != text["hidden_size"]:
        raise InvalidModelFileError("its vision tower's output does not fit its language model.")
    return {key: value for key, value in template.items() if key not in ("text_config", "vision_config")} | {
        "text_config": text, "vision_config": dict(template["vision_config"]) | numbers}


def t5_config(shapes: Shapes, prefix: str) -> dict[str, Any]:
    """T5Config numbers of the HF-layout T5 encoder under `prefix`."""
    attention = prefix + "encoder.block.0.layer.0.SelfAttention."
    embedding = shapes.get(prefix + "shared.weight") or _need(shapes, prefix + "encoder.embed_tokens.weight")
    buckets, heads = _need(shapes, attention + "relative_attention_bias.weight")
    inner = _need(shapes, attention + "q.weight")[0]
    gated = prefix + "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in shapes
    wi = "wi_0" if gated else "wi"
    return {
        "vocab_size": embedding[0],
        "d_model": embedding[1],
        "d_kv": inner // heads,
        "num_heads": heads,
        "num_layers": _count(shapes, prefix + "encoder.block."),
        "d_ff": _need(shapes, f"{prefix}encoder.block.0.layer.1.DenseReluDense.{wi}.weight")[0],
        "relative_attention_num_buckets": buckets,
        "feed_forward_proj": "gated-gelu" if gated else "relu",
        "is_gated_act": gated,
        "dense_act_fn": "gelu_new" if gated else "relu",
    }
