"""Original transformer keys (BFL for Flux and Chroma, MMDiT for SD3, Tongyi's for Z-Image) -> diffusers keys,
at any width; Qwen-Image's files already use diffusers' names (its plan is the identity).

A conversion is a *plan*: one `Piece` per diffusers weight, naming the original key it comes from and how
(a part of a fused q/k/v(/mlp) tensor split along dim 0, or BFL's (shift, scale) halves swapped to diffusers'
(scale, shift)). The plan is computed from the file's shapes only, so it can be checked against the model
before any tensor is read, executed tensor by tensor (`take`), and inverted (`to_original`) to write test
files in the original layout. diffusers' own Flux and Chroma converters hard-code the 3072 width; the key
names here are the ones those converters (and diffusers' width-agnostic SD3 converter) read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from sdweb.models.families import Family

__all__ = ["Layout", "Piece", "conversion_plan", "layout_from_config", "layout_from_shapes", "take", "target_shape",
           "to_original"]

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class Piece:
    """One diffusers weight `target` made from the original weight `source`."""

    target: str
    source: str
    sizes: tuple[int, ...] = ()  # split the source along dim 0 into these sizes and take `part`
    part: int = 0
    swap: bool = False  # exchange the two halves along dim 0 (BFL shift, scale -> diffusers scale, shift)


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def take(piece: Piece, source: torch.Tensor) -> torch.Tensor:
    """The diffusers tensor of `piece` from its original tensor."""
    tensor = torch.split(source, piece.sizes, dim=0)[piece.part] if piece.sizes else source
    return _swap_halves(tensor) if piece.swap else tensor


def target_shape(piece: Piece, source_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape `take` gives for a source of `source_shape` (a logical shape)."""
    return (piece.sizes[piece.part], *source_shape[1:]) if piece.sizes else tuple(source_shape)


