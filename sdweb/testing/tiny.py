"""Tiny deterministic random-weight models in the file formats users download (a few MB each).

A1111 single-file checkpoints (SD1, SD1-inpaint, SD2, SD2-v, SD2-inpaint, SDXL, SDXL-inpaint, SDXL refiner),
a standalone VAE, a kohya LoRA, textual-inversion embeddings, an ESRGAN x4 upscaler and a ControlNet; Flux.1,
Chroma and SD 3.5 files, their module files (CLIP-L, CLIP-G, T5-XXL, the Flux VAE), a Flux GGUF and diffusers
folders (sdweb.testing.tiny_flow). The same seed gives byte-identical files. Also the built-in demo model.

    python -m sdweb.testing.tiny KIND OUT [--seed N] [--format safetensors|ckpt]
"""

from __future__ import annotations

import argparse
import io
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import safetensors.torch
import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from sdweb.core.atomic import atomic_write_bytes
from sdweb.models.ldm_convert import controlnet_to_ldm, pipeline_to_ldm, vae_to_ldm
from sdweb.testing.tiny_configs import (
    CHECKPOINT_KINDS,
    CONTROLNET_CONFIG,
    TOKENIZER_FILES_DIR,
    VAE_CONFIG,
    tiny_config_dir,
    tiny_spec,
)

__all__ = [
    "DEMO_FILE_NAME",
    "DEMO_SEED",
    "FORMATS",
    "TINY_KINDS",
    "build_tiny_controlnet",
    "TinyFile",
    "build_tiny_pipeline",
    "build_tiny_vae",
    "checkpoint_content",
    "ensure_demo_checkpoint",
    "load_tiny_tokenizer",
    "save_tiny_file",
    "tiny_config_dir",
    "tiny_file_content",
    "write_tiny",
    "write_wide_lora",
    "WIDE_LORA_TARGETS",
]

# The flow kinds live in sdweb.testing.tiny_flow (imported when used: it imports this module).
FLOW_KINDS = ("flux-dev", "flux-schnell", "flux-gguf", "chroma", "sd35-medium", "clip-l", "clip-g", "t5xxl",
              "t5xxl-fp8", "t5xxl-fp8-scaled", "flux-ae", "diffusers-sd1", "diffusers-flux", "z-image", "qwen3-4b",
              "flux-kontext", "qwen-image", "qwen-image-edit", "qwen-image-aio", "qwen-image-gguf", "qwen-image-vae",
              "qwen25vl-7b", "qwen25vl-7b-fp8-scaled", "flux2-klein", "flux2-klein-base", "qwen3-4b-klein",
              "flux2-vae", "flux2-klein-gguf")
TINY_KINDS = (*CHECKPOINT_KINDS, "vae", "lora", "embedding", "embedding-sdxl", "esrgan", "controlnet", *FLOW_KINDS)
FORMATS = ("safetensors", "ckpt")
DEMO_FILE_NAME = "demo-tiny-random.safetensors"
DEMO_SEED = 1234

LORA_RANK = 4
LORA_UNET_TARGETS = (
    *(
        f"down_blocks.0.attentions.0.transformer_blocks.0.{attn}.{proj}"
        for attn in ("attn1", "attn2")
        for proj in ("to_q", "to_k", "to_v", "to_out.0")
    ),
    "up_blocks.1.attentions.0.proj_in",  # a 1x1 conv in SD1
)
WIDE_LORA_TARGETS = ("down_blocks.0.resnets.0.conv1", "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q")
LORA_TE_TARGETS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.out_proj",
    "mlp.fc1",
    "mlp.fc2",
)
EMBEDDING_VECTORS = 2
ESRGAN_FEATURES, ESRGAN_BLOCKS, ESRGAN_GROWTH = 16, 2, 32  # spandrel assumes growth 32, as real models have


