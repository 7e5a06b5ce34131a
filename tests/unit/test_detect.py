"""Family detection and architecture inference from key names and shapes alone.

Full-size SD1.5 / SD2 / SDXL / refiner shape dicts come from the bundled real-size templates, built on
the meta device (no weights in memory) and renamed to LDM keys with sdweb.models.ldm_convert.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

import sdweb.models
from sdweb.core.errors import InvalidModelFileError
from sdweb.models.detect import detect_family, guess_kind, infer_architecture
from sdweb.models.families import FAMILIES, Family
from sdweb.models.ldm_convert import unet_to_ldm, vae_to_ldm
from sdweb.models.ldm_convert_clip import clip_l_to_ldm, open_clip_to_ldm
from sdweb.testing.tiny_configs import tiny_spec

CONFIGS = Path(sdweb.models.__file__).parent / "configs"
DETECTABLE = ["sd1", "sd1-inpaint", "sd2", "sd2-inpaint", "sdxl", "sdxl-inpaint", "sdxl-refiner"]
Shapes = dict[str, tuple[int, ...]]


def template(family: str, component: str) -> dict[str, Any]:
    name = "scheduler/scheduler_config.json" if component == "scheduler" else f"{component}/config.json"
    return json.loads((CONFIGS / family / name).read_text())


def shapes_of(state_dict: dict[str, torch.Tensor]) -> Shapes:
    return {key: tuple(tensor.shape) for key, tensor in state_dict.items()}


def meta_unet(config: dict[str, Any]) -> UNet2DConditionModel:
    with torch.device("meta"):
        return UNet2DConditionModel.from_config(config)


def ldm_shapes(family: Family, configs: dict[str, dict[str, Any]]) -> Shapes:
    """The LDM single-file shapes of a pipeline with these component configs (meta device)."""
    unet = meta_unet(configs["unet"])
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(configs["vae"])
        state = unet_to_ldm(unet.state_dict(), unet.config) | vae_to_ldm(vae.state_dict(), vae.config)
        components = ["text_encoder_2"] if family.only_text_encoder_2 else ["text_encoder", "text_encoder_2"]
        for component, prefix in zip(components, family.text_encoder_prefixes, strict=False):
            model_class = CLIPTextModelWithProjection if component == "text_encoder_2" else CLIPTextModel
            config = {k: v for k, v in configs[component].items() if k != "architectures"}
            encoder = model_class(CLIPTextConfig(**config)).state_dict()
            if prefix not in family.open_clip_prefixes:
                state |= clip_l_to_ldm(encoder, prefix)
            else:
                sd2 = family.base == "sd2"
                state |= open_clip_to_ldm(encoder, prefix, pad_final_layer=sd2, identity_projection=sd2)
    return shapes_of(state)


def real_configs(family: Family) -> dict[str, dict[str, Any]]:
    components = ["unet", "vae", "text_encoder", "text_encoder_2"]
    return {c: template(family.template, c) for c in components if (CONFIGS / family.template / c).is_dir()}


@pytest.fixture(scope="module")
def real_shapes() -> dict[str, Shapes]:
    return {name: ldm_shapes(FAMILIES[name], real_configs(FAMILIES[name])) for name in DETECTABLE}


def per_block(value: int | list[int], count: int) -> list[int]:
    return [value] * count if isinstance(value, int) else list(value)


def unet_param_shapes(config: dict[str, Any]) -> Shapes:
    return shapes_of(meta_unet(config).state_dict())


# ------------------------------------------------------------------------------------------ families


@pytest.mark.parametrize("name", DETECTABLE)
def test_detects_real_size_families(real_shapes, name):
    assert detect_family(real_shapes[name], f"{name}.safetensors").name == name


def test_sd2_768_v_is_detected_as_sd2_its_prediction_is_decided_by_the_loader(real_shapes):
    family = detect_family(real_shapes["sd2"], "768-v-ema.safetensors")
    assert family.name == "sd2" and family.v_variant == "sd2-v"
    assert FAMILIES["sd2-v"].prediction_type == "v_prediction" and FAMILIES["sd2-v"].native_size == 768


def test_sd2_vs_sd1_is_decided_by_the_text_encoder_not_widths():
    # A tiny SD2 has cross-attention width 64, like no real model: the OpenCLIP keys decide.
    spec = tiny_spec("sd2")
    configs = {"unet": spec.unet, "vae": spec.vae, "text_encoder": spec.text_encoder}
    assert detect_family(ldm_shapes(FAMILIES["sd2"], configs), "tiny.safetensors").name == "sd2"


# ------------------------------------------------------------------------------------- real numbers


def test_real_sd15_numbers(real_shapes):
    inferred = infer_architecture(real_shapes["sd1"], FAMILIES["sd1"])
    unet = inferred["unet"]
    assert unet["block_out_channels"] == [320, 640, 1280, 1280]
    assert unet["attention_head_dim"] == 8
    assert unet["cross_attention_dim"] == 768
    assert unet["layers_per_block"] == 2
    assert unet["in_channels"] == 4 and unet["out_channels"] == 4
    assert unet["down_block_types"] == ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
    assert unet["up_block_types"] == ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3
    assert unet["transformer_layers_per_block"] == 1
    assert unet["use_linear_projection"] is False
    assert unet["norm_num_groups"] == 32
    assert unet["mid_block_type"] == "UNetMidBlock2DCrossAttn"
    vae = inferred["vae"]
    assert vae["block_out_channels"] == [128, 256, 512, 512]
    assert (vae["layers_per_block"], vae["latent_channels"], vae["norm_num_groups"]) == (2, 4, 32)
    text = inferred["text_encoder"]
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (768, 12, 12)
    assert (text["intermediate_size"], text["vocab_size"], text["max_position_embeddings"]) == (
        3072,
        49408,
        77,
    )


def test_real_sd2_numbers(real_shapes):
    inferred = infer_architecture(real_shapes["sd2"], FAMILIES["sd2"])
    unet = inferred["unet"]
    assert unet["attention_head_dim"] == [5, 10, 20, 20]
    assert unet["cross_attention_dim"] == 1024 and unet["use_linear_projection"] is True
    text = inferred["text_encoder"]
    # The file holds OpenCLIP-H's 24 resblocks; SD2 runs the first 23.
    assert sum(k.endswith("resblocks.23.ln_1.weight") for k in real_shapes["sd2"]) == 1
    assert (text["hidden_size"], text["num_hidden_layers"], text["num_attention_heads"]) == (1024, 23, 16)
    assert text["intermediate_size"] == 4096


def test_real_sdxl_numbers(real_shapes):
    inferred = infer_architecture(real_shapes["sdxl"], FAMILIES["sdxl"])
    unet = inferred["unet"]
    assert unet["block_out_channels"] == [320, 640, 1280]
    assert unet["transformer_layers_per_block"] == [1, 2, 10]
    assert unet["attention_head_dim"] == [5, 10, 20]
    assert unet["cross_attention_dim"] == 2048
    assert unet["projection_class_embeddings_input_dim"] == 2816
    assert unet["addition_time_embed_dim"] == 256
    assert unet["down_block_types"] == ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
    big_g = inferred["text_encoder_2"]
    assert (big_g["hidden_size"], big_g["num_hidden_layers"], big_g["num_attention_heads"]) == (1280, 32, 20)
    assert (big_g["intermediate_size"], big_g["projection_dim"]) == (5120, 1280)
    assert (inferred["text_encoder"]["hidden_size"], inferred["text_encoder"]["num_hidden_layers"]) == (
        768,
        12,
    )


def test_real_refiner_numbers(real_shapes):
    inferred = infer_architecture(real_shapes["sdxl-refiner"], FAMILIES["sdxl-refiner"])
    unet = inferred["unet"]
    assert unet["block_out_channels"] == [384, 768, 1536, 1536]
    assert unet["cross_attention_dim"] == 1280
    assert unet["projection_class_embeddings_input_dim"] == 2560
    assert unet["addition_time_embed_dim"] == 256
    assert unet["transformer_layers_per_block"] == 4
    assert unet["attention_head_dim"] == [6, 12, 24, 24]
    assert set(inferred) == {"unet", "vae", "text_encoder_2"}


@pytest.mark.parametrize("name", ["sd1-inpaint", "sd2-inpaint", "sdxl-inpaint"])
def test_inpainting_unets_take_nine_channels(real_shapes, name):
    assert infer_architecture(real_shapes[name], FAMILIES[name])["unet"]["in_channels"] == 9


@pytest.mark.parametrize("name", DETECTABLE)
def test_inferred_numbers_equal_the_templates(real_shapes, name):
    family = FAMILIES[name]
    for component, overrides in infer_architecture(real_shapes[name], family).items():
        base = template(family.template, component)
        different = {k: (v, base.get(k)) for k, v in overrides.items() if base.get(k) != v}
        assert not different, f"{name}/{component}: {different}"


# ------------------------------------------------------------------------ variants: rebuild and compare


def _rebuilds_same_unet(
    family: Family, unet_config: dict[str, Any], vae_config: dict[str, Any] | None = None
) -> None:
    configs = real_configs(family) | {"unet": unet_config}
    if vae_config is not None:
        configs["vae"] = vae_config
    shapes = ldm_shapes(family, configs)
    assert detect_family(shapes, "variant.safetensors").name == family.name
    inferred = infer_architecture(shapes, family)
    rebuilt = template(family.template, "unet") | inferred["unet"]
    assert unet_param_shapes(rebuilt) == unet_param_shapes(unet_config)


SD1 = template("sd1", "unet")
SDXL = template("sdxl", "unet")
VARIANTS = {
    # BK-SDM base: one resnet+attention pair per down level (two per up level).
    "bk-sdm-base": ("sd1", SD1 | {"layers_per_block": 1}),
    # BK-SDM small: also no middle block.
    "bk-sdm-small": ("sd1", SD1 | {"layers_per_block": 1, "mid_block_type": None}),
    # BK-SDM tiny: also no innermost level.
    "bk-sdm-tiny": (
        "sd1",
        SD1
        | {
            "layers_per_block": 1,
            "mid_block_type": None,
            "block_out_channels": [320, 640, 1280],
            "down_block_types": ["CrossAttnDownBlock2D"] * 3,
            "up_block_types": ["CrossAttnUpBlock2D"] * 3,
        },
    ),
    # SSD-1B style: per-layer transformer depths that differ between down and up blocks.
    "ssd-1b-style": (
        "sdxl",
        SDXL
        | {
            "transformer_layers_per_block": [[1, 1], [2, 2], [4, 4]],
            "reverse_transformer_layers_per_block": [[4, 4, 10], [2, 1, 1], [1, 1, 1]],
        },
    ),
    # Segmind Vega style: a shallower SDXL.
    "vega-style": ("sdxl", SDXL | {"transformer_layers_per_block": [1, 1, 2]}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_distilled_variants_rebuild_the_same_unet(variant):
    family_name, unet_config = VARIANTS[variant]
    _rebuilds_same_unet(FAMILIES[family_name], unet_config)


@pytest.mark.parametrize("name", DETECTABLE)
def test_real_size_inferred_configs_rebuild_the_same_unet(real_shapes, name):
    family = FAMILIES[name]
    rebuilt = template(family.template, "unet") | infer_architecture(real_shapes[name], family)["unet"]
    assert unet_param_shapes(rebuilt) == unet_param_shapes(template(family.template, "unet"))


@pytest.mark.parametrize(
    "kind", ["sd1", "sd1-inpaint", "sd2", "sd2-inpaint", "sdxl", "sdxl-inpaint", "sdxl-refiner"]
)
def test_tiny_factory_models_are_inferred_exactly(kind):
    """Tiny widths: the inferred numbers, heads and norm groups included, equal the factory's."""
    spec = tiny_spec(kind)
    family = FAMILIES[kind]
    configs = {
        "unet": spec.unet,
        "vae": spec.vae,
        "text_encoder": spec.text_encoder,
        "text_encoder_2": spec.text_encoder_2,
    }
    configs = {k: v for k, v in configs.items() if v is not None}
    shapes = ldm_shapes(family, configs)
    assert detect_family(shapes, f"tiny-{kind}.safetensors").name == kind
    inferred = infer_architecture(shapes, family)
    unet = template(family.template, "unet") | inferred["unet"]
    assert unet_param_shapes(unet) == unet_param_shapes(spec.unet)
    levels = len(spec.unet["block_out_channels"])
    assert per_block(unet["attention_head_dim"], levels) == per_block(spec.unet["attention_head_dim"], levels)
    assert unet["norm_num_groups"] == spec.unet["norm_num_groups"]
    for key in ("block_out_channels", "layers_per_block", "latent_channels", "norm_num_groups"):
        assert inferred["vae"][key] == spec.vae[key], key
    for component in ("text_encoder", "text_encoder_2"):
        expected = configs.get(component)
        if expected is None:
            continue
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            assert inferred[component][key] == expected[key], (component, key)
    if spec.text_encoder_2 is not None:
        assert inferred["unet"]["addition_time_embed_dim"] == spec.unet["addition_time_embed_dim"]


