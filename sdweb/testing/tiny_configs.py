"""Configs of the tiny random-weight models: the real SD topologies with tiny widths.

Block structure, layer counts, in-channels and the vocabulary (49408 tokens, 77 positions) are those of
the real models, so the real tokenizer and loaders apply. Attention heads follow the real rules where a
loader could infer them from widths: SD1 has 8 heads per block; SD2, SDXL and the OpenCLIP/CLIP text
encoders use heads = width // 64, here clamped to at least 1.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diffusers

TOKENIZER_FILES_DIR = Path(__file__).resolve().parents[1] / "models" / "configs" / "clip_tokenizer"

CHECKPOINT_KINDS = (
    "sd1",
    "sd1-inpaint",
    "sd2",
    "sd2-v",
    "sd2-inpaint",
    "sdxl",
    "sdxl-inpaint",
    "sdxl-refiner",
)

_SD1_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
_SD1_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
_SD1_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": _SD1_DOWN,
    "up_block_types": _SD1_UP,
    "block_out_channels": [32, 32, 64, 64],
    "layers_per_block": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 32,
    "norm_num_groups": 8,
}
_SD2_UNET = _SD1_UNET | {
    "attention_head_dim": [1, 1, 1, 1],
    "cross_attention_dim": 64,
    "use_linear_projection": True,
    "upcast_attention": True,
}
_SDXL_ADD_TIME_DIM = 8
_SDXL_G_WIDTH = 64
_SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 32, 64],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 2],
    "attention_head_dim": [1, 1, 1],
    "cross_attention_dim": 32 + _SDXL_G_WIDTH,
    "norm_num_groups": 8,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": _SDXL_ADD_TIME_DIM,
    # six micro-conditioning time ids, plus G's pooled projection
    "projection_class_embeddings_input_dim": 6 * _SDXL_ADD_TIME_DIM + _SDXL_G_WIDTH,
}
_REFINER_UNET = _SDXL_UNET | {
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [32, 32, 64, 64],
    "transformer_layers_per_block": 2,
    "attention_head_dim": [1, 1, 1, 1],
    "cross_attention_dim": _SDXL_G_WIDTH,
    # five time ids (the aesthetic score replaces the target size), plus G's pooled projection
    "projection_class_embeddings_input_dim": 5 * _SDXL_ADD_TIME_DIM + _SDXL_G_WIDTH,
}
CONTROLNET_CONFIG: dict[str, Any] = {
    key: _SD1_UNET[key]
    for key in (
        "in_channels",
        "down_block_types",
        "block_out_channels",
        "layers_per_block",
        "attention_head_dim",
        "cross_attention_dim",
        "norm_num_groups",
    )
} | {"conditioning_channels": 3, "conditioning_embedding_out_channels": [8, 8, 16, 16]}

VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [16, 16, 32, 32],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
_SDXL_VAE = VAE_CONFIG | {"sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}

_TEXT_COMMON: dict[str, Any] = {
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
CLIP_L_CONFIG = _TEXT_COMMON | {
    "hidden_size": 32,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 1,
    "projection_dim": 32,
    "hidden_act": "quick_gelu",
}
# diffusers runs 4 layers; the A1111 file holds a fifth (see ldm_convert_clip.open_clip_to_ldm).
_OPEN_CLIP_H_CONFIG = _TEXT_COMMON | {
    "hidden_size": 64,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 1,
    "projection_dim": 64,
    "hidden_act": "gelu",
}
# diffusers tells SDXL from other files by G's `resblocks.9`, so G needs at least 10 layers.
_OPEN_CLIP_G_CONFIG = _OPEN_CLIP_H_CONFIG | {"num_hidden_layers": 10, "projection_dim": _SDXL_G_WIDTH}

_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "timestep_spacing": "leading",
}
_PNDM = ("PNDMScheduler", _SCHEDULE | {"skip_prk_steps": True, "prediction_type": "epsilon"})
_DDIM_EPS = ("DDIMScheduler", _SCHEDULE | {"clip_sample": False, "prediction_type": "epsilon"})
_DDIM_V = ("DDIMScheduler", _SCHEDULE | {"clip_sample": False, "prediction_type": "v_prediction"})
_EULER = (
    "EulerDiscreteScheduler",
    _SCHEDULE | {"interpolation_type": "linear", "prediction_type": "epsilon"},
)

_NONE = [None, None]
_SD_EXTRAS: dict[str, Any] = {
    "safety_checker": _NONE,
    "feature_extractor": _NONE,
    "image_encoder": _NONE,
    "requires_safety_checker": False,
}
_XL_EXTRAS: dict[str, Any] = {
    "feature_extractor": _NONE,
    "image_encoder": _NONE,
    "force_zeros_for_empty_prompt": True,
}


@dataclass(frozen=True)
class TinySpec:
    """Everything needed to build or describe one tiny checkpoint kind."""

    kind: str
    pipeline_class: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    scheduler: tuple[str, dict[str, Any]]
    text_encoder: dict[str, Any] | None
    text_encoder_2: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _specs() -> dict[str, TinySpec]:
    inpaint = {"in_channels": 9}
    sd, sd_inpaint = "StableDiffusionPipeline", "StableDiffusionInpaintPipeline"
    h, g = _OPEN_CLIP_H_CONFIG, _OPEN_CLIP_G_CONFIG
    specs = [
        TinySpec("sd1", sd, _SD1_UNET, VAE_CONFIG, _PNDM, CLIP_L_CONFIG, None, _SD_EXTRAS),
        TinySpec(
            "sd1-inpaint", sd_inpaint, _SD1_UNET | inpaint, VAE_CONFIG, _PNDM, CLIP_L_CONFIG, None, _SD_EXTRAS
        ),
        TinySpec("sd2", sd, _SD2_UNET, VAE_CONFIG, _DDIM_EPS, h, None, _SD_EXTRAS),
        TinySpec("sd2-v", sd, _SD2_UNET | {"sample_size": 96}, VAE_CONFIG, _DDIM_V, h, None, _SD_EXTRAS),
        TinySpec("sd2-inpaint", sd_inpaint, _SD2_UNET | inpaint, VAE_CONFIG, _DDIM_EPS, h, None, _SD_EXTRAS),
        TinySpec(
            "sdxl", "StableDiffusionXLPipeline", _SDXL_UNET, _SDXL_VAE, _EULER, CLIP_L_CONFIG, g, _XL_EXTRAS
        ),
        TinySpec(
            "sdxl-inpaint",
            "StableDiffusionXLInpaintPipeline",
            _SDXL_UNET | inpaint,
            _SDXL_VAE,
            _EULER,
            CLIP_L_CONFIG,
            g,
            _XL_EXTRAS | {"requires_aesthetics_score": False},
        ),
        TinySpec(
            "sdxl-refiner",
            "StableDiffusionXLImg2ImgPipeline",
            _REFINER_UNET,
            _SDXL_VAE,
            _EULER,
            None,
            g,
            _XL_EXTRAS | {"requires_aesthetics_score": True, "force_zeros_for_empty_prompt": False},
        ),
    ]
    return {spec.kind: spec for spec in specs}


def tiny_spec(kind: str) -> TinySpec:
    specs = _specs()
    if kind not in specs:
        raise ValueError(f"unknown tiny checkpoint kind {kind!r}; expected one of {', '.join(specs)}")
    return specs[kind]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _diffusers_config(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"_class_name": class_name, "_diffusers_version": diffusers.__version__} | config


def _text_config(config: dict[str, Any], with_projection: bool) -> dict[str, Any]:
    architecture = "CLIPTextModelWithProjection" if with_projection else "CLIPTextModel"
    return {"architectures": [architecture], "model_type": "clip_text_model"} | config


def write_tokenizer_dir(out_dir: Path) -> Path:
    """The CLIP tokenizer files (bundled BPE vocab, model_max_length 77, pad <|endoftext|>)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(TOKENIZER_FILES_DIR / name, out_dir / name)
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    _write_json(out_dir / "special_tokens_map.json", special)
    _write_json(
        out_dir / "tokenizer_config.json",
        special | {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True},
    )
    return out_dir


