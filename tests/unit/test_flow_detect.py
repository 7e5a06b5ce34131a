"""Flow-family detection and architecture numbers from shapes: full-size layouts (meta tensors, no memory),
the tiny test layouts, prefixes, and the variants that must be refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import pytest
import torch

import sdweb.models
from sdweb.core.errors import InvalidModelFileError
from sdweb.models.detect import detect_family, guess_kind
from sdweb.models.families import FAMILIES
from sdweb.models.flow_convert import conversion_plan, layout_from_config, to_original
from sdweb.models.flow_detect import (
    file_components,
    flux_rope_axes,
    strip_prefix,
    transformer_config,
    transformer_prefix,
)
from sdweb.testing.tiny_flow import TRANSFORMERS

CONFIGS = Path(sdweb.models.__file__).parent / "configs"
FLOW = ("flux-dev", "flux-schnell", "flux-fill", "flux-kontext", "chroma", "sd3", "sd35-medium", "sd35-large", "z-image",
        "flux2-klein")
PREFIXES = ("", "model.diffusion_model.", "diffusion_model.")


def template(family: str) -> dict:
    return json.loads((CONFIGS / FAMILIES[family].template / "transformer" / "config.json").read_text())


def original_shapes(family: str, config: dict, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """The key names and shapes of a real-layout file of this transformer config (meta: no memory)."""
    record = FAMILIES[family]
    with torch.device("meta"):
        model = getattr(diffusers, record.transformer_class).from_config(config)
    original = to_original(conversion_plan(layout_from_config(model.config, record)), model.state_dict())
    return {prefix + key: tuple(tensor.shape) for key, tensor in original.items()}


@pytest.fixture(scope="module")
def full_size() -> dict[str, dict[str, tuple[int, ...]]]:
    return {family: original_shapes(family, template(family)) for family in FLOW}


@pytest.mark.parametrize("family", FLOW)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_full_size_files_detect_with_any_prefix(full_size, family, prefix) -> None:
    shapes = {prefix + key: shape for key, shape in full_size[family].items()}
    assert detect_family(shapes, f"x-{family}.safetensors").name == family
    assert transformer_prefix(shapes) == prefix
    assert file_components(shapes).components == {"transformer"}


@pytest.mark.parametrize("family", FLOW)
def test_full_size_numbers_read_back_the_template(full_size, family) -> None:
    wanted = template(family)
    read = transformer_config(full_size[family], FAMILIES[family], {"_class_name": wanted["_class_name"]})
    for key, value in read.items():
        if key == "_class_name":
            continue
        expected = wanted[key] if wanted.get(key) is not None or key != "out_channels" else wanted["in_channels"]
        if key == "sample_size":  # not in the weights: min(template's, position grid)
            continue
        assert value == (list(expected) if isinstance(expected, tuple) else expected), key


@pytest.mark.parametrize("family", list(TRANSFORMERS))
def test_tiny_numbers_read_back_the_tiny_config(family) -> None:
    config = TRANSFORMERS[family]
    shapes = original_shapes(family, config, "model.diffusion_model.")
    assert detect_family(shapes, f"tiny-{family}.safetensors").name == family  # Kontext is told by name
    read = transformer_config(strip_prefix(shapes, "model.diffusion_model."), FAMILIES[family], template(family))
    for key, value in config.items():
        assert read[key] == (list(value) if isinstance(value, tuple) else value), key


def test_tiny_sd3_is_ours_where_diffusers_guesses_v1() -> None:
    """diffusers demands an adaLN width of 9216 for SD3; a tiny SD 3.5 medium is "v1" to it."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    shapes = original_shapes("sd35-medium", TRANSFORMERS["sd35-medium"], "model.diffusion_model.")
    meta = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    assert infer_diffusers_model_type(meta) == "v1"
    assert detect_family(shapes, "tiny.safetensors").name == "sd35-medium"


