"""Module files: what a loose file is (tables of real and tiny layouts), the Automatic choice, and the
errors of an explicit choice (missing, wrong kind, two of one kind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.families import FAMILIES
from sdweb.models.modules import (
    ModuleFile,
    ModuleInfo,
    assign_modules,
    classify_module,
    needed_slots,
    resolve_modules,
)


def clip(width: int, layers: int, text_model: bool = True, projection: bool = False, prefix: str = "") -> dict:
    inner = prefix + ("text_model." if text_model else "")
    shapes = {inner + "embeddings.token_embedding.weight": (49408, width),
              inner + "embeddings.position_embedding.weight": (77, width),
              inner + "final_layer_norm.weight": (width,)}
    for i in range(layers):
        shapes[f"{inner}encoder.layers.{i}.self_attn.q_proj.weight"] = (width, width)
        shapes[f"{inner}encoder.layers.{i}.mlp.fc1.weight"] = (4 * width, width)
    if projection:
        shapes[prefix + "text_projection.weight"] = (width, width)
    return shapes


def t5(width: int = 4096, layers: int = 24) -> dict:
    shapes = {"shared.weight": (32128, width), "encoder.final_layer_norm.weight": (width,)}
    for i in range(layers):
        shapes[f"encoder.block.{i}.layer.0.SelfAttention.q.weight"] = (width, width)
        shapes[f"encoder.block.{i}.layer.1.DenseReluDense.wi_0.weight"] = (10240, width)
    return shapes


def vae(latent: int, prefix: str = "", diffusers_layout: bool = False) -> dict:
    down = "encoder.down_blocks.0.resnets.0.conv1.weight" if diffusers_layout else "encoder.down.0.block.0.conv1.weight"
    return {prefix + "encoder.conv_in.weight": (128, 3, 3, 3), prefix + down: (128, 128, 3, 3),
            prefix + "decoder.conv_in.weight": (512, latent, 3, 3)}


def dtypes(shapes: dict, dtype: str) -> dict:
    return dict.fromkeys(shapes, dtype)


@pytest.mark.parametrize(
    ("shapes", "kind", "width"),
    [
        (clip(768, 12), "clip_l", 768),  # the real CLIP-L file (HF CLIPTextModel)
        (clip(768, 12, projection=True), "clip_l", 768),  # some carry a projection
        (clip(768, 12, text_model=False), "clip_l", 768),  # transformers >= 5.6 flattened layout
        (clip(768, 12, prefix="transformer."), "clip_l", 768),
        (clip(1280, 32, projection=True), "clip_g", 1280),  # the real CLIP-G file
        (clip(8, 2), "clip_l", 8),  # the test factory's tiny ones: depth decides, not width
        (clip(12, 32, projection=True), "clip_g", 12),
        (clip(64, 13), "clip_g", 64),
        (t5(), "t5xxl", 4096),
        (t5(24, 2), "t5xxl", 24),
        (vae(16), "vae", 0),
        (vae(16, "vae."), "vae", 0),
        (vae(4, "first_stage_model."), "vae", 0),
        (vae(16, diffusers_layout=True), "vae", 0),
        ({"lora_unet_x.lora_down.weight": (4, 8)}, None, 0),
    ],
)
def test_classification_table(shapes, kind, width) -> None:
    info = classify_module(shapes, dtypes(shapes, "F16"))
    assert info.kind == kind
    assert info.width == width


def test_vae_latent_channels_and_precisions() -> None:
    assert classify_module(vae(16), {}).latent_channels == 16
    assert classify_module(vae(4, "first_stage_model."), {}).latent_channels == 4
    shapes = t5(24, 2)
    assert classify_module(shapes, dtypes(shapes, "F16")).precision == "fp16"
    assert classify_module(shapes, dtypes(shapes, "BF16")).precision == "bf16"
    assert classify_module(shapes, dtypes(shapes, "F8_E4M3")).precision == "fp8_e4m3fn"
    assert classify_module(shapes, dtypes(shapes, "Q8_0")).precision == "gguf"
    scaled = shapes | {"scaled_fp8": (0,), "encoder.block.0.layer.0.SelfAttention.q.scale_weight": ()}
    assert classify_module(scaled, dtypes(scaled, "F8_E4M3")).precision == "fp8_scaled"


def module(name: str, kind: str | None, precision: str = "fp16", latent: int = 0) -> ModuleFile:
    return ModuleFile(Path("/models") / name, ModuleInfo(kind, "", precision, latent_channels=latent))


AE = module("ae.safetensors", "vae", "bf16", 16)
FLUX_VAE = module("flux-vae-bf16.safetensors", "vae", "bf16", 16)
OTHER_VAE16 = module("my_vae.safetensors", "vae", "fp32", 16)
SD3_VAE = module("sd3.5_vae.safetensors", "vae", "fp16", 16)
SDXL_VAE = module("sdxl_vae.safetensors", "vae", "fp16", 4)
CLIP_L = module("clip_l.safetensors", "clip_l")
CLIP_G = module("clip_g.safetensors", "clip_g")
T5_FP16 = module("t5xxl_fp16.safetensors", "t5xxl", "fp16")
T5_FP8 = module("t5xxl_fp8_e4m3fn.safetensors", "t5xxl", "fp8_e4m3fn")
T5_SCALED = module("t5xxl_fp8_e4m3fn_scaled.safetensors", "t5xxl", "fp8_scaled")
T5_BF16 = module("t5xxl_bf16.safetensors", "t5xxl", "bf16")
NOTHING = frozenset()


@pytest.mark.parametrize(
    ("family", "carried", "available", "chosen", "missing"),
    [
        ("flux-dev", NOTHING, [T5_FP8, CLIP_L, AE, T5_FP16, SDXL_VAE], [AE, CLIP_L, T5_FP16], []),
        ("flux-dev", NOTHING, [FLUX_VAE, OTHER_VAE16, CLIP_L, T5_SCALED, T5_FP8], [FLUX_VAE, CLIP_L, T5_SCALED], []),
        ("flux-dev", NOTHING, [OTHER_VAE16, AE, T5_BF16, T5_FP16], [AE, T5_FP16], ["clip_l"]),
        ("flux-schnell", NOTHING, [SDXL_VAE, CLIP_G, T5_FP8], [T5_FP8], ["vae", "clip_l"]),
        ("flux-dev", frozenset({"vae", "clip_l", "t5xxl"}), [AE, CLIP_L, T5_FP16], [], []),
        ("chroma", NOTHING, [AE, CLIP_L, CLIP_G, T5_FP8, T5_BF16], [AE, T5_BF16], []),
        ("sd35-medium", NOTHING, [AE, SD3_VAE, CLIP_L, CLIP_G, T5_FP16], [SD3_VAE, CLIP_L, CLIP_G, T5_FP16], []),
        ("sd35-large", frozenset({"vae"}), [CLIP_G, T5_FP8], [CLIP_G, T5_FP8], ["clip_l"]),
        ("sd1", frozenset({"vae", "clip_l"}), [AE, CLIP_L], [], []),
    ],
)
def test_automatic_choice(family, carried, available, chosen, missing) -> None:
    result = resolve_modules(FAMILIES[family], carried, available)
    assert list(result.chosen) == chosen
    assert list(result.missing) == missing


def test_needed_slots_follow_the_records() -> None:
    assert needed_slots(FAMILIES["flux-dev"]) == ("vae", "clip_l", "t5xxl")
    assert needed_slots(FAMILIES["chroma"]) == ("vae", "t5xxl")
    assert needed_slots(FAMILIES["sd35-large"]) == ("vae", "clip_l", "clip_g", "t5xxl")


def test_explicit_choice_fills_the_slots() -> None:
    assigned = assign_modules(FAMILIES["flux-schnell"], NOTHING, [T5_FP8, AE, CLIP_L])
    assert assigned == {"t5xxl": T5_FP8, "vae": AE, "clip_l": CLIP_L}
    assert assign_modules(FAMILIES["flux-dev"], frozenset({"vae", "clip_l", "t5xxl"}), [AE]) == {"vae": AE}


def test_a_missing_encoder_says_what_and_where() -> None:
    with pytest.raises(InvalidModelFileError) as caught:
        assign_modules(FAMILIES["flux-schnell"], NOTHING, [AE, CLIP_L])
    assert caught.value.message == ("Flux.1 schnell needs a T5-XXL text encoder: put t5xxl_fp16.safetensors in "
                                    "models/text_encoder.")
    with pytest.raises(InvalidModelFileError, match="needs a VAE: put ae.safetensors in models/VAE"):
        assign_modules(FAMILIES["chroma"], NOTHING, [T5_FP16])


def test_a_wrong_encoder_names_the_file_and_the_fix() -> None:
    with pytest.raises(InvalidModelFileError) as caught:
        assign_modules(FAMILIES["flux-dev"], NOTHING, [AE, CLIP_L, CLIP_G])
    error = caught.value
    assert error.code == "module_wrong_kind"
    assert "clip_g.safetensors is a CLIP-G text encoder, which Flux.1 dev does not use" in error.message
    assert "put t5xxl_fp16.safetensors in models/text_encoder" in error.hint


def test_a_vae_of_other_latent_channels_is_refused() -> None:
    with pytest.raises(InvalidModelFileError, match="sdxl_vae.safetensors is a VAE with 4 latent channels"):
        assign_modules(FAMILIES["flux-dev"], frozenset({"clip_l", "t5xxl"}), [SDXL_VAE])


def test_two_files_for_one_slot_are_refused() -> None:
    with pytest.raises(InvalidModelFileError, match="t5xxl_fp16.safetensors and t5xxl_fp8_e4m3fn.safetensors"):
        assign_modules(FAMILIES["flux-dev"], NOTHING, [AE, CLIP_L, T5_FP16, T5_FP8])


def test_files_that_are_no_module_are_named() -> None:
    lora = module("detail.safetensors", None)
    with pytest.raises(InvalidModelFileError, match="detail.safetensors is neither a VAE nor a CLIP / T5"):
        assign_modules(FAMILIES["flux-dev"], frozenset({"vae", "clip_l", "t5xxl"}), [lora])
    city96_t5 = module("t5-v1_1-xxl-encoder-Q8_0.gguf", None, "gguf")
    with pytest.raises(InvalidModelFileError, match="GGUF for transformers only") as caught:
        assign_modules(FAMILIES["flux-dev"], frozenset({"vae", "clip_l"}), [city96_t5])
    assert "t5xxl_fp16.safetensors" in caught.value.hint
