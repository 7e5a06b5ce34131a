"""Our width-agnostic transformer key plans against diffusers' own converters and the models themselves.

Full size (meta tensors, no memory): the original-layout keys our factory writes are exactly the ones
diffusers' converters read, and give every diffusers weight with its shape. Tiny (real values): our plan
turns a tiny original-layout state dict into exactly the diffusers module's tensors, and agrees value by
value with diffusers' converters (SD3's is width-agnostic; Flux's and Chroma's split the single blocks'
fused linear1 at the hard-coded 3072, so those two tensors are compared at full size only).
"""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import pytest
import torch
from diffusers.loaders import single_file_utils

import sdweb.models
from sdweb.models.families import FAMILIES
from sdweb.models.flow_convert import (
    conversion_plan,
    layout_from_config,
    layout_from_shapes,
    take,
    to_original,
)
from sdweb.testing.tiny_flow import build_tiny_component

CONFIGS = Path(sdweb.models.__file__).parent / "configs"
CONVERTERS = {
    "FluxTransformer2DModel": single_file_utils.convert_flux_transformer_checkpoint_to_diffusers,
    "ChromaTransformer2DModel": single_file_utils.convert_chroma_transformer_checkpoint_to_diffusers,
    "SD3Transformer2DModel": single_file_utils.convert_sd3_transformer_checkpoint_to_diffusers,
}
FULL_SIZE = ("flux-dev", "flux-schnell", "flux-fill", "chroma", "sd3", "sd35-medium", "sd35-large")
TINY = ("flux-dev", "flux-schnell", "chroma", "sd35-medium")


@pytest.mark.parametrize("name", FULL_SIZE)
def test_full_size_layout_is_what_diffusers_converts(name: str) -> None:
    family = FAMILIES[name]
    config = json.loads((CONFIGS / name / "transformer" / "config.json").read_text())
    with torch.device("meta"):
        model = getattr(diffusers, family.transformer_class).from_config(config)
    expected = model.state_dict()
    plan = conversion_plan(layout_from_config(model.config, family))
    assert {piece.target for piece in plan} == set(expected)
    original = to_original(plan, expected)
    assert layout_from_shapes({k: tuple(v.shape) for k, v in original.items()}, family) == layout_from_config(
        model.config, family)
    remaining = dict(original)
    converted = CONVERTERS[family.transformer_class](remaining)
    assert not remaining, f"keys diffusers does not read: {sorted(remaining)[:5]}"  # it pops what it reads
    assert set(converted) == set(expected)
    assert all(tuple(converted[k].shape) == tuple(expected[k].shape) for k in expected)
    ours = {piece.target: take(piece, original[piece.source]) for piece in plan}
    assert all(tuple(ours[k].shape) == tuple(expected[k].shape) for k in expected)


@pytest.mark.parametrize("name", TINY)
def test_tiny_round_trip_gives_the_module_exactly(name: str) -> None:
    family = FAMILIES[name]
    model = build_tiny_component(f"{name}-transformer")
    expected = model.state_dict()
    original = to_original(conversion_plan(layout_from_config(model.config, family)), expected)
    plan = conversion_plan(layout_from_shapes({k: tuple(v.shape) for k, v in original.items()}, family))
    ours = {piece.target: take(piece, original[piece.source]) for piece in plan}
    assert set(ours) == set(expected)
    for key, tensor in expected.items():
        assert torch.equal(ours[key], tensor), key


@pytest.mark.parametrize("name", TINY)
def test_tiny_values_agree_with_diffusers_converters(name: str) -> None:
    family = FAMILIES[name]
    model = build_tiny_component(f"{name}-transformer")
    original = to_original(conversion_plan(layout_from_config(model.config, family)), model.state_dict())
    plan = conversion_plan(layout_from_shapes({k: tuple(v.shape) for k, v in original.items()}, family))
    ours = {piece.target: take(piece, original[piece.source]) for piece in plan}
    theirs_input = dict(original)
    split_at_3072 = [k for k in original if k.startswith("single_blocks.") and ".linear1." in k]
    for key in split_at_3072:  # diffusers splits these at its fixed width: give it full-size stand-ins
        width = 3 * 3072 + 4 * 3072
        theirs_input[key] = torch.empty((width, *original[key].shape[1:]), device="meta")
    theirs = CONVERTERS[family.transformer_class](theirs_input)
    compared = 0
    for key, tensor in theirs.items():
        if tensor.device.type == "meta":
            continue
        assert torch.equal(ours[key], tensor), key
        compared += 1
    assert compared >= len(ours) - 8 * len(split_at_3072)
    # The swapped halves (BFL shift, scale -> diffusers scale, shift) really moved.
    if family.transformer_class != "ChromaTransformer2DModel":
        first, second = original["final_layer.adaLN_modulation.1.weight"].chunk(2)
        assert torch.equal(ours["norm_out.linear.weight"], torch.cat([second, first]))