# ----------------------------------------------------------------------------------- unsupported


def test_mid_block_depth_other_than_the_last_levels_is_unsupported(real_shapes):
    shapes = dict(real_shapes["sdxl"])
    for key in [k for k in shapes if ".middle_block.1.transformer_blocks.9." in k]:
        del shapes[key]
    with pytest.raises(InvalidModelFileError, match="middle block depth 9"):
        infer_architecture(shapes, FAMILIES["sdxl"])


def test_levels_with_different_layer_counts_are_unsupported(real_shapes):
    shapes = {k: v for k, v in real_shapes["sd1"].items() if ".input_blocks.2." not in k}
    with pytest.raises(InvalidModelFileError, match="unsupported UNet layout"):
        infer_architecture(shapes, FAMILIES["sd1"])


def test_unet_with_other_input_channels_is_named(real_shapes):
    shapes = dict(real_shapes["sd1"])
    shapes["model.diffusion_model.input_blocks.0.0.weight"] = (320, 8, 3, 3)
    with pytest.raises(InvalidModelFileError, match="ip2p.safetensors .* 8 input channels"):
        detect_family(shapes, "ip2p.safetensors")


def test_unet_without_text_encoder(real_shapes):
    shapes = {k: v for k, v in real_shapes["sd1"].items() if not k.startswith("cond_stage_model.")}
    with pytest.raises(InvalidModelFileError, match="unet-only.safetensors .*no text encoder"):
        detect_family(shapes, "unet-only.safetensors")


