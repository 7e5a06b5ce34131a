"""Tiny random-weight Flux.1 / Chroma / SD 3.5 / Z-Image / Qwen-Image files in the layouts users download (each
about 5 MB at most).

Kinds (`python -m sdweb.testing.tiny KIND OUT`):

- flux-dev: all-in-one as ComfyUI / Forge save it: `model.diffusion_model.` + BFL keys (bf16),
  `text_encoders.clip_l.transformer.text_model.*`, `text_encoders.t5xxl.transformer.*`, `vae.` LDM keys.
- flux-schnell, chroma, flux-kontext: transformer-only, bare BFL keys (bf16), as Black Forest Labs and lodestones
  ship them (Kontext's layout is Flux dev's; its file name tells it apart).
- flux-gguf: the flux-dev transformer as a city96-style GGUF: BFL names, Q8_0 where a row has a multiple of 32
  values, F16 for other matrices, F32 for vectors.
- clip-l, clip-g, t5xxl (fp16), t5xxl-fp8 (fp8_e4m3fn matrices), t5xxl-fp8-scaled (ComfyUI's `scaled_fp8`
  marker + per-weight `scale_weight`), flux-ae (16-channel LDM VAE, no prefix): the loose module files.
- sd35-medium: all-in-one: `model.diffusion_model.` + MMDiT keys, `text_encoders.{clip_l,clip_g,t5xxl}
  .transformer.*`, `first_stage_model.` VAE keys.
- z-image: transformer-only, bare original Z-Image keys (`layers.N.attention.qkv`, `x_embedder`, ...; bf16), as
  Tongyi ships it; qwen3-4b: the Qwen3 text encoder in the HF causal-LM layout (`model.layers.N…`, bf16, no
  `lm_head`), as ComfyUI's `qwen_3_4b.safetensors`.
- qwen-image: transformer-only, bare diffusers keys (bf16); qwen-image-edit: the same layout under ComfyUI's
  `diffusion_model.` (its file name says "edit"); qwen-image-aio: all-in-one, `model.diffusion_model.` +
  `text_encoders.qwen25_7b.transformer.` (Qwen2.5-VL, fp8 scaled) + `vae.` (Wan keys); qwen-image-vae: the Wan-layout VAE
  (`encoder.conv1`, `encoder.downsamples.N.residual…`, `conv1` / `conv2`), as ComfyUI's `qwen_image_vae.
  safetensors`; qwen-image-gguf: the qwen-image transformer as GGUF (as flux-gguf); qwen25vl-7b (bf16) and
  qwen25vl-7b-fp8-scaled: Qwen2.5-VL in ComfyUI's layout (`model.layers…`
  and the vision tower's `visual.…`, no `lm_head`), as `qwen_2.5_vl_7b*.safetensors`.
- flux2-klein, flux2-klein-base: Flux.2 Klein transformers, bare BFL keys (`double_blocks.N.img_attn.qkv`,
  `single_stream_modulation.lin`, ...; bf16), as `flux-2-klein-4b.safetensors` / `flux-2-klein-base-4b.safetensors`;
  qwen3-4b-klein: a Qwen3 deep enough for Klein's hidden states 9, 18, 27 (28 layers; 12 wide, so its width tells it
  from the z-image one), ComfyUI's layout; flux2-vae: the 32-channel Flux.2 VAE in BFL's keys (LDM layout,
  `encoder.quant_conv`, `decoder.post_quant_conv`, `bn.running_mean` / `bn.running_var`), as `flux2-vae.safetensors`;
  flux2-klein-gguf: the flux2-klein transformer as GGUF (as flux-gguf).
- diffusers-sd1, diffusers-flux: diffusers folders (`save_pretrained`); OUT is a folder.

The original layouts come from our conversion plans inverted (sdweb.models.flow_convert); a test checks
them against the keys diffusers' own converters read. Same seed, same bytes; each component has its own
seed stream, so the loose files equal the all-in-one file's parts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import diffusers
import numpy
import torch
import transformers

from sdweb.core.atomic import atomic_write_bytes
from sdweb.models.families import FAMILIES
from sdweb.models.flow_convert import conversion_plan, layout_from_config, to_original
from sdweb.models.flow_detect import flux_rope_axes, rope_axes_3, rope_axes_4
from sdweb.models.flow_loader import tokenizer_for
from sdweb.models.flux2_vae import to_flux2_vae_keys
from sdweb.models.ldm_convert import clip_l_to_ldm, vae_to_ldm
from sdweb.models.loader import CONFIGS
from sdweb.models.wan_vae import to_wan_key
from sdweb.testing.tiny import FLOW_KINDS, TinyFile, _seeded_module, build_tiny_pipeline, save_tiny_file

__all__ = ["DATA_DIR_NAMES", "FILE_KINDS", "FLOW_KINDS", "FOLDER_KINDS", "TinyFlowFiles", "build_flow_pipeline", "build_tiny_component", "flow_file_content",
           "write_flow_tiny", "write_klein_lora", "write_qwen_image_lora", "write_zimage_lora"]

FOLDER_KINDS = ("diffusers-sd1", "diffusers-flux")
GGUF_KINDS = {"flux-gguf": "flux-dev", "qwen-image-gguf": "qwen-image", "flux2-klein-gguf": "flux2-klein"}  # kind -> the family whose transformer
FILE_KINDS = tuple(kind for kind in FLOW_KINDS if kind not in FOLDER_KINDS)

_CLIP_COMMON = {"vocab_size": 49408, "max_position_embeddings": 77, "layer_norm_eps": 1e-5, "pad_token_id": 1,
                "bos_token_id": 0, "eos_token_id": 2, "num_attention_heads": 1}
# Different widths (diffusers mixes up same-width CLIP-L / G) and the real depths' relation: G deeper than 12.
# The 49408 x width token embeddings are most of each file, hence the narrow widths.
CLIP_L = _CLIP_COMMON | {"hidden_size": 8, "intermediate_size": 32, "num_hidden_layers": 2, "projection_dim": 8,
                         "hidden_act": "quick_gelu"}
CLIP_G = _CLIP_COMMON | {"hidden_size": 12, "intermediate_size": 48, "num_hidden_layers": 32, "projection_dim": 12,
                         "hidden_act": "gelu"}
# SD3 pads the CLIP-L + CLIP-G features (8 + 12) to the T5 width, so T5 must be at least 20 wide.
T5 = {"vocab_size": 32128, "d_model": 24, "d_kv": 8, "d_ff": 37, "num_layers": 2, "num_heads": 3,
      "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16, "feed_forward_proj": "gated-gelu",
      "is_gated_act": True, "dense_act_fn": "gelu_new", "pad_token_id": 0, "eos_token_id": 1}
_VAE_COMMON = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
               "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": [8, 8, 16, 16],
               "layers_per_block": 1, "latent_channels": 16, "norm_num_groups": 8, "sample_size": 64,
               "use_quant_conv": False, "use_post_quant_conv": False}
FLUX_VAE = _VAE_COMMON | {"scaling_factor": 0.3611, "shift_factor": 0.1159}
SD3_VAE = _VAE_COMMON | {"scaling_factor": 1.5305, "shift_factor": 0.0609}
_HEAD = 16
FLUX = {"patch_size": 1, "in_channels": 64, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": _HEAD,
        "num_attention_heads": 2, "joint_attention_dim": T5["d_model"], "axes_dims_rope": flux_rope_axes(_HEAD)}
FLUX_DEV = FLUX | {"pooled_projection_dim": CLIP_L["hidden_size"], "guidance_embeds": True}
FLUX_SCHNELL = FLUX_DEV | {"guidance_embeds": False}
CHROMA = FLUX | {"approximator_num_channels": 16, "approximator_hidden_dim": 32, "approximator_layers": 1}
SD35_MEDIUM = {"sample_size": 16, "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 2,
               "attention_head_dim": 8, "num_attention_heads": 4, "joint_attention_dim": T5["d_model"],
               "caption_projection_dim": 32, "pooled_projection_dim": CLIP_L["projection_dim"] + CLIP_G["projection_dim"],
               "pos_embed_max_size": 16, "dual_attention_layers": (0,), "qk_norm": "rms_norm"}
# Qwen3 as Z-Image uses it (no lm_head: only hidden states are read); the 151936-row embedding is most of the file
QWEN3 = {"vocab_size": 151936, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2, "head_dim": 8,
         "num_attention_heads": 1, "num_key_value_heads": 1, "max_position_embeddings": 1024, "rope_theta": 1000000.0,
         "rms_norm_eps": 1e-6, "tie_word_embeddings": True}
Z_IMAGE = {"dim": 32, "n_layers": 2, "n_refiner_layers": 1, "n_heads": 2, "n_kv_heads": 2,
           "cap_feat_dim": QWEN3["hidden_size"], "axes_dims": rope_axes_3(16)}
# Qwen2.5-VL as Qwen-Image uses it (16 wide: M-RoPE needs heads a multiple of 16 wide), with a vision tower
QWEN25VL_TEXT = {"vocab_size": 152064, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
                 "head_dim": 16, "num_attention_heads": 1, "num_key_value_heads": 1,
                 "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}}
QWEN25VL_VISION = {"depth": 2, "hidden_size": 16, "intermediate_size": 32, "num_heads": 1,
                   "out_hidden_size": QWEN25VL_TEXT["hidden_size"]}
QWEN_IMAGE = {"patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 2, "attention_head_dim": _HEAD,
              "num_attention_heads": 2, "joint_attention_dim": QWEN25VL_TEXT["hidden_size"],
              "axes_dims_rope": flux_rope_axes(_HEAD)}
# the real structure (2 resnets a level, as diffusers' own Wan converter assumes) at a tiny width
QWEN_VAE = {"base_dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
            "temperal_downsample": [False, True, True]}
# Flux.2 Klein: Qwen3 hidden states 9, 18 and 27 side by side (so 28 layers at least), the 32-channel VAE
QWEN3_KLEIN = QWEN3 | {"hidden_size": 12, "head_dim": 12, "num_hidden_layers": 28}
KLEIN = {"patch_size": 1, "in_channels": 128, "num_layers": 1, "num_single_layers": 1, "attention_head_dim": _HEAD,
         "num_attention_heads": 2, "joint_attention_dim": 3 * QWEN3_KLEIN["hidden_size"], "axes_dims_rope": rope_axes_4(_HEAD),
         "guidance_embeds": False}
FLUX2_VAE = {"block_out_channels": (8, 8, 16, 16), "layers_per_block": 1, "latent_channels": 32, "norm_num_groups": 8,
             "sample_size": 64}
TRANSFORMERS = {"flux-dev": FLUX_DEV, "flux-schnell": FLUX_SCHNELL, "chroma": CHROMA, "sd35-medium": SD35_MEDIUM,
                "z-image": Z_IMAGE, "flux-kontext": FLUX_DEV, "qwen-image": QWEN_IMAGE, "qwen-image-edit": QWEN_IMAGE,
                "flux2-klein": KLEIN, "flux2-klein-base": KLEIN}


def _template(family_name: str, relative: str) -> dict[str, Any]:
    return json.loads((CONFIGS / FAMILIES[family_name].template / relative).read_text(encoding="utf-8"))


def _qwen25vl() -> torch.nn.Module:
    """Qwen2.5-VL (`Qwen2_5_VLModel`: vision tower + language model) from the bundled full-size config with the
    tiny numbers, so the loader reads the same config back from the file."""
    config = _template("qwen-image-edit", "text_encoder/config.json")
    config["text_config"] |= QWEN25VL_TEXT
    config["vision_config"] |= QWEN25VL_VISION
    return transformers.Qwen2_5_VLModel(transformers.Qwen2_5_VLConfig(**config))


def _qwen_vae() -> torch.nn.Module:
    """The Qwen-Image VAE at a tiny width, with Qwen-Image's latent statistics (the files do not carry them)."""
    template = _template("qwen-image", "vae/config.json")
    stats = {key: template[key] for key in ("latents_mean", "latents_std")}
    return diffusers.AutoencoderKLQwenImage(**QWEN_VAE, **stats)