@dataclass(frozen=True)
class TinyFile:
    """What one tiny file holds: tensors + metadata for safetensors, and the object a pickle file stores."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    pickled: Any


def _component_seed(seed: int, name: str) -> int:
    # Each component gets its own stream, so e.g. the standalone VAE equals the SD1 checkpoint's VAE.
    # 32 bits: the CPU generator (mt19937) ignores higher seed bits.
    return zlib.crc32(f"{seed}:{name}".encode())


def _seeded_module(seed: int, name: str, factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build with the library's own init under a fixed seed, then perturb every parameter.

    The perturbation makes zero/one-initialised tensors (norms, biases, zero convs) distinct, so a
    converter that swaps two of them fails the round-trip test.
    """
    component_seed = _component_seed(seed, name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(component_seed)
        module = factory()
    generator = torch.Generator().manual_seed(component_seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return module.eval()


def load_tiny_tokenizer() -> CLIPTokenizer:
    """The real CLIP tokenizer from the bundled BPE files."""
    return CLIPTokenizer.from_pretrained(str(TOKENIZER_FILES_DIR), model_max_length=77, local_files_only=True)


def _text_encoder(seed: int, name: str, config: dict[str, Any], with_projection: bool) -> torch.nn.Module:
    model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return _seeded_module(seed, name, lambda: model_class(CLIPTextConfig(**config)))


def build_tiny_vae(seed: int = 0, config: dict[str, Any] | None = None) -> diffusers.AutoencoderKL:
    return _seeded_module(seed, "vae", lambda: diffusers.AutoencoderKL(**(config or VAE_CONFIG)))


def build_tiny_pipeline(kind: str, seed: int = 0) -> diffusers.DiffusionPipeline:
    """The diffusers pipeline a tiny checkpoint kind is written from (fp32, random weights)."""
    spec = tiny_spec(kind)
    components: dict[str, Any] = {
        "unet": _seeded_module(seed, "unet", lambda: diffusers.UNet2DConditionModel(**spec.unet)),
        "vae": build_tiny_vae(seed, spec.vae),
        "scheduler": getattr(diffusers, spec.scheduler[0]).from_config(spec.scheduler[1]),
        "text_encoder": None,
        "tokenizer": None,
    }
    if spec.text_encoder is not None:
        components["text_encoder"] = _text_encoder(seed, "text_encoder", spec.text_encoder, False)
        components["tokenizer"] = load_tiny_tokenizer()
    if spec.text_encoder_2 is not None:
        components["text_encoder_2"] = _text_encoder(seed, "text_encoder_2", spec.text_encoder_2, True)
        components["tokenizer_2"] = load_tiny_tokenizer()
    # model_index's [null, null] entries are absent components; the rest are pipeline flags.
    flags = {key: value for key, value in spec.extras.items() if not isinstance(value, list)}
    optional = {key: None for key, value in spec.extras.items() if isinstance(value, list)}
    return getattr(diffusers, spec.pipeline_class)(**components, **optional, **flags)


def build_tiny_controlnet(seed: int = 0) -> diffusers.ControlNetModel:
    """A ControlNet for the tiny SD1 (same down blocks, tiny hint encoder)."""
    return _seeded_module(seed, "controlnet", lambda: diffusers.ControlNetModel(**CONTROLNET_CONFIG))


def _half(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: tensor.detach().to(torch.float16).contiguous() for key, tensor in sorted(tensors.items())}


def checkpoint_content(pipe: diffusers.DiffusionPipeline, kind: str, seed: int) -> TinyFile:
    """An A1111 single file (fp16, LDM keys) of a pipeline built by build_tiny_pipeline(kind, seed)."""
    tensors = _half(pipeline_to_ldm(pipe, kind))
    metadata = {"format": "pt", "sdweb.tiny": f"{kind} seed={seed}"}
    if pipe.scheduler.config.get("prediction_type") == "v_prediction":
        metadata["modelspec.prediction_type"] = "v"  # as Stability's ModelSpec files say it
    return TinyFile(tensors, metadata, {"state_dict": tensors})


def _vae_file(seed: int) -> TinyFile:
    vae = build_tiny_vae(seed)
    tensors = _half(vae_to_ldm(vae.state_dict(), vae.config, prefix=""))
    return TinyFile(tensors, {"format": "pt"}, {"state_dict": tensors})


def _controlnet_file(seed: int) -> TinyFile:
    controlnet = build_tiny_controlnet(seed)
    tensors = _half(controlnet_to_ldm(controlnet.state_dict(), controlnet.config))
    return TinyFile(tensors, {"format": "pt"}, tensors)


def _lora_pair(module: torch.nn.Module, generator: torch.Generator,
               rank: int = LORA_RANK) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(module, torch.nn.Conv2d):
        down_shape = (rank, module.in_channels, *module.kernel_size)
        up_shape: tuple[int, ...] = (module.out_channels, rank, 1, 1)
    else:
        down_shape, up_shape = (rank, module.in_features), (module.out_features, rank)
    down = torch.randn(down_shape, generator=generator) * 0.2
    up = torch.randn(up_shape, generator=generator) * 0.2
    return down, up


def _lora_file(seed: int) -> TinyFile:
    pipe = build_tiny_pipeline("sd1", seed)
    generator = torch.Generator().manual_seed(_component_seed(seed, "lora"))
    unet_modules = dict(pipe.unet.named_modules())
    te_modules = dict(pipe.text_encoder.named_modules())
    targets = [(f"lora_unet_{name.replace('.', '_')}", unet_modules[name]) for name in LORA_UNET_TARGETS]
    for layer in range(pipe.text_encoder.config.num_hidden_layers):
        for suffix in LORA_TE_TARGETS:
            name = f"encoder.layers.{layer}.{suffix}"
            targets.append((f"lora_te_text_model_{name.replace('.', '_')}", te_modules[name]))
    tensors: dict[str, torch.Tensor] = {}
    for kohya_name, module in targets:
        down, up = _lora_pair(module, generator)
        tensors[f"{kohya_name}.lora_down.weight"] = down
        tensors[f"{kohya_name}.lora_up.weight"] = up
        tensors[f"{kohya_name}.alpha"] = torch.tensor(float(LORA_RANK))
    metadata = {
        "ss_output_name": "tiny-lora",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(LORA_RANK),
        "ss_network_alpha": f"{float(LORA_RANK)}",
        "ss_base_model_version": "sd_v1",
        "ss_v2": "False",
        "ss_resolution": "(64, 64)",
        "ss_sd_model_name": DEMO_FILE_NAME,
        "ss_training_comment": "random weights for tests (sdweb.testing.tiny)",
        "ss_tag_frequency": "{}",
    }
    tensors = _half(tensors)
    return TinyFile(tensors, metadata, tensors)


def _embedding_file(seed: int, sdxl: bool) -> TinyFile:
    generator = torch.Generator().manual_seed(_component_seed(seed, "embedding"))
    if sdxl:
        spec = tiny_spec("sdxl")
        widths = {"clip_l": spec.text_encoder["hidden_size"], "clip_g": spec.text_encoder_2["hidden_size"]}
        tensors = {
            key: torch.randn(EMBEDDING_VECTORS, width, generator=generator) * 0.1
            for key, width in widths.items()
        }
        return TinyFile(tensors, {}, tensors)
    width = tiny_spec("sd1").text_encoder["hidden_size"]
    vectors = torch.randn(EMBEDDING_VECTORS, width, generator=generator) * 0.1
    # The A1111 .pt layout (textual_inversion.py save): one '*' placeholder per file.
    pickled = {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": vectors},
        "name": "tiny-embedding",
        "step": 0,
        "sd_checkpoint": None,
        "sd_checkpoint_name": None,
    }
    return TinyFile({"emb_params": vectors}, {}, pickled)


def _conv(
    generator: torch.Generator, tensors: dict[str, torch.Tensor], name: str, out_ch: int, in_ch: int
) -> None:
    tensors[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=generator) * (
        0.5 / (in_ch * 9) ** 0.5
    )
    tensors[f"{name}.bias"] = torch.randn(out_ch, generator=generator) * 0.01


def _esrgan_file(seed: int) -> TinyFile:
    """ESRGAN x4 in the old-arch layout (model.0 ... model.10) of 4x-UltraSharp-style .pth files."""
    generator = torch.Generator().manual_seed(_component_seed(seed, "esrgan"))
    nf, gc = ESRGAN_FEATURES, ESRGAN_GROWTH
    tensors: dict[str, torch.Tensor] = {}
    _conv(generator, tensors, "model.0", nf, 3)
    for block in range(ESRGAN_BLOCKS):
        for rdb in (1, 2, 3):
            for conv in range(1, 6):
                out_ch = nf if conv == 5 else gc
                _conv(
                    generator,
                    tensors,
                    f"model.1.sub.{block}.RDB{rdb}.conv{conv}.0",
                    out_ch,
                    nf + (conv - 1) * gc,
                )
    _conv(generator, tensors, f"model.1.sub.{ESRGAN_BLOCKS}", nf, nf)
    for index in (3, 6, 8):  # two upsampling convs (x2 each), then the HR conv
        _conv(generator, tensors, f"model.{index}", nf, nf)
    _conv(generator, tensors, "model.10", 3, nf)
    tensors = {key: tensors[key].contiguous() for key in sorted(tensors)}
    return TinyFile(tensors, {}, tensors)


def tiny_file_content(kind: str, seed: int = 0) -> TinyFile:
    """The content of a tiny file of this kind, before serialisation."""
    if kind in CHECKPOINT_KINDS:
        return checkpoint_content(build_tiny_pipeline(kind, seed), kind, seed)
    builders: dict[str, Callable[[int], TinyFile]] = {
        "vae": _vae_file,
        "lora": _lora_file,
        "embedding": lambda s: _embedding_file(s, sdxl=False),
        "embedding-sdxl": lambda s: _embedding_file(s, sdxl=True),
        "esrgan": _esrgan_file,
        "controlnet": _controlnet_file,
    }
    if kind not in builders:
        raise ValueError(f"unknown tiny kind {kind!r}; expected one of {', '.join(TINY_KINDS)}")
    return builders[kind](seed)


def _sorted_safetensors_header(data: bytes) -> bytes:
    """Rewrite the header with sorted metadata: safetensors writes it from a Rust HashMap in random order."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data must stay 8-byte aligned
    return len(encoded).to_bytes(8, "little") + encoded + data[8 + length :]


def _serialize(content: TinyFile, fmt: str) -> bytes:
    if fmt == "safetensors":
        return _sorted_safetensors_header(
            safetensors.torch.save(content.tensors, metadata=content.metadata or None)
        )
    buffer = io.BytesIO()  # a buffer, not a path: torch.save names the zip's folder after the file
    torch.save(content.pickled, buffer)
    return buffer.getvalue()


def save_tiny_file(content: TinyFile, out_path: str | Path, fmt: str = "safetensors") -> Path:
    """Write content atomically; fmt "ckpt" writes the pickle format (.ckpt/.pt/.pth)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return atomic_write_bytes(out_path, _serialize(content, fmt))


def write_tiny(kind: str, out_path: str | Path, *, seed: int = 0, fmt: str = "safetensors") -> Path:
    """Write a tiny model file of this kind atomically (fmt "safetensors" or "ckpt", the pickle format).
    Flow kinds are written in their own format (.safetensors, .gguf for flux-gguf, a folder for diffusers-*)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if kind in FLOW_KINDS:
        if fmt != "safetensors":
            raise ValueError(f"{kind} files are written in their own format; --format does not apply")
        from sdweb.testing.tiny_flow import write_flow_tiny

        return write_flow_tiny(kind, out_path, seed)
    return save_tiny_file(tiny_file_content(kind, seed), out_path, fmt)


def write_wide_lora(out_path: str | Path, rank: int, seed: int = 5) -> Path:
    """A kohya LoRA for the tiny SD1 of the given rank on layers the "lora" kind leaves alone: a 3x3 conv
    (`WIDE_LORA_TARGETS[0]`, LoCon style) and an attention Linear (`WIDE_LORA_TARGETS[1]`)."""
    generator = torch.Generator().manual_seed(_component_seed(seed, "wide-lora"))
    modules = dict(build_tiny_pipeline("sd1", 1).unet.named_modules())
    tensors: dict[str, torch.Tensor] = {}
    for name in WIDE_LORA_TARGETS:
        key = "lora_unet_" + name.replace(".", "_")
        down, up = _lora_pair(modules[name], generator, rank)
        tensors |= {f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up,
                    f"{key}.alpha": torch.tensor(rank / 2.0)}
    metadata = {"ss_base_model_version": "sd_v1", "ss_network_dim": str(rank), "ss_network_alpha": str(rank / 2)}
    return save_tiny_file(TinyFile(tensors, metadata, tensors), out_path)


def ensure_demo_checkpoint(cache_dir: Path) -> Path:
    """The built-in demo model: the tiny SD1, written once (same bytes every time)."""
    path = Path(cache_dir) / DEMO_FILE_NAME
    if not path.is_file():
        write_tiny("sd1", path, seed=DEMO_SEED)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdweb.testing.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=TINY_KINDS)
    parser.add_argument("out", type=Path, help="file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="safetensors")
    parser.add_argument(
        "--config-dir", type=Path, help="also write the diffusers config dir for this kind here"
    )
    args = parser.parse_args(argv)
    path = write_tiny(args.kind, args.out, seed=args.seed, fmt=args.fmt)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    print(f"wrote {path} ({size} bytes)")
    if args.config_dir is not None:
        print(f"wrote {tiny_config_dir(args.kind, args.config_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
