"""Qwen-Image from the files users have: tiny files in the real key layouts (checked against diffusers' own key
names and its Wan VAE converter) load offline with exactly the files' weights, whether transformer-only (bare or
ComfyUI-prefixed) with loose VAE and Qwen2.5-VL files (bf16 or fp8-scaled) or all-in-one; detection tells them
from the other families; a wrong or missing VAE / text encoder, or too little RAM, is a clear error."""

from __future__ import annotations

import math
from pathlib import Path

import diffusers
import pytest
import safetensors.torch
import torch
import transformers
from accelerate import init_empty_weights
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from sdweb.core.errors import InvalidModelFileError, UserError
from sdweb.models.detect import detect_family
from sdweb.models.families import FAMILIES
from sdweb.models.flow_convert import conversion_plan, layout_from_config
from sdweb.models.flow_detect import transformer_config
from sdweb.models.loader import check_checkpoint, load_checkpoint
from sdweb.models.modules import choose_modules, classify_module_file
from sdweb.models.reading import read_header
from sdweb.models.wan_vae import to_diffusers_key, to_wan_key
from sdweb.testing.tiny_flow import QWEN_IMAGE, QWEN_VAE, build_tiny_component, flow_file_content

MODULES = ("qwen-image-vae", "qwen25vl-7b")


def _same(module: torch.nn.Module, source: torch.nn.Module, dtype: torch.dtype) -> None:
    loaded, expected = module.state_dict(), source.state_dict()
    assert set(loaded) == set(expected)
    different = [k for k in expected if not torch.equal(loaded[k].float(), expected[k].detach().to(dtype).float())]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def _fp8_close(module: torch.nn.Module, source: torch.nn.Module) -> None:
    """Upcast fp8-scaled weights: e4m3 keeps 3 mantissa bits, with one scale per tensor."""
    loaded, expected = module.state_dict(), source.state_dict()
    assert set(loaded) == set(expected)
    for name, value in expected.items():
        got = loaded[name]
        assert got.dtype == torch.float32 and (got - value).abs().max() <= 0.07 * value.abs().max() + 1e-3, name


@pytest.fixture(scope="module")
def qwen(flow_files, tmp_path_factory):
    return load_checkpoint(flow_files.path("qwen-image"), modules=flow_files.paths(*MODULES),
                           config_cache_dir=tmp_path_factory.mktemp("qwen-configs"))


@pytest.mark.parametrize("config", [QWEN_IMAGE, QWEN_IMAGE | {"num_layers": 3, "num_attention_heads": 3}])
def test_key_plan_is_diffusers_own_names_and_shapes_give_the_config(config):
    with init_empty_weights():
        model = diffusers.QwenImageTransformer2DModel(**config)
    family = FAMILIES["qwen-image"]
    plan = conversion_plan(layout_from_config(model.config, family))
    assert sorted(p.target for p in plan) == sorted(model.state_dict())
    assert all(p.source == p.target for p in plan)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    read = transformer_config(shapes, family, {"patch_size": 2})
    assert {key: read[key] for key in config} == {key: model.config[key] for key in config} | {
        "axes_dims_rope": list(config["axes_dims_rope"])}


def test_wan_vae_keys_are_what_diffusers_converter_makes():
    state = build_tiny_component("qwen-vae").state_dict()
    wan = {to_wan_key(key, QWEN_VAE["num_res_blocks"]): value for key, value in state.items()}
    converted = convert_wan_vae_to_diffusers(dict(wan))
    assert set(converted) == set(state)
    assert all(converted[key] is state[key] for key in state)
    assert {to_diffusers_key(key, QWEN_VAE["num_res_blocks"]) for key in wan} == set(state)


