"""diffusers -> LDM key conversion, checked against diffusers' own LDM -> diffusers readers.

Real-size models are built on the meta device (no memory, no weights): keys and shapes must survive the
round trip, and tensors the readers pass through untouched must come back as the same objects. Exact
values are checked on the tiny random models.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_controlnet_checkpoint,
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from sdweb.models.ldm_convert import (
    clip_l_to_ldm,
    controlnet_to_ldm,
    open_clip_to_ldm,
    pipeline_to_ldm,
    unet_prefix_map,
    unet_to_ldm,
    vae_to_ldm,
)
from sdweb.testing.tiny import build_tiny_controlnet, build_tiny_pipeline

SD1_DOWN = ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]
SD1_UP = ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3
REAL_UNETS: dict[str, dict[str, Any]] = {
    "sd15": {
        "down_block_types": SD1_DOWN,
        "up_block_types": SD1_UP,
        "block_out_channels": [320, 640, 1280, 1280],
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
    },
    "sd21": {
        "down_block_types": SD1_DOWN,
        "up_block_types": SD1_UP,
        "block_out_channels": [320, 640, 1280, 1280],
        "cross_attention_dim": 1024,
        "attention_head_dim": [5, 10, 20, 20],
        "use_linear_projection": True,
    },
    "sdxl": {
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [320, 640, 1280],
        "transformer_layers_per_block": [1, 2, 10],
        "attention_head_dim": [5, 10, 20],
        "cross_attention_dim": 2048,
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2816,
    },
    "sdxl-refiner": {
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [384, 768, 1536, 1536],
        "transformer_layers_per_block": 4,
        "attention_head_dim": [6, 12, 24, 24],
        "cross_attention_dim": 1280,
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": 2560,
    },
    # A distilled layout (fewer blocks and layers, as in small-sd/tiny-sd style models).
    "distilled": {
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [320, 640, 1280],
        "layers_per_block": 1,
        "cross_attention_dim": 768,
    },
}
REAL_VAE = {
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
}
CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
OPEN_CLIP_H = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "hidden_act": "gelu",
}
OPEN_CLIP_G = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}


def _meta_unet(name: str) -> UNet2DConditionModel:
    with torch.device("meta"):
        return UNet2DConditionModel(**REAL_UNETS[name])


def _assert_same_tensors(original: dict[str, torch.Tensor], restored: dict[str, torch.Tensor]) -> None:
    assert sorted(restored) == sorted(original)
    for key, tensor in original.items():
        assert restored[key].shape == tensor.shape, key
        if tensor.device.type == "meta":
            continue
        assert torch.equal(restored[key], tensor), key


@pytest.mark.parametrize("name", sorted(REAL_UNETS))
def test_real_size_unet_round_trips_through_diffusers_reader(name: str) -> None:
    unet = _meta_unet(name)
    original = unet.state_dict()
    ldm = unet_to_ldm(original, unet.config)
    assert all(key.startswith("model.diffusion_model.") for key in ldm)
    restored = convert_ldm_unet_checkpoint(ldm, unet.config)
    _assert_same_tensors(original, restored)
    # The reader only moves tensors, so a swapped pair of same-shape tensors would show here.
    assert all(restored[key] is tensor for key, tensor in original.items())


def test_real_unet_key_counts_and_known_names() -> None:
    sd15_unet = _meta_unet("sd15")
    sd15 = unet_to_ldm(sd15_unet.state_dict(), sd15_unet.config)
    assert len(sd15) == 686
    for key in (
        "input_blocks.3.0.op.weight",
        "input_blocks.4.0.skip_connection.weight",
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "middle_block.1.proj_in.weight",
        "output_blocks.2.1.conv.weight",
        "output_blocks.5.2.conv.weight",
        "output_blocks.11.0.skip_connection.weight",
        "out.2.weight",
        "time_embed.2.bias",
    ):
        assert f"model.diffusion_model.{key}" in sd15, key
    sdxl_unet = _meta_unet("sdxl")
    sdxl = unet_to_ldm(sdxl_unet.state_dict(), sdxl_unet.config)
    assert len(sdxl) == 1680
    assert "model.diffusion_model.label_emb.0.2.weight" in sdxl
    assert "model.diffusion_model.input_blocks.8.1.transformer_blocks.9.attn1.to_q.weight" in sdxl
    assert "model.diffusion_model.output_blocks.2.2.conv.weight" in sdxl


def test_unet_prefix_map_follows_layers_per_block() -> None:
    pairs = {
        source: target
        for source, target, _ in unet_prefix_map(REAL_UNETS["distilled"] | {"layers_per_block": 1})
    }
    assert pairs["down_blocks.0.downsamplers.0.conv."] == "input_blocks.2.0.op."
    assert pairs["down_blocks.2.resnets.0."] == "input_blocks.5.0."
    assert pairs["up_blocks.0.upsamplers.0."] == "output_blocks.1.1."
    assert pairs["up_blocks.1.upsamplers.0."] == "output_blocks.3.2."


def test_real_size_vae_round_trips_with_conv_shaped_attention() -> None:
    with torch.device("meta"):
        vae = AutoencoderKL(**REAL_VAE)
    original = vae.state_dict()
    ldm = vae_to_ldm(original, vae.config)
    assert len(ldm) == 248
    assert ldm["first_stage_model.decoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    assert ldm["first_stage_model.encoder.mid.attn_1.proj_out.weight"].shape == (512, 512, 1, 1)
    assert "first_stage_model.decoder.up.3.upsample.conv.weight" in ldm
    assert "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight" in ldm
    _assert_same_tensors(original, convert_ldm_vae_checkpoint(ldm, vae.config))
    assert all(
        key.startswith("encoder.") for key in vae_to_ldm(original, vae.config, prefix="") if "encoder" in key
    )


@pytest.mark.parametrize("prefix", ["cond_stage_model.transformer.", "conditioner.embedders.0.transformer."])
def test_clip_l_adds_back_text_model_prefix(prefix: str) -> None:
    with torch.device("meta"):
        model = CLIPTextModel(CLIPTextConfig(**CLIP_L))
    original = model.state_dict()
    ldm = clip_l_to_ldm(original, prefix)
    assert f"{prefix}text_model.embeddings.token_embedding.weight" in ldm
    assert f"{prefix}text_model.encoder.layers.11.mlp.fc2.bias" in ldm
    restored = {
        key.removeprefix("text_model."): value for key, value in convert_ldm_clip_checkpoint(ldm).items()
    }
    _assert_same_tensors(original, restored)


def test_open_clip_sd2_layout_has_24_layers_and_reads_back() -> None:
    with torch.device("meta"):
        model = CLIPTextModel(CLIPTextConfig(**OPEN_CLIP_H))
    prefix = "cond_stage_model.model."
    ldm = open_clip_to_ldm(model.state_dict(), prefix, pad_final_layer=True, identity_projection=True)
    assert f"{prefix}transformer.resblocks.23.attn.in_proj_weight" in ldm
    assert ldm[f"{prefix}transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * 1024, 1024)
    assert ldm[f"{prefix}text_projection"].shape == (1024, 1024)
    assert ldm[f"{prefix}positional_embedding"].shape == (77, 1024)
    restored = convert_open_clip_checkpoint(model, ldm, prefix=prefix)
    restored = {key.removeprefix("text_model."): value for key, value in restored.items()}
    # diffusers drops resblocks.23 and text_projection of SD2 files, exactly what the converter added.
    _assert_same_tensors(model.state_dict(), restored)


def test_open_clip_g_projection_is_transposed() -> None:
    with torch.device("meta"):
        model = CLIPTextModelWithProjection(CLIPTextConfig(**OPEN_CLIP_G | {"projection_dim": 640}))
    prefix = "conditioner.embedders.1.model."
    ldm = open_clip_to_ldm(model.state_dict(), prefix)
    assert ldm[f"{prefix}text_projection"].shape == (1280, 640)
    assert f"{prefix}transformer.resblocks.31.mlp.c_proj.bias" in ldm
    assert f"{prefix}ln_final.weight" in ldm
    _assert_same_tensors(model.state_dict(), convert_open_clip_checkpoint(model, ldm, prefix=prefix))


def test_tiny_sdxl_values_round_trip_exactly() -> None:
    pipe = build_tiny_pipeline("sdxl", seed=3)
    ldm = pipeline_to_ldm(pipe, "sdxl")
    _assert_same_tensors(pipe.unet.state_dict(), convert_ldm_unet_checkpoint(ldm, pipe.unet.config))
    _assert_same_tensors(pipe.vae.state_dict(), convert_ldm_vae_checkpoint(ldm, pipe.vae.config))
    clip_l = {
        key.removeprefix("text_model."): value for key, value in convert_ldm_clip_checkpoint(ldm).items()
    }
    _assert_same_tensors(pipe.text_encoder.state_dict(), clip_l)
    clip_g = convert_open_clip_checkpoint(pipe.text_encoder_2, ldm, prefix="conditioner.embedders.1.model.")
    _assert_same_tensors(pipe.text_encoder_2.state_dict(), clip_g)


def test_tiny_controlnet_round_trips_exactly() -> None:
    controlnet: ControlNetModel = build_tiny_controlnet(seed=2)
    original = controlnet.state_dict()
    ldm = controlnet_to_ldm(original, controlnet.config)
    assert "control_model.input_hint_block.14.weight" in ldm
    assert "control_model.zero_convs.11.0.weight" in ldm
    assert "control_model.middle_block_out.0.bias" in ldm
    _assert_same_tensors(original, convert_controlnet_checkpoint(ldm, controlnet.config))


def test_unknown_keys_and_families_are_refused() -> None:
    config = dict(REAL_UNETS["sd15"], layers_per_block=2)
    with pytest.raises(ValueError, match="no LDM name"):
        unet_to_ldm({"not_a_module.weight": torch.zeros(1)}, config)
    with pytest.raises(ValueError, match="no LDM name"):
        open_clip_to_ldm({"logit_scale": torch.zeros(1)}, "cond_stage_model.model.")
    with pytest.raises(ValueError, match="unknown family"):
        pipeline_to_ldm(object(), "sd3")