def test_dev_schnell_fill_and_chroma_are_told_apart(full_size) -> None:
    dev = full_size["flux-dev"]
    schnell = {k: v for k, v in dev.items() if not k.startswith("guidance_in.")}
    assert detect_family(schnell, "x").name == "flux-schnell"
    fill = dict(dev, **{"img_in.weight": (3072, 384)})
    assert detect_family(fill, "x").name == "flux-fill"
    assert detect_family(full_size["chroma"], "x").name == "chroma"  # Chroma has the Flux sentinel too


def test_sd3_variants_by_attn2_and_ln_q(full_size) -> None:
    assert detect_family(full_size["sd3"], "x").name == "sd3"
    assert detect_family(full_size["sd35-large"], "x").name == "sd35-large"
    medium = full_size["sd35-medium"]
    assert any(".attn2." in key for key in medium) and any(".ln_q." in key for key in medium)
    assert detect_family(medium, "x").name == "sd35-medium"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"double_stream_modulation_img.lin.weight": (1, 1)}, "Flux.2"),
        ({"double_blocks.0.img_attn.qkv.weight.quant_state.bitsandbytes__nf4": (1,)}, "NF4"),
        ({"img_in.weight": (3072, 1)}, "NF4"),
        ({"img_in.weight": (3072, 128)}, "input takes 128 channels"),
    ],
)
def test_unsupported_flux_variants_are_named(full_size, change, expected) -> None:
    shapes = dict(full_size["flux-dev"], **change)
    with pytest.raises(InvalidModelFileError) as caught:
        detect_family(shapes, "odd.safetensors")
    assert "odd.safetensors" in str(caught.value) and expected in str(caught.value)


def test_chroma_radiance_is_refused(full_size) -> None:
    shapes = {k: v for k, v in full_size["chroma"].items() if not k.startswith("img_in.")}
    with pytest.raises(InvalidModelFileError, match="Radiance"):
        detect_family(shapes, "radiance.safetensors")


def test_all_in_one_components() -> None:
    shapes = original_shapes("flux-dev", TRANSFORMERS["flux-dev"], "model.diffusion_model.")
    shapes |= {"text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.weight": (49408, 8),
               "text_encoders.t5xxl.transformer.shared.weight": (32128, 24),
               "vae.encoder.conv_in.weight": (8, 3, 3, 3), "vae.decoder.conv_in.weight": (16, 16, 3, 3)}
    found = file_components(shapes)
    assert found.components == {"transformer", "vae", "clip_l", "t5xxl"}
    assert found.vae_prefix == "vae."
    assert found.text_encoder_prefixes["t5xxl"] == "text_encoders.t5xxl.transformer."
    sd3 = {"first_stage_model.encoder.conv_in.weight": (8, 3, 3, 3), "first_stage_model.decoder.conv_in.weight": (1,)}
    assert file_components(sd3).vae_prefix == "first_stage_model."


@pytest.mark.parametrize(("head", "axes"), [(128, [16, 56, 56]), (16, [4, 6, 6]), (32, [4, 14, 14]), (64, [8, 28, 28])])
def test_rope_axes(head, axes) -> None:
    assert flux_rope_axes(head) == axes and sum(axes) == head and all(a % 2 == 0 for a in axes)


def test_sd_detection_is_unchanged_by_flow_families() -> None:
    assert detect_family({"model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
                          "cond_stage_model.transformer.text_model.x": (1,)}, "sd1.safetensors").name == "sd1"


@pytest.mark.parametrize(
    ("shapes", "kind"),
    [
        ({"encoder.block.0.layer.0.SelfAttention.q.weight": (4096, 4096), "shared.weight": (32128, 4096)}, "text_encoder"),
        ({"encoder.block.0.layer.0.SelfAttention.q.weight": (4096, 4096)}, "text_encoder"),
        ({"text_model.encoder.layers.0.self_attn.q_proj.weight": (768, 768)}, "text_encoder"),
        ({"encoder.layers.0.self_attn.q_proj.weight": (768, 768), "embeddings.token_embedding.weight": (1, 1)},
         "text_encoder"),
    ],
)
def test_loose_text_encoders_are_guessed_for_the_error_message(shapes, kind) -> None:
    assert guess_kind(shapes) == kind
    with pytest.raises(InvalidModelFileError, match="models/text_encoder"):
        detect_family(shapes, "t5xxl_fp16.safetensors")