def test_qwen_image_loads_with_exactly_the_files_weights(qwen, flow_files) -> None:
    assert check_checkpoint(flow_files.path("qwen-image")).name == "qwen-image"
    pipe = qwen.pipeline
    assert type(pipe).__name__ == "QwenImagePipeline" and qwen.modules == ("qwen_image_vae", "qwen_2.5_vl_7b")
    assert type(pipe.text_encoder).__name__ == "Qwen2_5_VLTextModel"  # no vision tower for txt2img
    _same(pipe.transformer, build_tiny_component("qwen-image-transformer"), torch.bfloat16)
    _same(pipe.vae, build_tiny_component("qwen-vae"), torch.bfloat16)
    _same(pipe.text_encoder, build_tiny_component("qwen25vl").language_model, torch.bfloat16)
    assert pipe.vae.config.latents_mean == build_tiny_component("qwen-vae").config.latents_mean
    image = pipe("a cat", height=32, width=48, num_inference_steps=2, true_cfg_scale=1.0,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (48, 32)


def test_all_in_one_and_comfy_prefixed_files_load(flow_files, tmp_path: Path) -> None:
    assert choose_modules(FAMILIES["qwen-image"], flow_files.path("qwen-image-aio"), [], []) == []
    whole = load_checkpoint(flow_files.path("qwen-image-aio"), config_cache_dir=tmp_path / "cache")
    assert whole.family.name == "qwen-image" and whole.modules == ()
    _same(whole.pipeline.vae, build_tiny_component("qwen-vae"), torch.bfloat16)
    _fp8_close(whole.pipeline.text_encoder, build_tiny_component("qwen25vl").language_model)
    prefixed = tmp_path / "qwen_image_comfy.safetensors"
    safetensors.torch.save_file({f"model.diffusion_model.{k}": v
                                 for k, v in flow_file_content("qwen-image").tensors.items()}, prefixed)
    loaded = load_checkpoint(prefixed, modules=flow_files.paths(*MODULES), config_cache_dir=tmp_path / "cache")
    _same(loaded.pipeline.transformer, build_tiny_component("qwen-image-transformer"), torch.bfloat16)


def test_transformers5_encoder_and_diffusers_vae_layouts_load(flow_files, tmp_path: Path) -> None:
    """A Qwen2.5-VL saved by transformers 5 (`model.language_model.`, `model.visual.`, `lm_head`) and the Qwen
    repository's diffusers-named VAE load as the ComfyUI files do."""
    encoder = build_tiny_component("qwen25vl")
    saved = tmp_path / "qwen2.5-vl-7b-instruct.safetensors"
    state = {f"model.{k}": v.to(torch.bfloat16) for k, v in encoder.state_dict().items()}
    state["lm_head.weight"] = torch.zeros(8, 16, dtype=torch.bfloat16)  # not needed: left out
    safetensors.torch.save_file(state, saved)
    vae = tmp_path / "diffusion_pytorch_model.safetensors"
    safetensors.torch.save_file({k: v.to(torch.bfloat16) for k, v in build_tiny_component("qwen-vae").state_dict().items()},
                                vae)
    assert classify_module_file(saved).info.kind == "qwen25vl" and classify_module_file(saved).info.vision
    assert classify_module_file(vae).info.vae_class == "AutoencoderKLQwenImage"
    loaded = load_checkpoint(flow_files.path("qwen-image-edit"), modules=[vae, saved], config_cache_dir=tmp_path / "c")
    _same(loaded.pipeline.text_encoder, encoder, torch.bfloat16)
    _same(loaded.pipeline.vae, build_tiny_component("qwen-vae"), torch.bfloat16)


def test_a_gguf_transformer_stays_quantized_and_generates(flow_files, tmp_path: Path) -> None:
    loaded = load_checkpoint(flow_files.path("qwen-image-gguf"), modules=flow_files.paths(*MODULES),
                             config_cache_dir=tmp_path / "cache")
    assert loaded.family.name == "qwen-image"
    assert type(loaded.pipeline.transformer.img_in.weight).__name__ == "GGUFParameter"
    image = loaded.pipeline("a cat", height=32, width=32, num_inference_steps=2, true_cfg_scale=1.0).images[0]
    assert image.size == (32, 32)


def test_edit_loads_the_vision_tower_and_an_fp8_scaled_encoder_is_upcast(flow_files, tmp_path: Path) -> None:
    assert classify_module_file(flow_files.path("qwen25vl-7b-fp8-scaled")).info.precision == "fp8_scaled"
    loaded = load_checkpoint(flow_files.path("qwen-image-edit"),
                             modules=flow_files.paths("qwen-image-vae", "qwen25vl-7b-fp8-scaled"),
                             config_cache_dir=tmp_path / "cache")
    assert loaded.family.name == "qwen-image-edit" and type(loaded.pipeline).__name__ == "QwenImageEditPipeline"
    assert type(loaded.pipeline.text_encoder).__name__ == "Qwen2_5_VLModel"
    _fp8_close(loaded.pipeline.text_encoder, build_tiny_component("qwen25vl"))
    _same(loaded.pipeline.transformer, build_tiny_component("qwen-image-edit-transformer"), torch.bfloat16)


def test_detection_tells_qwen_image_from_the_other_families(flow_files) -> None:
    shapes = read_header(flow_files.path("qwen-image")).shapes
    assert detect_family(shapes, "qwen_image_2512_bf16.safetensors").name == "qwen-image"
    assert detect_family(shapes, "Qwen-Image-Edit-2509_fp8.safetensors").name == "qwen-image-edit"
    for kind in ("flux-kontext", "z-image", "sd35-medium", "chroma"):
        assert not detect_family(read_header(flow_files.path(kind)).shapes, f"{kind}-edit.safetensors"
                                 ).name.startswith("qwen")
    marked = dict(shapes) | {"__index_timestep_zero__": (0,)}
    with pytest.raises(InvalidModelFileError, match="Edit-2511"):
        detect_family(marked, "qwen_image_edit_2511.safetensors")
    assert classify_module_file(flow_files.path("qwen-image-vae")).info.vae_class == "AutoencoderKLQwenImage"
    assert classify_module_file(flow_files.path("flux-ae")).info.vae_class == "AutoencoderKL"


def test_wrong_or_missing_modules_name_the_file_and_the_fix(flow_files, tmp_path: Path) -> None:
    checkpoint = flow_files.path("qwen-image")
    cache = tmp_path / "cache"
    cases = [(["flux-ae", "qwen25vl-7b"], "ae.safetensors is an SD / Flux-style VAE with 16 latent channels, which Qwen-Image does not use", "qwen_image_vae.safetensors"),
             (["qwen-image-vae", "qwen3-4b"], "qwen_3_4b.safetensors is a Qwen3 text encoder",
              "qwen_2.5_vl_7b_fp8_scaled.safetensors"),
             (["qwen-image-vae"], "Qwen-Image needs a Qwen2.5-VL text encoder", "models/text_encoder")]
    for kinds, message, fix in cases:
        with pytest.raises(InvalidModelFileError) as caught:
            load_checkpoint(checkpoint, modules=flow_files.paths(*kinds), config_cache_dir=cache)
        assert message in caught.value.message and fix in str(caught.value), str(caught.value)
    with pytest.raises(InvalidModelFileError) as caught:
        choose_modules(FAMILIES["qwen-image"], checkpoint, [], flow_files.paths("flux-ae", "qwen25vl-7b"))
    assert "qwen_image_vae.safetensors" in caught.value.message and "models/VAE" in caught.value.message


def test_edit_refuses_a_text_encoder_without_its_vision_tower(flow_files, tmp_path: Path) -> None:
    text_only = tmp_path / "qwen_2.5_vl_7b_text.safetensors"
    safetensors.torch.save_file({k: v for k, v in flow_file_content("qwen25vl-7b").tensors.items()
                                 if not k.startswith("visual.")}, text_only)
    assert not classify_module_file(text_only).info.vision
    with pytest.raises(InvalidModelFileError) as caught:
        load_checkpoint(flow_files.path("qwen-image-edit"), modules=[flow_files.path("qwen-image-vae"), text_only],
                        config_cache_dir=tmp_path / "cache")
    assert "qwen_2.5_vl_7b_text.safetensors is a Qwen2.5-VL text encoder without its vision tower" in \
        caught.value.message
    loaded = load_checkpoint(flow_files.path("qwen-image"), modules=[flow_files.path("qwen-image-vae"), text_only],
                             config_cache_dir=tmp_path / "cache")  # txt2img does not need it
    assert loaded.modules == ("qwen_image_vae", "qwen_2.5_vl_7b_text")


def _header_source(name: str, shapes: dict[str, tuple[int, ...]], prefix: str = ""):
    from sdweb.models.flow_loader import _Source
    from sdweb.models.reading import FileHeader
    from sdweb.models.weights import TensorFile

    return _Source(TensorFile(Path(name), FileHeader(shapes, {}, {})), prefix)


def test_the_ram_check_counts_a_gguf_transformer_as_stored_and_no_lm_head(flow_files) -> None:
    """A GGUF transformer stays quantized when loaded and an `lm_head` is never loaded: neither is counted as
    bf16 weights (a Q4 Qwen-Image would otherwise be refused for the RAM its bf16 form needs)."""
    from sdweb.models.flow_loader import _Source, check_ram
    from sdweb.models.weights import open_tensor_file

    gguf, encoder = flow_files.paths("qwen-image-gguf", "qwen25vl-7b")
    with open_tensor_file(gguf, read_header(gguf)) as transformer:
        shapes = dict(read_header(encoder).shapes)
        elements = sum(math.prod(shape) for shape in shapes.values())
        shapes["lm_head.weight"] = (152064, 16)
        sources = {"transformer": _Source(transformer, ""), "qwen25vl": _header_source(encoder.name, shapes)}
        needed = gguf.stat().st_size + 2 * elements
        check_ram("qwen-image-tiny-Q8_0.gguf", sources, torch.bfloat16, needed)  # exactly enough
        with pytest.raises(UserError) as caught:
            check_ram("qwen-image-tiny-Q8_0.gguf", sources, torch.bfloat16, needed - 1)
    assert caught.value.code == "not_enough_ram"
    assert f"qwen-image-tiny-Q8_0.gguf: {gguf.stat().st_size / 1e9:.1f} GB" in caught.value.message


def test_not_enough_ram_for_the_7b_encoder_says_how_much_is_needed() -> None:
    """The real Qwen2.5-VL-7B (built on the meta device from the bundled config) and the real 20B transformer's
    shapes: the message gives each file's need in the compute dtype."""
    import json

    from sdweb.models.flow_loader import check_ram
    from sdweb.models.loader import CONFIGS

    def shapes_of(module: torch.nn.Module, prefix: str = "") -> dict[str, tuple[int, ...]]:
        return {prefix + key: tuple(value.shape) for key, value in module.state_dict().items()}

    config = json.loads((CONFIGS / "qwen-image" / "text_encoder" / "config.json").read_text())
    transformer_config = json.loads((CONFIGS / "qwen-image" / "transformer" / "config.json").read_text())
    with init_empty_weights():
        encoder = transformers.Qwen2_5_VLModel(transformers.Qwen2_5_VLConfig(**config))
        transformer = diffusers.QwenImageTransformer2DModel.from_config(transformer_config)
    sources = {"transformer": _header_source("qwen_image_fp8_e4m3fn.safetensors", shapes_of(transformer)),
               "qwen25vl": _header_source("qwen_2.5_vl_7b_fp8_scaled.safetensors", shapes_of(encoder, "model."))}
    with pytest.raises(UserError) as caught:
        check_ram("qwen_image_fp8_e4m3fn.safetensors", sources, torch.bfloat16, 32 * 10**9)
    message = caught.value.message
    assert caught.value.code == "not_enough_ram" and "bfloat16" in caught.value.hint
    assert "needs about 56.4 GB of RAM" in message and "32.0 GB is available" in message
    assert "qwen_image_fp8_e4m3fn.safetensors: 40.9 GB" in message  # 20.4 B parameters
    assert "qwen_2.5_vl_7b_fp8_scaled.safetensors: 15.5 GB" in message  # 7.07 B + the 0.68 B vision tower