def _model_index(spec: TinySpec) -> dict[str, Any]:
    index: dict[str, Any] = {
        "_class_name": spec.pipeline_class,
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", spec.scheduler[0]],
        "text_encoder": ["transformers", "CLIPTextModel"] if spec.text_encoder else _NONE,
        "tokenizer": ["transformers", "CLIPTokenizer"] if spec.text_encoder else _NONE,
    }
    if spec.text_encoder_2 is not None:
        index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
        index["tokenizer_2"] = ["transformers", "CLIPTokenizer"]
    return index | spec.extras


def tiny_config_dir(kind: str, out_dir: str | Path) -> Path:
    """Write the diffusers config dir for a tiny kind into out_dir (no weights) and return it.

    Checkpoint kinds get a pipeline dir (model_index.json, component configs, tokenizers) for
    `XPipeline.from_single_file(config=...)`; "vae" and "controlnet" get a single config.json.
    """
    out = Path(out_dir)
    if kind == "vae":
        _write_json(out / "config.json", _diffusers_config("AutoencoderKL", VAE_CONFIG))
        return out
    if kind == "controlnet":
        _write_json(out / "config.json", _diffusers_config("ControlNetModel", CONTROLNET_CONFIG))
        return out
    spec = tiny_spec(kind)
    _write_json(out / "model_index.json", _model_index(spec))
    _write_json(out / "unet" / "config.json", _diffusers_config("UNet2DConditionModel", spec.unet))
    _write_json(out / "vae" / "config.json", _diffusers_config("AutoencoderKL", spec.vae))
    _write_json(out / "scheduler" / "scheduler_config.json", _diffusers_config(*spec.scheduler))
    if spec.text_encoder is not None:
        _write_json(out / "text_encoder" / "config.json", _text_config(spec.text_encoder, False))
        write_tokenizer_dir(out / "tokenizer")
    if spec.text_encoder_2 is not None:
        _write_json(out / "text_encoder_2" / "config.json", _text_config(spec.text_encoder_2, True))
        write_tokenizer_dir(out / "tokenizer_2")
    return out
