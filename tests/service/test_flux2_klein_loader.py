"""Flux.2 Klein from the files users have: the tiny BFL-key transformer, the ComfyUI-layout Qwen3 and the BFL-key
Flux.2 VAE load offline into a Flux2KleinPipeline with exactly the files' weights; our key plans give what diffusers'
own Flux.2 converters give; the real 4B / 9B shapes read back as their configs; detection tells Klein (and its base
version, by name) from Flux.1 and refuses Flux.2 Dev naming the file; Automatic picks the Qwen3 of the transformer's
width; a wrong or missing VAE / text encoder is refused naming the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import diffusers
import pytest
import safetensors.torch
import torch
from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.detect import detect_family
from sdweb.models.families import FAMILIES
from sdweb.models.flow_detect import encoder_widths, klein_size, strip_prefix, transformer_config
from sdweb.models.loader import CONFIGS, check_checkpoint, load_checkpoint
from sdweb.models.modules import ModuleFile, ModuleInfo, choose_modules, classify_module_file, resolve_modules
from sdweb.models.reading import read_header
from sdweb.testing.tiny_flow import build_tiny_component, flow_file_content

KLEIN = FAMILIES["flux2-klein"]
# the released models' numbers (black-forest-labs/FLUX.2-klein-4B / -9B transformer configs)
REAL = {"4B": {"num_layers": 5, "num_single_layers": 20, "num_attention_heads": 24, "joint_attention_dim": 7680},
        "9B": {"num_layers": 8, "num_single_layers": 24, "num_attention_heads": 32, "joint_attention_dim": 12288}}


def _same(module: torch.nn.Module, source: torch.nn.Module, dtype: torch.dtype) -> None:
    loaded, expected = module.state_dict(), source.state_dict()
    assert set(loaded) == set(expected)
    different = [k for k in expected if k != "bn.num_batches_tracked"
                 and not torch.equal(loaded[k].float(), expected[k].detach().to(dtype).float())]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def _bfl_shapes(numbers: dict, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Key names and shapes of a BFL-layout Klein file of these numbers (meta: no memory)."""
    from sdweb.models.flow_convert import conversion_plan, layout_from_config, to_original

    template = json.loads((CONFIGS / "flux2-klein/transformer/config.json").read_text())
    with torch.device("meta"):
        model = diffusers.Flux2Transformer2DModel.from_config(template | numbers)
    original = to_original(conversion_plan(layout_from_config(model.config, KLEIN)), model.state_dict())
    return {prefix + key: tuple(value.shape) for key, value in original.items()}


@pytest.fixture(scope="module")
def klein(flow_files, tmp_path_factory):
    return load_checkpoint(flow_files.path("flux2-klein"), modules=flow_files.paths("flux2-vae", "qwen3-4b-klein"),
                           config_cache_dir=tmp_path_factory.mktemp("klein-configs"))


def test_klein_loads_with_exactly_the_files_weights(klein, flow_files) -> None:
    assert check_checkpoint(flow_files.path("flux2-klein")).name == "flux2-klein"
    assert type(klein.pipeline).__name__ == "Flux2KleinPipeline"
    assert klein.modules == ("flux2-vae", "qwen_3_4b_klein")
    _same(klein.pipeline.transformer, build_tiny_component("flux2-klein-transformer"), torch.bfloat16)
    _same(klein.pipeline.text_encoder, build_tiny_component("qwen3-klein"), torch.bfloat16)
    _same(klein.pipeline.vae, build_tiny_component("flux2-vae"), torch.float32)  # an fp32 file


