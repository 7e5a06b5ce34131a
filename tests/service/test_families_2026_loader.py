"""Z-Image (and the other 2025-26 families) from the files users have: tiny files in the real key layouts load
offline into their pipelines with exactly the files' weights; detection tells them from their neighbours; a
wrong text encoder is refused naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch
import transformers

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.detect import detect_family, guess_kind
from sdweb.models.loader import check_checkpoint, load_checkpoint
from sdweb.models.modules import classify_module_file
from sdweb.models.reading import read_header
from sdweb.testing.tiny_flow import build_tiny_component, flow_file_content


def _same(module: torch.nn.Module, source: torch.nn.Module, dtype: torch.dtype) -> None:
    loaded, expected = module.state_dict(), source.state_dict()
    assert set(loaded) == set(expected)
    different = [k for k in expected if not torch.equal(loaded[k].float(), expected[k].detach().to(dtype).float())]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def zimage(flow_files, tmp_path_factory):
    modules = flow_files.paths("flux-ae", "qwen3-4b")
    return load_checkpoint(flow_files.path("z-image"), modules=modules,
                           config_cache_dir=tmp_path_factory.mktemp("zimage-configs"))


def test_zimage_loads_with_exactly_the_files_weights_and_makes_an_image(zimage, flow_files) -> None:
    assert check_checkpoint(flow_files.path("z-image")).name == "z-image"
    assert type(zimage.pipeline).__name__ == "ZImagePipeline"
    assert zimage.modules == ("ae", "qwen_3_4b")
    _same(zimage.pipeline.transformer, build_tiny_component("z-image-transformer"), torch.bfloat16)
    _same(zimage.pipeline.text_encoder, build_tiny_component("qwen3"), torch.bfloat16)
    image = zimage.pipeline("a cat", height=32, width=48, num_inference_steps=2, guidance_scale=0.0,
                            generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (48, 32)


def test_a_comfyui_prefixed_zimage_and_a_bare_qwen3_load(flow_files, tmp_path: Path) -> None:
    tensors = flow_file_content("z-image").tensors
    prefixed = tmp_path / "z_image_comfy.safetensors"
    safetensors.torch.save_file({f"model.diffusion_model.{k}": v for k, v in tensors.items()}, prefixed)
    bare_qwen = tmp_path / "qwen3_bare.safetensors"  # Qwen3Model's own layout: no `model.` prefix
    safetensors.torch.save_file({k.removeprefix("model."): v for k, v in
                                 flow_file_content("qwen3-4b").tensors.items()}, bare_qwen)
    assert classify_module_file(bare_qwen).info.kind == "qwen3"
    loaded = load_checkpoint(prefixed, modules=[flow_files.path("flux-ae"), bare_qwen],
                             config_cache_dir=tmp_path / "cache")
    assert loaded.family.name == "z-image"
    _same(loaded.pipeline.text_encoder, build_tiny_component("qwen3"), torch.bfloat16)


def test_lumina2_modulation_is_not_zimage() -> None:
    """Lumina 2 shares cap_embedder / context_refiner; its blocks modulate with adaLN_modulation.1."""
    shapes = {key.replace("adaLN_modulation.0", "adaLN_modulation.1"): tuple(v.shape)
              for key, v in flow_file_content("z-image").tensors.items()}
    with pytest.raises(InvalidModelFileError):
        detect_family(shapes, "lumina2.safetensors")


def test_a_qwen3_file_in_the_checkpoint_folder_is_named_a_text_encoder(flow_files) -> None:
    assert guess_kind(read_header(flow_files.path("qwen3-4b")).shapes) == "text_encoder"


def test_a_qwen3_of_another_width_is_named(flow_files, tmp_path: Path) -> None:
    config = transformers.Qwen3Config(vocab_size=1000, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      head_dim=8, num_attention_heads=2, num_key_value_heads=1)
    state = transformers.Qwen3Model(config).state_dict()
    other = tmp_path / "qwen_3_8b.safetensors"
    safetensors.torch.save_file({f"model.{k}": v.half() for k, v in state.items()}, other)
    with pytest.raises(InvalidModelFileError) as caught:
        load_checkpoint(flow_files.path("z-image"), modules=[flow_files.path("flux-ae"), other],
                        config_cache_dir=tmp_path / "cache")
    assert caught.value.code == "module_mismatch"
    assert "qwen_3_8b.safetensors gives 16-wide Qwen3 output" in caught.value.message
    assert "z_image_turbo-tiny.safetensors expects 8" in caught.value.message


def test_kontext_is_told_from_flux_dev_by_its_file_name(flow_files, tmp_path: Path) -> None:
    """Kontext's weights have Flux dev's layout; like InvokeAI and Forge, the file name tells them apart."""
    shapes = read_header(flow_files.path("flux-kontext")).shapes
    assert detect_family(shapes, "flux1-kontext-dev.safetensors").name == "flux-kontext"
    assert detect_family(shapes, "flux1-dev.safetensors").name == "flux-dev"
    loaded = load_checkpoint(flow_files.path("flux-kontext"), modules=flow_files.paths("flux-ae", "clip-l", "t5xxl"),
                             config_cache_dir=tmp_path / "cache")
    assert type(loaded.pipeline).__name__ == "FluxKontextPipeline"
    _same(loaded.pipeline.transformer, build_tiny_component("flux-kontext-transformer"), torch.bfloat16)