def _flux2_vae() -> torch.nn.Module:
    """The Flux.2 VAE at a tiny width; its latent batch-norm statistics set away from (0, 1), as trained ones are."""
    vae = diffusers.AutoencoderKLFlux2(**FLUX2_VAE)
    generator = torch.Generator().manual_seed(5)
    vae.bn.running_mean.copy_(torch.randn(vae.bn.running_mean.shape, generator=generator) * 0.3)
    vae.bn.running_var.copy_(0.5 + torch.rand(vae.bn.running_var.shape, generator=generator))
    return vae


def build_tiny_component(name: str, seed: int = 0) -> torch.nn.Module:
    """A seeded tiny module (fp32): "<family>-transformer" for the families in TRANSFORMERS, "flux-vae",
    "sd3-vae", "clip_l", "clip_l-projection" (SD3's CLIP-L, with a projection), "clip_g", "t5xxl", "qwen3",
    "qwen25vl" (`Qwen2_5_VLModel`), "qwen-vae" (`AutoencoderKLQwenImage`)."""
    if name.endswith("-transformer"):
        family = FAMILIES[name.removesuffix("-transformer")]
        model_class = getattr(diffusers, family.transformer_class or "")
        return _seeded_module(seed, name, lambda: model_class(**TRANSFORMERS[family.name]))
    factories: dict[str, Any] = {
        "flux-vae": lambda: diffusers.AutoencoderKL(**FLUX_VAE),
        "sd3-vae": lambda: diffusers.AutoencoderKL(**SD3_VAE),
        "clip_l": lambda: transformers.CLIPTextModel(transformers.CLIPTextConfig(**CLIP_L)),
        "clip_l-projection": lambda: transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**CLIP_L)),
        "clip_g": lambda: transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(**CLIP_G)),
        "t5xxl": lambda: transformers.T5EncoderModel(transformers.T5Config(**T5)),
        "qwen3": lambda: transformers.Qwen3Model(transformers.Qwen3Config(**QWEN3)),
        "qwen3-klein": lambda: transformers.Qwen3Model(transformers.Qwen3Config(**QWEN3_KLEIN)),
        "flux2-vae": _flux2_vae,
        "qwen25vl": _qwen25vl,
        "qwen-vae": _qwen_vae,
    }
    # SD3's CLIP-L is CLIP-L with an identity projection (SD3 files keep none): same seed stream as CLIP-L.
    seed_name = "clip_l" if name == "clip_l-projection" else name
    module = _seeded_module(seed, seed_name, factories[name])
    if name == "clip_l-projection":
        with torch.no_grad():
            module.text_projection.weight.copy_(torch.eye(CLIP_L["hidden_size"]))
    if name == "t5xxl":
        module.encoder.embed_tokens.weight = module.shared.weight
    return module