def test_key_plans_are_diffusers_own_flux2_conversions() -> None:
    """Our BFL-key plan gives what `convert_flux2_transformer_checkpoint_to_diffusers` gives; the VAE's names are
    diffusers' `convert_flux2_to_diffusers.py` ones (quant convs inside the encoder / decoder, `bn` statistics)."""
    bfl = flow_file_content("flux2-klein").tensors
    theirs = convert_flux2_transformer_checkpoint_to_diffusers({k: v.clone() for k, v in bfl.items()})
    ours = build_tiny_component("flux2-klein-transformer").state_dict()
    assert set(theirs) == set(ours)
    assert all(torch.equal(theirs[k], ours[k].to(torch.bfloat16)) for k in ours)
    vae_keys = set(flow_file_content("flux2-vae").tensors)
    assert {"encoder.quant_conv.weight", "decoder.post_quant_conv.weight", "bn.running_mean", "bn.running_var",
            "encoder.down.0.block.0.conv1.weight", "decoder.mid.attn_1.q.weight"} <= vae_keys
    assert not any(key.startswith(("quant_conv", "post_quant_conv")) for key in vae_keys)


@pytest.mark.parametrize("size", list(REAL))
def test_real_4b_and_9b_shapes_read_back_their_configs(size) -> None:
    shapes = _bfl_shapes(REAL[size], "model.diffusion_model.")
    assert detect_family(shapes, f"flux-2-klein-{size.lower()}.safetensors").name == "flux2-klein"
    inner = strip_prefix(shapes, "model.diffusion_model.")
    read = transformer_config(inner, KLEIN, {})
    assert {key: read[key] for key in REAL[size]} == REAL[size]
    assert read["in_channels"] == 128 and read["guidance_embeds"] is False and read["axes_dims_rope"] == [32] * 4
    assert klein_size(inner) == size
    assert encoder_widths(shapes, KLEIN) == {"qwen3": REAL[size]["joint_attention_dim"] // 3}


def test_detection_tells_klein_base_and_flux1_apart_and_refuses_flux2_dev(flow_files) -> None:
    shapes = read_header(flow_files.path("flux2-klein")).shapes
    assert detect_family(shapes, "flux-2-klein-4b-fp8.safetensors").name == "flux2-klein"
    assert detect_family(shapes, "flux-2-klein-base-9b.safetensors").name == "flux2-klein-base"
    assert detect_family(read_header(flow_files.path("flux-schnell")).shapes, "flux1-schnell.safetensors"
                         ).name == "flux-schnell"
    dev = _bfl_shapes({"joint_attention_dim": 15360, "num_layers": 1, "num_single_layers": 1, "guidance_embeds": True,
                       "num_attention_heads": 1, "attention_head_dim": 16})
    with pytest.raises(InvalidModelFileError) as caught:
        detect_family(dev, "flux2-dev.safetensors")
    assert "flux2-dev.safetensors" in caught.value.message and "Mistral" in caught.value.message
    assert classify_module_file(flow_files.path("flux2-vae")).info.vae_class == "AutoencoderKLFlux2"


def test_automatic_picks_the_qwen3_of_the_transformers_width(flow_files, tmp_path: Path) -> None:
    def encoder(name: str, width: int) -> ModuleFile:
        return ModuleFile(Path(name), ModuleInfo("qwen3", "model.", "bf16", width=width, layers=36))

    vae = ModuleFile(Path("flux2-vae.safetensors"), ModuleInfo("vae", "", "bf16", latent_channels=32,
                                                               vae_class="AutoencoderKLFlux2"))
    files = [encoder("qwen_3_4b.safetensors", 2560), encoder("qwen_3_8b.safetensors", 4096), vae]
    for width, expected in ((2560, "qwen_3_4b.safetensors"), (4096, "qwen_3_8b.safetensors")):
        chosen = resolve_modules(KLEIN, frozenset(), files, {"qwen3": width}).chosen
        assert [m.name for m in chosen] == ["flux2-vae.safetensors", expected]
    available = flow_files.paths("qwen3-4b", "qwen3-4b-klein", "flux-ae", "flux2-vae")
    picked = choose_modules(KLEIN, flow_files.path("flux2-klein"), [], available)
    assert [path.name for path in picked] == ["flux2-vae.safetensors", "qwen_3_4b_klein.safetensors"]


def test_a_comfyui_prefixed_transformer_loads(flow_files, tmp_path: Path) -> None:
    prefixed = tmp_path / "flux-2-klein-4b-comfy.safetensors"
    safetensors.torch.save_file({f"model.diffusion_model.{k}": v for k, v in
                                 flow_file_content("flux2-klein").tensors.items()}, prefixed)
    loaded = load_checkpoint(prefixed, modules=flow_files.paths("flux2-vae", "qwen3-4b-klein"),
                             config_cache_dir=tmp_path / "cache")
    assert loaded.family.name == "flux2-klein"
    _same(loaded.pipeline.transformer, build_tiny_component("flux2-klein-transformer"), torch.bfloat16)


def test_an_all_in_one_file_loads_as_comfyui_saves_it(flow_files, tmp_path: Path) -> None:
    """`model.diffusion_model.` + `text_encoders.qwen3_4b.transformer.model.` + `vae.` (ComfyUI's checkpoint save)."""
    parts = {"model.diffusion_model.": "flux2-klein", "text_encoders.qwen3_4b.transformer.": "qwen3-4b-klein",
             "vae.": "flux2-vae"}
    aio = tmp_path / "flux-2-klein-4b-aio.safetensors"
    safetensors.torch.save_file({prefix + k: v for prefix, kind in parts.items()
                                 for k, v in flow_file_content(kind).tensors.items()}, aio)
    assert choose_modules(KLEIN, aio, [], flow_files.paths("flux2-vae", "qwen3-4b-klein")) == []
    loaded = load_checkpoint(aio, modules=[], config_cache_dir=tmp_path / "cache")
    assert loaded.family.name == "flux2-klein" and loaded.modules == ()
    _same(loaded.pipeline.text_encoder, build_tiny_component("qwen3-klein"), torch.bfloat16)
    _same(loaded.pipeline.vae, build_tiny_component("flux2-vae"), torch.float32)


def test_a_gguf_transformer_stays_quantized_and_generates(flow_files, tmp_path: Path) -> None:
    loaded = load_checkpoint(flow_files.path("flux2-klein-gguf"), modules=flow_files.paths("flux2-vae", "qwen3-4b-klein"),
                             config_cache_dir=tmp_path / "cache")
    assert loaded.family.name == "flux2-klein"
    assert type(loaded.pipeline.transformer.transformer_blocks[0].attn.to_q).__name__ == "GGUFLinear"
    image = loaded.pipeline(prompt="a cat", height=64, width=96, num_inference_steps=2).images[0]
    assert image.size == (96, 64)


def test_wrong_or_missing_modules_name_the_file_and_the_fix(flow_files, tmp_path: Path) -> None:
    checkpoint = flow_files.path("flux2-klein")
    cache = tmp_path / "cache"
    cases = [(["flux-ae", "qwen3-4b-klein"], "ae.safetensors is an SD / Flux-style VAE with 16 latent channels",
              "flux2-vae.safetensors"),
             (["flux2-vae", "qwen3-4b"], "qwen_3_4b.safetensors gives 8-wide Qwen3 output", "qwen3 file"),
             (["flux2-vae"], "Flux.2 Klein needs a Qwen3 text encoder", "models/text_encoder"),
             (["qwen3-4b-klein"], "Flux.2 Klein needs a VAE", "flux2-vae.safetensors in models/VAE")]
    for kinds, message, fix in cases:
        with pytest.raises(InvalidModelFileError) as caught:
            load_checkpoint(checkpoint, modules=flow_files.paths(*kinds), config_cache_dir=cache)
        assert message in str(caught.value) and fix in str(caught.value), str(caught.value)
    shallow = tmp_path / "qwen_3_shallow.safetensors"  # the right width, too few layers for hidden state 27
    safetensors.torch.save_file({k: v for k, v in flow_file_content("qwen3-4b-klein").tensors.items()
                                 if not k.startswith("model.layers.") or int(k.split(".")[2]) < 2}, shallow)
    with pytest.raises(InvalidModelFileError) as caught:
        load_checkpoint(checkpoint, modules=[flow_files.path("flux2-vae"), shallow], config_cache_dir=cache)
    assert "qwen_3_shallow.safetensors gives a Qwen3 of 2 layers" in caught.value.message
