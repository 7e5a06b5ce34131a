"""Tiny random-weight upscaler, face-restoration, BLIP and CLIP models in their real file formats, and a
synthetic face image; for tests and benchmarks (no downloads).

- ESRGAN (RRDBNet) x4 in the old layout (``model.N``, from sdweb.testing.tiny) and in the new BasicSR layout
  (``conv_first``, ``body.N.rdbK``, ``conv_up1``, ...), at x4 and x2 (x2 uses BasicSR's pixel-unshuffle input).
- Real-ESRGAN compact (SRVGGNetCompact) at x2 / x4, SwinIR x2 and DAT x2 at small width, built with
  spandrel's own architecture classes and saved as their state dicts.
- GFPGAN and CodeFormer: spandrel fixes their widths (GFPGAN entirely, CodeFormer's VQ autoencoder), so these
  are full-size networks with random weights (86 M and 75 M parameters), saved in fp16 (~170 / ~150 MB).
- BLIP captioning and CLIP folders in transformers' save_pretrained format, with a small word-level vocabulary.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFilter

from sdweb.postprocess.spandrel_import import import_spandrel
from sdweb.testing.tiny import FORMATS, TinyFile, save_tiny_file, tiny_file_content

__all__ = [
    "BLIP_WORDS",
    "codeformer_state_dict",
    "compact_state_dict",
    "dat_state_dict",
    "esrgan_state_dict",
    "gfpgan_state_dict",
    "save_state_dict",
    "swinir_state_dict",
    "synthetic_face",
    "write_tiny_blip",
    "write_tiny_clip",
]

ESRGAN_FEATURES, ESRGAN_BLOCKS, ESRGAN_GROWTH = 16, 2, 32  # spandrel assumes growth 32


def _seed(seed: int, name: str) -> int:
    return zlib.crc32(f"{seed}:{name}".encode())


def _seeded(seed: int, name: str, factory: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(seed, name))
        module = factory()
    return module.eval()


def _conv(generator: torch.Generator, tensors: dict[str, torch.Tensor], name: str, out_ch: int, in_ch: int) -> None:
    tensors[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=generator) * (0.5 / (in_ch * 9) ** 0.5)
    tensors[f"{name}.bias"] = torch.randn(out_ch, generator=generator) * 0.01


def esrgan_state_dict(seed: int = 0, *, scale: int = 4, layout: str = "new") -> dict[str, torch.Tensor]:
    """RRDBNet weights (nf 16, 2 blocks, growth 32). ``layout`` "old" (x4 only, as 4x-UltraSharp) or "new"
    (BasicSR, as RealESRGAN_x4plus; x2 and x1 take pixel-unshuffled input as RealESRGAN_x2plus does)."""
    if layout == "old":
        if scale != 4:
            raise ValueError("the old-layout tiny ESRGAN is x4 only")
        return dict(tiny_file_content("esrgan", seed).tensors)
    if scale not in (1, 2, 4):
        raise ValueError(f"BasicSR's RRDBNet is x1, x2 or x4, not x{scale}")
    generator = torch.Generator().manual_seed(_seed(seed, f"esrgan-new-x{scale}"))
    nf, gc = ESRGAN_FEATURES, ESRGAN_GROWTH
    tensors: dict[str, torch.Tensor] = {}
    _conv(generator, tensors, "conv_first", nf, 3 * (4 // scale) ** 2)
    for block in range(ESRGAN_BLOCKS):
        for rdb in (1, 2, 3):
            for conv in range(1, 6):
                _conv(generator, tensors, f"body.{block}.rdb{rdb}.conv{conv}", nf if conv == 5 else gc,
                      nf + (conv - 1) * gc)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        _conv(generator, tensors, name, nf, nf)
    _conv(generator, tensors, "conv_last", 3, nf)
    return {key: tensors[key].contiguous() for key in sorted(tensors)}


def compact_state_dict(seed: int = 0, *, scale: int = 2, features: int = 16, convs: int = 2
                       ) -> dict[str, torch.Tensor]:
    """Real-ESRGAN compact (SRVGGNetCompact, as realesr-general-x4v3) at small width."""
    import_spandrel()
    from spandrel.architectures.Compact import Compact

    model = _seeded(seed, f"compact-x{scale}", lambda: Compact(num_in_ch=3, num_out_ch=3, num_feat=features,
                                                                num_conv=convs, upscale=scale))
    return {key: value.contiguous() for key, value in model.state_dict().items()}


def swinir_state_dict(seed: int = 0, *, scale: int = 2) -> dict[str, torch.Tensor]:
    """SwinIR (pixelshuffle, window 8) with one stage of one block at width 12."""
    import_spandrel()
    from spandrel.architectures.SwinIR import SwinIR

    model = _seeded(seed, f"swinir-x{scale}", lambda: SwinIR(
        img_size=32, patch_size=1, in_chans=3, embed_dim=12, depths=[1], num_heads=[2], window_size=8,
        mlp_ratio=2.0, upscale=scale, img_range=1.0, upsampler="pixelshuffle", resi_connection="1conv"))
    return {key: value.contiguous() for key, value in model.state_dict().items()}


def dat_state_dict(seed: int = 0, *, scale: int = 2) -> dict[str, torch.Tensor]:
    """DAT (pixelshuffle) with one stage of two blocks at width 32 (its spatial branch needs width >= 16)."""
    import_spandrel()
    from spandrel.architectures.DAT import DAT

    model = _seeded(seed, f"dat-x{scale}", lambda: DAT(
        img_size=16, in_chans=3, embed_dim=32, split_size=[2, 4], depth=[2], num_heads=[2], expansion_factor=2.0,
        upscale=scale, img_range=1.0, resi_connection="1conv", upsampler="pixelshuffle"))
    return {key: value.contiguous() for key, value in model.state_dict().items()}


def gfpgan_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """GFPGANv1.4-shaped weights (spandrel reads no width from the file: it is always full-size), fp16."""
    import_spandrel()
    from spandrel.architectures.GFPGAN import GFPGAN

    model = _seeded(seed, "gfpgan", lambda: GFPGAN(
        out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
        num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True))
    return {key: value.half().contiguous() for key, value in model.state_dict().items()}


def codeformer_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """CodeFormer weights with a small transformer (width 64, one layer); its VQ autoencoder is fixed, fp16."""
    import_spandrel()
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    model = _seeded(seed, "codeformer", lambda: CodeFormer(
        dim_embd=64, n_head=8, n_layers=1, codebook_size=1024, latent_size=256,
        connect_list=["32", "64", "128", "256"]))
    return {key: value.half().contiguous() for key, value in model.state_dict().items()}


def save_state_dict(tensors: dict[str, torch.Tensor], path: str | Path, *, wrap: str | None = None) -> Path:
    """.safetensors, or a pickle (.pth/.pt) optionally wrapped as ``{wrap: tensors}`` (``params_ema``, ...)."""
    path = Path(path)
    fmt = "safetensors" if path.suffix == ".safetensors" else "ckpt"
    assert fmt in FORMATS
    pickled: Any = {wrap: tensors} if wrap else tensors
    return save_tiny_file(TinyFile(tensors, {}, pickled), path, fmt)


# --------------------------------------------------------------------------------------------- a test face

def synthetic_face(size: tuple[int, int] = (256, 256), center: tuple[int, int] | None = None, scale: float = 1.0,
                   background: tuple[int, int, int] = (60, 70, 90)) -> Image.Image:
    """A flat cartoon face (head, hair, brows, eyes, nose, mouth) that OpenCV's frontal-face cascade finds.

    At scale 1 the face is about 120x180 pixels.
    """
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    cx, cy = center if center is not None else (size[0] // 2, size[1] // 2)

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [cx + x0 * scale, cy + y0 * scale, cx + x1 * scale, cy + y1 * scale]

    draw.ellipse(box(-60, -80, 60, 85), fill=(225, 185, 160))
    draw.ellipse(box(-62, -95, 62, -45), fill=(60, 40, 30))
    for side in (-1, 1):
        x0, x1 = sorted((side * 14, side * 42))
        draw.ellipse(box(x0, -30, x1, -14), fill=(40, 30, 30))
        x0, x1 = sorted((side * 12, side * 46))
        draw.rectangle(box(x0, -44, x1, -38), fill=(70, 50, 40))
    draw.polygon([(cx, cy - 10 * scale), (cx - 9 * scale, cy + 18 * scale), (cx + 9 * scale, cy + 18 * scale)],
                 fill=(195, 150, 130))
    draw.ellipse(box(-26, 34, 26, 48), fill=(150, 60, 60))
    return image.filter(ImageFilter.GaussianBlur(2))


# ---------------------------------------------------------------------------------------- BLIP and CLIP

BLIP_WORDS = ("a", "an", "the", "photo", "painting", "drawing", "of", "cat", "dog", "person", "face", "man",
              "woman", "sitting", "on", "with", "in", "red", "blue", "green", "house", "tree", "sky", "and")
_BERT_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")


def write_tiny_blip(folder: str | Path, seed: int = 0) -> Path:
    """A BLIP captioning model folder (config, weights, BERT-style tokenizer, image processor) at width 32."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = [*_BERT_SPECIAL, *BLIP_WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True, bos_token="[DEC]")
    text = {"vocab_size": len(vocab), "hidden_size": 32, "encoder_hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 40,
            "bos_token_id": vocab.index("[DEC]"), "pad_token_id": 0, "sep_token_id": vocab.index("[SEP]")}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    config = BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    model = _seeded(seed, "blip", lambda: BlipForConditionalGeneration(config))
    model.save_pretrained(folder)
    processor = BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer)
    processor.save_pretrained(folder)
    return folder


def write_tiny_clip(folder: str | Path, seed: int = 0) -> Path:
    """A CLIP model folder (config, weights, the CLIP BPE tokenizer, image processor) at width 32."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from sdweb.testing.tiny import load_tiny_tokenizer

    folder = Path(folder)
    text = {"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 77, "projection_dim": 32}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8, "projection_dim": 32}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
    model = _seeded(seed, "clip", lambda: CLIPModel(config))
    model.save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=load_tiny_tokenizer()).save_pretrained(folder)
    return folder