def _transformer_tensors(family_name: str, seed: int) -> dict[str, torch.Tensor]:
    model = build_tiny_component(f"{family_name}-transformer", seed)
    plan = conversion_plan(layout_from_config(model.config, FAMILIES[family_name]))
    return to_original(plan, model.state_dict())


def _clip_tensors(name: str, seed: int, prefix: str) -> dict[str, torch.Tensor]:
    model = build_tiny_component(name, seed)
    tensors = clip_l_to_ldm(model.state_dict(), prefix)  # `prefix + text_model.*` (no projection)
    if name == "clip_g":
        tensors[prefix + "text_projection.weight"] = model.state_dict()["text_projection.weight"]
    return tensors


def _t5_tensors(seed: int, prefix: str) -> dict[str, torch.Tensor]:
    state = build_tiny_component("t5xxl", seed).state_dict()
    return {prefix + k: v for k, v in state.items() if k != "encoder.embed_tokens.weight"}  # tied: only `shared`


def _qwen_tensors(seed: int, prefix: str, name: str = "qwen3") -> dict[str, torch.Tensor]:
    """Qwen3 in the HF causal-LM layout (`model.layers…`), as ComfyUI's `qwen_3_4b.safetensors`; the tied
    `lm_head` is left out (not needed for the hidden states)."""
    state = build_tiny_component(name, seed).state_dict()
    return {prefix + key: value for key, value in state.items()}