# ------------------------------------------------------------------------------- what else it is


def _block(name: str, n: int = 1) -> Shapes:
    return {f"{name}.{i}.weight": (4, 4) for i in range(n)}


OTHER_FILES: dict[str, tuple[Shapes, str | None, str]] = {
    "kohya-lora": (
        {
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320),
            "lora_te_text_model_x.alpha": (),
        },
        "lora",
        "models/Lora",
    ),
    "peft-lora": ({"unet.down_blocks.0.attn.to_q.lora_A.weight": (4, 320)}, "lora", "models/Lora"),
    "vae": (
        {
            "encoder.conv_in.weight": (128, 3, 3, 3),
            "decoder.conv_out.weight": (3, 128, 3, 3),
            "quant_conv.weight": (8, 8, 1, 1),
        },
        "vae",
        "models/VAE",
    ),
    "vae-prefixed": ({"first_stage_model.encoder.conv_in.weight": (128, 3, 3, 3)}, "vae", "models/VAE"),
    "controlnet": (
        {
            "control_model.input_hint_block.0.weight": (16, 3, 3, 3),
            "control_model.zero_convs.0.0.weight": (320, 320, 1, 1),
        },
        "controlnet",
        "models/ControlNet",
    ),
    "esrgan-new": (
        {"conv_first.weight": (64, 3, 3, 3), "body.0.rdb1.conv1.weight": (32, 64, 3, 3)},
        "upscaler",
        "models/ESRGAN",
    ),
    "esrgan-old": (
        {"model.0.weight": (64, 3, 3, 3), "model.1.sub.0.RDB1.conv1.0.weight": (32, 64, 3, 3)},
        "upscaler",
        "models/ESRGAN",
    ),
    "embedding-pt": ({"string_to_param.*": (2, 768)}, "embedding", "embeddings/"),
    "embedding-st": ({"emb_params": (2, 768)}, "embedding", "embeddings/"),
    "embedding-sdxl": ({"clip_l": (2, 768), "clip_g": (2, 1280)}, "embedding", "embeddings/"),
    "unknown": (_block("double_blocks.0.img_attn", 3), None, "unknown architecture"),
}


@pytest.mark.parametrize("case", list(OTHER_FILES))
def test_other_files_are_named_with_where_they_belong(case):
    shapes, kind, where = OTHER_FILES[case]
    assert guess_kind(shapes) == kind
    with pytest.raises(InvalidModelFileError) as caught:
        detect_family(shapes, f"{case}.safetensors")
    message = str(caught.value)
    assert f"{case}.safetensors" in message and where in message
    assert caught.value.status_code == 422


def test_empty_file_says_no_tensors():
    with pytest.raises(InvalidModelFileError, match="empty.safetensors contains no tensors"):
        detect_family({}, "empty.safetensors")