def to_original(plan: list[Piece], state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of the plan: original-layout tensors from a diffusers state dict (for writing test files)."""
    by_source: dict[str, list[Piece]] = {}
    for piece in plan:
        by_source.setdefault(piece.source, []).append(piece)
    original = {}
    for source, pieces in by_source.items():
        parts = [state_dict[p.target] for p in sorted(pieces, key=lambda p: p.part)]
        if pieces[0].swap:  # swapping is its own inverse
            parts = [_swap_halves(parts[0])]
        original[source] = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]
    return original


@dataclass(frozen=True)
class Layout:
    """What a plan depends on: the structure of one transformer (from a file's shapes or a diffusers config)."""

    kind: str  # "flux", "chroma", "sd3", "zimage", "qwenimage" or "flux2"
    width: int
    layers: int  # double blocks (Flux, Chroma) or joint blocks (SD3)
    single_layers: int = 0
    mlp: int = 0  # the single blocks' MLP width
    guidance: bool = False  # Flux dev: a guidance embedder
    approximator_layers: int = 0  # Chroma
    qk_norm: bool = False  # SD3.5
    dual_attention_layers: tuple[int, ...] = ()  # SD3.5 medium
    refiner_layers: int = 0  # Z-Image: noise and context refiner blocks each


def _kind(family: Family) -> str:
    return {"SD3Transformer2DModel": "sd3", "ChromaTransformer2DModel": "chroma",
            "ZImageTransformer2DModel": "zimage", "QwenImageTransformer2DModel": "qwenimage",
            "Flux2Transformer2DModel": "flux2"}.get(family.transformer_class or "", "flux")


def _count(shapes: Shapes, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(m.group(1)) for key in shapes if (m := pattern.match(key))]
    return max(found) + 1 if found else 0


def layout_from_shapes(shapes: Shapes, family: Family) -> Layout:
    """The layout of a transformer in original keys (`shapes` without prefix)."""
    kind = _kind(family)
    if kind == "zimage":
        return Layout(kind, shapes["x_embedder.weight"][0], _count(shapes, "layers."),
                      refiner_layers=_count(shapes, "noise_refiner."))
    if kind == "qwenimage":
        return Layout(kind, shapes["img_in.weight"][0], _count(shapes, "transformer_blocks."))
    if kind == "flux2":
        return Layout(kind, shapes["img_in.weight"][0], _count(shapes, "double_blocks."),
                      _count(shapes, "single_blocks."), guidance="guidance_in.in_layer.weight" in shapes)
    if kind == "sd3":
        layers = _count(shapes, "joint_blocks.")
        return Layout(kind, shapes["joint_blocks.0.x_block.attn.qkv.weight"][0] // 3, layers,
                      qk_norm="joint_blocks.0.x_block.attn.ln_q.weight" in shapes,
                      dual_attention_layers=tuple(i for i in range(layers)
                                                  if f"joint_blocks.{i}.x_block.attn2.qkv.weight" in shapes))
    width = shapes["img_in.weight"][0]
    linear1 = shapes.get("single_blocks.0.linear1.weight", (3 * width,))
    return Layout(kind, width, _count(shapes, "double_blocks."), _count(shapes, "single_blocks."),
                  linear1[0] - 3 * width, "guidance_in.in_layer.weight" in shapes,
                  _count(shapes, "distilled_guidance_layer.layers."))


def layout_from_config(config: Mapping[str, Any], family: Family) -> Layout:
    """The layout of a diffusers transformer config (for writing original-layout files)."""
    kind = _kind(family)
    if kind == "zimage":
        return Layout(kind, config["dim"], config["n_layers"], refiner_layers=config["n_refiner_layers"])
    width = config["num_attention_heads"] * config["attention_head_dim"]
    if kind == "qwenimage":
        return Layout(kind, width, config["num_layers"])
    if kind == "flux2":
        return Layout(kind, width, config["num_layers"], config["num_single_layers"],
                      guidance=bool(config.get("guidance_embeds")))
    if kind == "sd3":
        return Layout(kind, width, config["num_layers"], qk_norm=bool(config.get("qk_norm")),
                      dual_attention_layers=tuple(config.get("dual_attention_layers") or ()))
    return Layout(kind, width, config["num_layers"], config["num_single_layers"], 4 * width,
                  bool(config.get("guidance_embeds")), int(config.get("approximator_layers") or 0))


def _linear(target: str, source: str, swap: bool = False) -> list[Piece]:
    return [Piece(f"{target}.weight", f"{source}.weight", swap=swap),
            Piece(f"{target}.bias", f"{source}.bias", swap=swap)]


def _split(targets: tuple[str, ...], source: str, sizes: tuple[int, ...]) -> list[Piece]:
    """A fused linear (weight and bias) split along its outputs into `targets`."""
    return [Piece(f"{target}.{kind}", f"{source}.{kind}", sizes, part)
            for kind in ("weight", "bias") for part, target in enumerate(targets)]


def _flux_double_block(i: int, width: int, chroma: bool) -> list[Piece]:
    new, old = f"transformer_blocks.{i}.", f"double_blocks.{i}."
    qkv = (width, width, width)
    plan = [] if chroma else _linear(new + "norm1.linear", old + "img_mod.lin") + _linear(
        new + "norm1_context.linear", old + "txt_mod.lin")
    plan += _split((new + "attn.to_q", new + "attn.to_k", new + "attn.to_v"), old + "img_attn.qkv", qkv)
    plan += _split((new + "attn.add_q_proj", new + "attn.add_k_proj", new + "attn.add_v_proj"),
                   old + "txt_attn.qkv", qkv)
    for side, q, k in (("img_attn", "norm_q", "norm_k"), ("txt_attn", "norm_added_q", "norm_added_k")):
        plan += [Piece(f"{new}attn.{q}.weight", f"{old}{side}.norm.query_norm.scale"),
                 Piece(f"{new}attn.{k}.weight", f"{old}{side}.norm.key_norm.scale")]
    plan += _linear(new + "ff.net.0.proj", old + "img_mlp.0") + _linear(new + "ff.net.2", old + "img_mlp.2")
    plan += _linear(new + "ff_context.net.0.proj", old + "txt_mlp.0")
    plan += _linear(new + "ff_context.net.2", old + "txt_mlp.2")
    plan += _linear(new + "attn.to_out.0", old + "img_attn.proj") + _linear(new + "attn.to_add_out", old + "txt_attn.proj")
    return plan


def _flux_single_block(i: int, width: int, mlp: int, chroma: bool) -> list[Piece]:
    new, old = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
    plan = [] if chroma else _linear(new + "norm.linear", old + "modulation.lin")
    plan += _split((new + "attn.to_q", new + "attn.to_k", new + "attn.to_v", new + "proj_mlp"), old + "linear1",
                   (width, width, width, mlp))
    plan += [Piece(new + "attn.norm_q.weight", old + "norm.query_norm.scale"),
             Piece(new + "attn.norm_k.weight", old + "norm.key_norm.scale")]
    return plan + _linear(new + "proj_out", old + "linear2")


def _flux_plan(layout: Layout) -> list[Piece]:
    chroma = layout.kind == "chroma"
    plan = _linear("context_embedder", "txt_in") + _linear("x_embedder", "img_in")
    if chroma:
        plan += _linear("distilled_guidance_layer.in_proj", "distilled_guidance_layer.in_proj")
        plan += _linear("distilled_guidance_layer.out_proj", "distilled_guidance_layer.out_proj")
        for i in range(layout.approximator_layers):
            new = f"distilled_guidance_layer.layers.{i}."
            plan += _linear(new + "linear_1", new + "in_layer") + _linear(new + "linear_2", new + "out_layer")
            plan.append(Piece(f"distilled_guidance_layer.norms.{i}.weight", f"distilled_guidance_layer.norms.{i}.scale"))
    else:
        embedders = [("timestep_embedder", "time_in"), ("text_embedder", "vector_in")]
        embedders += [("guidance_embedder", "guidance_in")] if layout.guidance else []
        for new, old in embedders:
            plan += _linear(f"time_text_embed.{new}.linear_1", f"{old}.in_layer")
            plan += _linear(f"time_text_embed.{new}.linear_2", f"{old}.out_layer")
    for i in range(layout.layers):
        plan += _flux_double_block(i, layout.width, chroma)
    for i in range(layout.single_layers):
        plan += _flux_single_block(i, layout.width, layout.mlp, chroma)
    plan += _linear("proj_out", "final_layer.linear")
    if not chroma:
        plan += _linear("norm_out.linear", "final_layer.adaLN_modulation.1", swap=True)
    return plan


def _sd3_block(layout: Layout, i: int) -> list[Piece]:
    new, x, c = f"transformer_blocks.{i}.", f"joint_blocks.{i}.x_block.", f"joint_blocks.{i}.context_block."
    last = i == layout.layers - 1
    qkv = (layout.width,) * 3
    plan = _split((new + "attn.to_q", new + "attn.to_k", new + "attn.to_v"), x + "attn.qkv", qkv)
    plan += _split((new + "attn.add_q_proj", new + "attn.add_k_proj", new + "attn.add_v_proj"), c + "attn.qkv", qkv)
    if layout.qk_norm:
        plan += [Piece(new + "attn.norm_q.weight", x + "attn.ln_q.weight"),
                 Piece(new + "attn.norm_k.weight", x + "attn.ln_k.weight"),
                 Piece(new + "attn.norm_added_q.weight", c + "attn.ln_q.weight"),
                 Piece(new + "attn.norm_added_k.weight", c + "attn.ln_k.weight")]
    plan += _linear(new + "attn.to_out.0", x + "attn.proj")
    if not last:
        plan += _linear(new + "attn.to_add_out", c + "attn.proj")
    if i in layout.dual_attention_layers:
        plan += _split((new + "attn2.to_q", new + "attn2.to_k", new + "attn2.to_v"), x + "attn2.qkv", qkv)
        if layout.qk_norm:
            plan += [Piece(new + "attn2.norm_q.weight", x + "attn2.ln_q.weight"),
                     Piece(new + "attn2.norm_k.weight", x + "attn2.ln_k.weight")]
        plan += _linear(new + "attn2.to_out.0", x + "attn2.proj")
    plan += _linear(new + "norm1.linear", x + "adaLN_modulation.1")
    # the last context block only conditions the image: diffusers' AdaLayerNormContinuous wants (scale, shift)
    plan += _linear(new + "norm1_context.linear", c + "adaLN_modulation.1", swap=last)
    plan += _linear(new + "ff.net.0.proj", x + "mlp.fc1") + _linear(new + "ff.net.2", x + "mlp.fc2")
    if not last:
        plan += _linear(new + "ff_context.net.0.proj", c + "mlp.fc1") + _linear(new + "ff_context.net.2", c + "mlp.fc2")
    return plan


def _sd3_plan(layout: Layout) -> list[Piece]:
    plan = [Piece("pos_embed.pos_embed", "pos_embed")] + _linear("pos_embed.proj", "x_embedder.proj")
    plan += _linear("time_text_embed.timestep_embedder.linear_1", "t_embedder.mlp.0")
    plan += _linear("time_text_embed.timestep_embedder.linear_2", "t_embedder.mlp.2")
    plan += _linear("context_embedder", "context_embedder")
    plan += _linear("time_text_embed.text_embedder.linear_1", "y_embedder.mlp.0")
    plan += _linear("time_text_embed.text_embedder.linear_2", "y_embedder.mlp.2")
    for i in range(layout.layers):
        plan += _sd3_block(layout, i)
    plan += _linear("proj_out", "final_layer.linear")
    return plan + _linear("norm_out.linear", "final_layer.adaLN_modulation.1", swap=True)


def _zimage_block(block: str, width: int, modulated: bool) -> list[Piece]:
    """A Z-Image block: fused q/k/v split, `out` -> `to_out.0`, q/k norms renamed, the rest as named."""
    plan = [Piece(f"{block}.attention.to_{name}.weight", f"{block}.attention.qkv.weight", (width,) * 3, part)
            for part, name in enumerate("qkv")]
    plan += [Piece(f"{block}.attention.to_out.0.weight", f"{block}.attention.out.weight"),
             Piece(f"{block}.attention.norm_q.weight", f"{block}.attention.q_norm.weight"),
             Piece(f"{block}.attention.norm_k.weight", f"{block}.attention.k_norm.weight")]
    same = [f"feed_forward.{w}.weight" for w in ("w1", "w2", "w3")]
    same += [f"{norm}.weight" for norm in ("attention_norm1", "ffn_norm1", "attention_norm2", "ffn_norm2")]
    same += ["adaLN_modulation.0.weight", "adaLN_modulation.0.bias"] if modulated else []
    return plan + [Piece(f"{block}.{key}", f"{block}.{key}") for key in same]


def _zimage_plan(layout: Layout) -> list[Piece]:
    """Z-Image (diffusers' `convert_z_image_transformer_checkpoint_to_diffusers` renames; `norm_final` unused)."""
    plan = [Piece(key, key) for key in ("x_pad_token", "cap_pad_token", "cap_embedder.0.weight",
                                        "cap_embedder.1.weight", "cap_embedder.1.bias", "t_embedder.mlp.0.weight",
                                        "t_embedder.mlp.0.bias", "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias")]
    plan += _linear("all_x_embedder.2-1", "x_embedder") + _linear("all_final_layer.2-1.linear", "final_layer.linear")
    plan += _linear("all_final_layer.2-1.adaLN_modulation.1", "final_layer.adaLN_modulation.1")
    for i in range(layout.refiner_layers):
        plan += _zimage_block(f"noise_refiner.{i}", layout.width, True)
        plan += _zimage_block(f"context_refiner.{i}", layout.width, False)
    for i in range(layout.layers):
        plan += _zimage_block(f"layers.{i}", layout.width, True)
    return plan


_QWEN_BLOCK_LINEARS = ("img_mod.1", "txt_mod.1", "attn.to_q", "attn.to_k", "attn.to_v", "attn.add_q_proj",
                       "attn.add_k_proj", "attn.add_v_proj", "attn.to_out.0", "attn.to_add_out", "img_mlp.net.0.proj",
                       "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2")
_QWEN_BLOCK_NORMS = ("attn.norm_q", "attn.norm_k", "attn.norm_added_q", "attn.norm_added_k")
_QWEN_LINEARS = ("img_in", "txt_in", "time_text_embed.timestep_embedder.linear_1",
                 "time_text_embed.timestep_embedder.linear_2", "norm_out.linear", "proj_out")


def _qwen_image_plan(layout: Layout) -> list[Piece]:
    """Qwen-Image: every weight keeps its diffusers name (what diffusers' single-file mapping does too)."""
    names = [f"{linear}.{kind}" for linear in _QWEN_LINEARS for kind in ("weight", "bias")] + ["txt_norm.weight"]
    for i in range(layout.layers):
        block = f"transformer_blocks.{i}."
        names += [f"{block}{linear}.{kind}" for linear in _QWEN_BLOCK_LINEARS for kind in ("weight", "bias")]
        names += [f"{block}{norm}.weight" for norm in _QWEN_BLOCK_NORMS]
    return [Piece(name, name) for name in names]


_FLUX2_RENAMES = (("x_embedder", "img_in"), ("context_embedder", "txt_in"),
                  ("time_guidance_embed.timestep_embedder.linear_1", "time_in.in_layer"),
                  ("time_guidance_embed.timestep_embedder.linear_2", "time_in.out_layer"),
                  ("double_stream_modulation_img.linear", "double_stream_modulation_img.lin"),
                  ("double_stream_modulation_txt.linear", "double_stream_modulation_txt.lin"),
                  ("single_stream_modulation.linear", "single_stream_modulation.lin"), ("proj_out", "final_layer.linear"))
_FLUX2_DOUBLE = (("attn.norm_q", "img_attn.norm.query_norm", "scale"), ("attn.norm_k", "img_attn.norm.key_norm", "scale"),
                 ("attn.to_out.0", "img_attn.proj", "weight"), ("ff.linear_in", "img_mlp.0", "weight"),
                 ("ff.linear_out", "img_mlp.2", "weight"), ("attn.norm_added_q", "txt_attn.norm.query_norm", "scale"),
                 ("attn.norm_added_k", "txt_attn.norm.key_norm", "scale"), ("attn.to_add_out", "txt_attn.proj", "weight"),
                 ("ff_context.linear_in", "txt_mlp.0", "weight"), ("ff_context.linear_out", "txt_mlp.2", "weight"))
_FLUX2_SINGLE = (("attn.to_qkv_mlp_proj", "linear1", "weight"), ("attn.to_out", "linear2", "weight"),
                 ("attn.norm_q", "norm.query_norm", "scale"), ("attn.norm_k", "norm.key_norm", "scale"))


def _flux2_plan(layout: Layout) -> list[Piece]:
    """Flux.2 (diffusers' `convert_flux2_transformer_checkpoint_to_diffusers` renames): no biases; fused q/k/v split
    in three, RMS-norm `scale`s -> `weight`, the final modulation's (shift, scale) swapped."""
    renames = _FLUX2_RENAMES + ((("time_guidance_embed.guidance_embedder.linear_1", "guidance_in.in_layer"),
                                 ("time_guidance_embed.guidance_embedder.linear_2", "guidance_in.out_layer"))
                                if layout.guidance else ())
    plan = [Piece(f"{target}.weight", f"{source}.weight") for target, source in renames]
    plan.append(Piece("norm_out.linear.weight", "final_layer.adaLN_modulation.1.weight", swap=True))
    width = layout.width
    for i in range(layout.layers):
        block, original = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for names, stream in ((("to_q", "to_k", "to_v"), "img"), (("add_q_proj", "add_k_proj", "add_v_proj"), "txt")):
            plan += [Piece(f"{block}attn.{name}.weight", f"{original}{stream}_attn.qkv.weight", (width,) * 3, part)
                     for part, name in enumerate(names)]
        plan += [Piece(f"{block}{target}.weight", f"{original}{source}.{kind}") for target, source, kind in _FLUX2_DOUBLE]
    for i in range(layout.single_layers):
        plan += [Piece(f"single_transformer_blocks.{i}.{target}.weight", f"single_blocks.{i}.{source}.{kind}")
                 for target, source, kind in _FLUX2_SINGLE]
    return plan


def conversion_plan(layout: Layout) -> list[Piece]:
    """One Piece per diffusers weight of a transformer of this layout (Flux / Chroma BFL keys, SD3 MMDiT keys,
    Z-Image's original keys -> diffusers keys; Qwen-Image's as they are)."""
    if layout.kind == "zimage":
        return _zimage_plan(layout)
    if layout.kind == "qwenimage":
        return _qwen_image_plan(layout)
    if layout.kind == "flux2":
        return _flux2_plan(layout)
    return _sd3_plan(layout) if layout.kind == "sd3" else _flux_plan(layout)