def _qwen25vl_tensors(seed: int, prefix: str) -> dict[str, torch.Tensor]:
    """Qwen2.5-VL in ComfyUI's / the original HF layout: the language model under `model.`, the vision tower
    under `visual.` (transformers 5 names them `language_model.` / `visual.` inside `Qwen2_5_VLModel`)."""
    state = build_tiny_component("qwen25vl", seed).state_dict()
    return {prefix + ("model." + key.removeprefix("language_model.") if key.startswith("language_model.") else key):
            value for key, value in state.items()}


def _qwen_vae_tensors(seed: int, prefix: str) -> dict[str, torch.Tensor]:
    """The Qwen-Image VAE in Wan's original key names."""
    state = build_tiny_component("qwen-vae", seed).state_dict()
    return {prefix + to_wan_key(key, QWEN_VAE["num_res_blocks"]): value for key, value in state.items()}


def _vae_tensors(name: str, seed: int, prefix: str) -> dict[str, torch.Tensor]:
    vae = build_tiny_component(name, seed)
    return vae_to_ldm(vae.state_dict(), vae.config, prefix=prefix)


def _cast(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {key: tensors[key].detach().to(dtype).contiguous() for key in sorted(tensors)}


def _fp8(tensors: dict[str, torch.Tensor], scaled: bool) -> dict[str, torch.Tensor]:
    """Matrices as fp8_e4m3fn (ComfyUI's `*_fp8_e4m3fn`); scaled: stored as weight / scale, with the scale
    beside it and the `scaled_fp8` marker (`*_fp8_scaled`)."""
    result: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        if tensor.ndim != 2:
            result[key] = tensor.detach().to(torch.float16).contiguous()
            continue
        tensor = tensor.detach().float()
        if scaled:
            scale = tensor.abs().max().clamp(min=1e-12) / 448.0  # e4m3fn's largest finite value
            result[key.removesuffix(".weight") + ".scale_weight"] = scale.reshape(()).clone()
            tensor = tensor / scale
        result[key] = tensor.to(torch.float8_e4m3fn).contiguous()
    if scaled:
        result["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return dict(sorted(result.items()))


def flow_file_content(kind: str, seed: int = 0) -> TinyFile:
    """The tensors and metadata of a tiny flow file kind (not the GGUF or folder kinds)."""
    metadata = {"format": "pt", "sdweb.tiny": f"{kind} seed={seed}"}
    if kind == "flux-dev":
        tensors = _cast({f"model.diffusion_model.{k}": v for k, v in _transformer_tensors("flux-dev", seed).items()},
                        torch.bfloat16)
        tensors |= _cast(_clip_tensors("clip_l", seed, "text_encoders.clip_l.transformer.")
                         | _t5_tensors(seed, "text_encoders.t5xxl.transformer.")
                         | _vae_tensors("flux-vae", seed, "vae."), torch.float16)
    elif kind in ("flux-schnell", "chroma", "flux-kontext"):
        tensors = _cast(_transformer_tensors(kind, seed), torch.bfloat16)
    elif kind == "sd35-medium":
        tensors = _cast({f"model.diffusion_model.{k}": v for k, v in _transformer_tensors(kind, seed).items()}
                        | _clip_tensors("clip_l", seed, "text_encoders.clip_l.transformer.")
                        | _clip_tensors("clip_g", seed, "text_encoders.clip_g.transformer.")
                        | _t5_tensors(seed, "text_encoders.t5xxl.transformer.")
                        | _vae_tensors("sd3-vae", seed, "first_stage_model."), torch.float16)
    elif kind == "z-image":
        tensors = _cast(_transformer_tensors(kind, seed), torch.bfloat16)
    elif kind == "qwen3-4b":
        tensors = _cast(_qwen_tensors(seed, "model."), torch.bfloat16)
    elif kind in ("flux2-klein", "flux2-klein-base"):
        tensors = _cast(_transformer_tensors(kind, seed), torch.bfloat16)
    elif kind == "qwen3-4b-klein":
        tensors = _cast(_qwen_tensors(seed, "model.", "qwen3-klein"), torch.bfloat16)
    elif kind == "flux2-vae":
        vae = build_tiny_component("flux2-vae", seed)
        tensors = _cast(to_flux2_vae_keys(vae.state_dict(), vae.config), torch.float32)
    elif kind in ("qwen-image", "qwen-image-edit"):
        prefix = "diffusion_model." if kind == "qwen-image-edit" else ""
        tensors = _cast({prefix + k: v for k, v in _transformer_tensors(kind, seed).items()}, torch.bfloat16)
    elif kind == "qwen-image-aio":  # the text encoder in fp8 scaled, as fp8 all-in-one files have it (and < 5 MB)
        tensors = _cast({f"model.diffusion_model.{k}": v for k, v in _transformer_tensors("qwen-image", seed).items()}
                        | _qwen_vae_tensors(seed, "vae."), torch.bfloat16)
        tensors = dict(sorted((tensors | _fp8(_qwen25vl_tensors(seed, "text_encoders.qwen25_7b.transformer."),
                                              scaled=True)).items()))
    elif kind == "qwen-image-vae":
        tensors = _cast(_qwen_vae_tensors(seed, ""), torch.bfloat16)
    elif kind in ("qwen25vl-7b", "qwen25vl-7b-fp8-scaled"):
        tensors = _qwen25vl_tensors(seed, "")
        tensors = _fp8(tensors, scaled=True) if kind.endswith("scaled") else _cast(tensors, torch.bfloat16)
    elif kind in ("clip-l", "clip-g"):
        tensors = _cast(_clip_tensors(kind.replace("-", "_"), seed, ""), torch.float16)
    elif kind == "t5xxl":
        tensors = _cast(_t5_tensors(seed, ""), torch.float16)
    elif kind in ("t5xxl-fp8", "t5xxl-fp8-scaled"):
        tensors = _fp8(_t5_tensors(seed, ""), scaled=kind.endswith("scaled"))
    elif kind == "flux-ae":
        tensors = _cast(_vae_tensors("flux-vae", seed, ""), torch.float16)
    else:
        raise ValueError(f"unknown tiny flow kind {kind!r}; expected one of {', '.join(FILE_KINDS)}")
    return TinyFile(tensors, metadata, tensors)


def _gguf_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    import gguf

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.gguf"
        writer = gguf.GGUFWriter(str(path), arch="flux")
        for name in sorted(tensors):
            array = tensors[name].detach().float().numpy()
            if array.ndim == 2 and array.shape[1] % 32 == 0:
                quantized = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
                writer.add_tensor(name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                writer.add_tensor(name, array.astype(numpy.float16 if array.ndim >= 2 else numpy.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


def build_flow_pipeline(family_name: str, seed: int = 0) -> Any:
    """The tiny diffusers pipeline of a flow family (fp32), from the same seeded components as the files."""
    family = FAMILIES[family_name]
    if family.base == "qwenimage":
        return _qwen_image_pipeline(family_name, seed)
    if family.base == "flux2klein":
        return _klein_pipeline(family_name, seed)
    parts: dict[str, Any] = {
        "transformer": build_tiny_component(f"{family_name}-transformer", seed),
        "vae": build_tiny_component("sd3-vae" if family.base == "sd3" else "flux-vae", seed),
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler(shift=family.scheduling.shift),
    }
    for spec in family.text_encoders:
        name = {"clip_l": "clip_l-projection" if family.base == "sd3" else "clip_l"}.get(spec.slot, spec.slot)
        parts[spec.component] = build_tiny_component(name, seed)
        parts[spec.component.replace("text_encoder", "tokenizer")] = tokenizer_for(spec.tokenizer)
    return getattr(diffusers, family.load_pipeline)(**parts)


def _qwen_image_pipeline(family_name: str, seed: int) -> Any:
    """diffusers' own Qwen-Image pipeline of the tiny components: the bundled scheduler config, Qwen2.5-VL as
    `Qwen2_5_VLForConditionalGeneration` around the tiny `Qwen2_5_VLModel` (its `lm_head` is not used); an edit
    pipeline's `processor` is left to the caller (transformers builds Qwen2-VL's only with torchvision)."""
    family = FAMILIES[family_name]
    encoder = build_tiny_component("qwen25vl", seed)
    full = transformers.Qwen2_5_VLForConditionalGeneration(encoder.config)
    full.model = encoder
    parts: dict[str, Any] = {
        "transformer": build_tiny_component(f"{family_name}-transformer", seed),
        "vae": build_tiny_component("qwen-vae", seed),
        "scheduler": diffusers.FlowMatchEulerDiscreteScheduler.from_config(
            _template(family_name, "scheduler/scheduler_config.json")),
        "text_encoder": full.eval(), "tokenizer": tokenizer_for("qwen25vl"),
    }
    if family.features.edit:
        parts["processor"] = None
    return getattr(diffusers, family.load_pipeline)(**parts)


def _klein_pipeline(family_name: str, seed: int) -> Any:
    """diffusers' own Flux2KleinPipeline of the tiny components: the bundled scheduler config, Qwen3 as
    `Qwen3ForCausalLM` around the tiny `Qwen3Model` (its `lm_head` is not used)."""
    encoder = build_tiny_component("qwen3-klein", seed)
    full = transformers.Qwen3ForCausalLM(encoder.config)
    full.model = encoder
    return diffusers.Flux2KleinPipeline(
        transformer=build_tiny_component(f"{family_name}-transformer", seed), vae=build_tiny_component("flux2-vae", seed),
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler.from_config(
            _template(family_name, "scheduler/scheduler_config.json")),
        text_encoder=full.eval(), tokenizer=tokenizer_for("qwen3"), is_distilled=not FAMILIES[family_name].guidance.cfg)


def write_flow_tiny(kind: str, out_path: str | Path, seed: int = 0) -> Path:
    """Write a tiny flow file (or folder, for FOLDER_KINDS) atomically."""
    out = Path(out_path)
    if kind in GGUF_KINDS:
        return atomic_write_bytes(out, _gguf_bytes(_transformer_tensors(GGUF_KINDS[kind], seed)))
    if kind in FOLDER_KINDS:
        pipe = build_tiny_pipeline("sd1", seed) if kind == "diffusers-sd1" else build_flow_pipeline("flux-dev", seed)
        pipe.to(torch.float16)  # as many published folders are; halves the files
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as staging:
            pipe.save_pretrained(staging, safe_serialization=True)
            Path(staging).rename(out)  # the folder appears whole
            Path(staging).mkdir()  # for the context manager to remove
        return out
    return save_tiny_file(flow_file_content(kind, seed), out)


# Where each kind goes in an A1111 / Forge data folder, under the names users have.
DATA_DIR_NAMES = {
    "flux-dev": "models/Stable-diffusion/flux1-dev-tiny.safetensors",
    "flux-schnell": "models/Stable-diffusion/flux1-schnell-tiny.safetensors",
    "flux-gguf": "models/Stable-diffusion/flux1-dev-tiny-Q8_0.gguf",
    "qwen-image-gguf": "models/Stable-diffusion/qwen-image-tiny-Q8_0.gguf",
    "chroma": "models/Stable-diffusion/chroma-tiny.safetensors",
    "sd35-medium": "models/Stable-diffusion/sd3.5_medium_incl_clips-tiny.safetensors",
    "diffusers-sd1": "models/Stable-diffusion/sd1-tiny-diffusers",
    "diffusers-flux": "models/Stable-diffusion/flux1-dev-tiny-diffusers",
    "flux-ae": "models/VAE/ae.safetensors",
    "clip-l": "models/text_encoder/clip_l.safetensors",
    "clip-g": "models/text_encoder/clip_g.safetensors",
    "t5xxl": "models/text_encoder/t5xxl_fp16.safetensors",
    "t5xxl-fp8": "models/text_encoder/t5xxl_fp8_e4m3fn.safetensors",
    "t5xxl-fp8-scaled": "models/text_encoder/t5xxl_fp8_e4m3fn_scaled.safetensors",
    "z-image": "models/Stable-diffusion/z_image_turbo-tiny.safetensors",
    "flux-kontext": "models/Stable-diffusion/flux1-kontext-dev-tiny.safetensors",
    "qwen3-4b": "models/text_encoder/qwen_3_4b.safetensors",
    "qwen-image": "models/Stable-diffusion/qwen_image_bf16-tiny.safetensors",
    "qwen-image-edit": "models/Stable-diffusion/qwen_image_edit_bf16-tiny.safetensors",
    "qwen-image-aio": "models/Stable-diffusion/qwen_image_aio-tiny.safetensors",
    "qwen-image-vae": "models/VAE/qwen_image_vae.safetensors",
    "qwen25vl-7b": "models/text_encoder/qwen_2.5_vl_7b.safetensors",
    "qwen25vl-7b-fp8-scaled": "models/text_encoder/qwen_2.5_vl_7b_fp8_scaled.safetensors",
    "flux2-klein": "models/Stable-diffusion/flux-2-klein-4b-tiny.safetensors",
    "flux2-klein-base": "models/Stable-diffusion/flux-2-klein-base-4b-tiny.safetensors",
    "qwen3-4b-klein": "models/text_encoder/qwen_3_4b_klein.safetensors",
    "flux2-vae": "models/VAE/flux2-vae.safetensors",
    "flux2-klein-gguf": "models/Stable-diffusion/flux-2-klein-4b-tiny-Q8_0.gguf",
}


class TinyFlowFiles:
    """Tiny flow files in a data folder (`root`), written on first use under the names users have
    (DATA_DIR_NAMES): for tests that share them (a session fixture) and for the lead's API / UI tests."""

    def __init__(self, root: str | Path, seed: int = 0) -> None:
        self.root = Path(root)
        self.seed = seed

    def path(self, kind: str) -> Path:
        target = self.root / DATA_DIR_NAMES[kind]
        if not target.exists():
            write_flow_tiny(kind, target, self.seed)
        return target

    def paths(self, *kinds: str) -> list[Path]:
        return [self.path(kind) for kind in kinds]


def write_flux_lora(out_path: str | Path, layout: str = "kohya", seed: int = 0) -> Path:
    """A tiny Flux LoRA for the tiny flux-dev / schnell transformer, in kohya's layout (`lora_unet_double_blocks_0_
    img_attn_qkv.lora_down.weight`, with alphas and kohya metadata) or diffusers / peft's (`transformer.
    transformer_blocks.0.attn.to_q.lora_A.weight`, as ai-toolkit saves)."""
    hidden = FLUX["num_attention_heads"] * FLUX["attention_head_dim"]
    generator = torch.Generator().manual_seed(seed + 77)
    rank = 4

    def pair(fan_in: int, fan_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.randn(rank, fan_in, generator=generator) * 0.3,
                torch.randn(fan_out, rank, generator=generator) * 0.3)

    tensors: dict[str, torch.Tensor] = {}
    metadata = {"format": "pt"}
    if layout == "kohya":
        for name, (fan_in, fan_out) in {"double_blocks_0_img_attn_qkv": (hidden, 3 * hidden),
                                        "double_blocks_0_img_attn_proj": (hidden, hidden),
                                        "double_blocks_0_txt_attn_proj": (hidden, hidden)}.items():
            down, up = pair(fan_in, fan_out)
            tensors |= {f"lora_unet_{name}.lora_down.weight": down, f"lora_unet_{name}.lora_up.weight": up,
                        f"lora_unet_{name}.alpha": torch.tensor(float(rank))}
        metadata |= {"ss_base_model_version": "flux1", "ss_network_module": "networks.lora_flux",
                     "ss_output_name": "tiny-flux-lora"}
    else:
        for name in ("transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k",
                     "transformer_blocks.0.attn.to_out.0"):
            down, up = pair(hidden, hidden)
            tensors |= {f"transformer.{name}.lora_A.weight": down, f"transformer.{name}.lora_B.weight": up}
    return save_tiny_file(TinyFile(tensors, metadata, tensors), Path(out_path))


def write_zimage_lora(out_path: str | Path, layout: str = "peft", seed: int = 0) -> Path:
    """A tiny Z-Image LoRA for the tiny z-image transformer under ComfyUI's `diffusion_model.` prefix: plain
    LoRA (`layers.0.attention.to_q.lora_A.weight`, as ai-toolkit and musubi save it) or ai-toolkit's LyCORIS
    LoKr (`…to_q.lokr_w1` / `lokr_w2` Kronecker factors with an alpha)."""
    width = Z_IMAGE["dim"]
    generator = torch.Generator().manual_seed(seed + 78)
    tensors: dict[str, torch.Tensor] = {}
    for name in ("layers.0.attention.to_q", "layers.0.attention.to_out.0", "layers.1.feed_forward.w2"):
        fan_in = int(width / 3 * 8) if name.endswith("w2") else width  # Z-Image's FFN: 8/3 x width, rounded down
        key = f"diffusion_model.{name}"
        if layout == "lokr":
            tensors |= {f"{key}.lokr_w1": torch.randn(4, 4 if fan_in == width else 1, generator=generator),
                        f"{key}.lokr_w2": torch.randn(width // 4, fan_in // (4 if fan_in == width else 1),
                                                      generator=generator) * 0.3,
                        f"{key}.alpha": torch.tensor(4.0)}
        else:
            tensors |= {f"{key}.lora_A.weight": torch.randn(4, fan_in, generator=generator) * 0.3,
                        f"{key}.lora_B.weight": torch.randn(width, 4, generator=generator) * 0.3}
    return save_tiny_file(TinyFile(tensors, {"format": "pt"}, tensors), Path(out_path))


def write_klein_lora(out_path: str | Path, layout: str = "peft", seed: int = 0) -> Path:
    """A tiny Flux.2 Klein LoRA for the tiny flux2-klein transformer in diffusers / peft names, as ai-toolkit saves
    it (`transformer.transformer_blocks.0.attn.to_q.lora_A.weight`, the single block's fused
    `attn.to_qkv_mlp_proj`), or in BFL names under ComfyUI's `diffusion_model.` ("comfy":
    `diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight`, `single_blocks.0.linear1`)."""
    width = KLEIN["num_attention_heads"] * KLEIN["attention_head_dim"]
    fused = 3 * width + 2 * 3 * width  # q, k, v and the gated MLP's two halves (mlp_ratio 3)
    generator = torch.Generator().manual_seed(seed + 80)
    targets = ((("transformer.transformer_blocks.0.attn.to_q", width),
                ("transformer.transformer_blocks.0.attn.to_add_out", width),
                ("transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj", fused)) if layout == "peft" else
               (("diffusion_model.double_blocks.0.img_attn.qkv", 3 * width),
                ("diffusion_model.double_blocks.0.txt_attn.proj", width),
                ("diffusion_model.single_blocks.0.linear1", fused)))
    tensors: dict[str, torch.Tensor] = {}
    for name, fan_out in targets:
        tensors |= {f"{name}.lora_A.weight": torch.randn(4, width, generator=generator) * 0.3,
                    f"{name}.lora_B.weight": torch.randn(fan_out, 4, generator=generator) * 0.3}
    return save_tiny_file(TinyFile(tensors, {"format": "pt"}, tensors), Path(out_path))


def write_qwen_image_lora(out_path: str | Path, layout: str = "comfy", seed: int = 0) -> Path:
    """A tiny Qwen-Image LoRA for the tiny qwen-image transformer, in ComfyUI's / musubi's layout
    (`diffusion_model.transformer_blocks.0.attn.to_q.lora_A.weight`) or kohya's (`lora_unet_transformer_blocks_0_
    img_mlp_net_0_proj.lora_down.weight` with an alpha): the attention and the image / text MLPs of block 0."""
    width = QWEN_IMAGE["num_attention_heads"] * QWEN_IMAGE["attention_head_dim"]
    generator = torch.Generator().manual_seed(seed + 79)
    tensors: dict[str, torch.Tensor] = {}
    targets = {"attn.to_q": (width, width), "attn.add_v_proj": (width, width), "img_mlp.net.0.proj": (width, 4 * width),
               "txt_mlp.net.2": (4 * width, width)}
    for name, (fan_in, fan_out) in targets.items():
        down = torch.randn(4, fan_in, generator=generator) * 0.3
        up = torch.randn(fan_out, 4, generator=generator) * 0.3
        if layout == "kohya":
            key = "lora_unet_transformer_blocks_0_" + name.replace(".", "_")
            tensors |= {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up, f"{key}.alpha": torch.tensor(4.0)}
        else:
            key = f"diffusion_model.transformer_blocks.0.{name}"
            tensors |= {f"{key}.lora_A.weight": down, f"{key}.lora_B.weight": up}
    return save_tiny_file(TinyFile(tensors, {"format": "pt"}, tensors), Path(out_path))
