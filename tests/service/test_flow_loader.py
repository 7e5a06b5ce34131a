"""Flux.1, Chroma, SD 3.5 and diffusers folders: tiny files in the real layouts load offline into their
pipelines with exactly the files' weights, and a plain pipeline call gives an image of the asked size.
Files a user can get wrong are refused with a message naming the file and the fix.

Any socket connect fails the module: loading must never reach the network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch
import transformers

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.loader import LoadedCheckpoint, check_checkpoint, load_checkpoint
from sdweb.testing.tiny import write_tiny
from sdweb.testing.tiny_flow import FILE_KINDS, TinyFlowFiles, build_tiny_component, write_flow_tiny

# kind -> (module kinds, family, pipeline class, module stems reported)
CASES = {
    "flux-dev": ((), "flux-dev", "FluxPipeline", ()),
    "flux-schnell": (("flux-ae", "clip-l", "t5xxl"), "flux-schnell", "FluxPipeline", ("ae", "clip_l", "t5xxl_fp16")),
    "flux-gguf": (("flux-ae", "clip-l", "t5xxl-fp8"), "flux-dev", "FluxPipeline", ("ae", "clip_l", "t5xxl_fp8_e4m3fn")),
    "chroma": (("t5xxl-fp8-scaled", "flux-ae"), "chroma", "ChromaPipeline", ("t5xxl_fp8_e4m3fn_scaled", "ae")),
    "sd35-medium": ((), "sd35-medium", "StableDiffusion3Pipeline", ()),
    "diffusers-sd1": ((), "sd1", "StableDiffusionPipeline", ()),
    "diffusers-flux": ((), "flux-dev", "FluxPipeline", ()),
}


pytestmark = pytest.mark.usefixtures("no_network")  # loading never reaches the network


@pytest.fixture(scope="module")
def loads(flow_files: TinyFlowFiles, tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedCheckpoint]:
    """Each case loaded at most once per module."""
    cache = tmp_path_factory.mktemp("flow-configs")

    class Loads(dict):
        def __missing__(self, kind: str) -> LoadedCheckpoint:
            modules = flow_files.paths(*CASES[kind][0])
            self[kind] = load_checkpoint(flow_files.path(kind), modules=modules, config_cache_dir=cache)
            return self[kind]

    return Loads()


def fp(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """What a weight becomes after being stored in `dtype` and loaded as fp32."""
    return tensor.detach().to(dtype).float()


def assert_same(module: torch.nn.Module, source: torch.nn.Module, dtype: torch.dtype, skip: tuple[str, ...] = ()) -> None:
    loaded, expected = module.state_dict(), source.state_dict()
    assert set(loaded) == set(expected)
    different = [k for k in expected if not k.endswith(skip) and not torch.equal(loaded[k].float(), fp(expected[k], dtype))]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# ------------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("kind", list(CASES))
def test_each_kind_loads_offline_and_makes_an_image_of_the_asked_size(loads, flow_files, kind: str) -> None:
    modules, family, pipeline_class, stems = CASES[kind]
    assert check_checkpoint(flow_files.path(kind)).name == family
    loaded = loads[kind]
    assert loaded.family.name == family
    assert type(loaded.pipeline).__name__ == pipeline_class
    assert loaded.modules == stems
    assert loaded.module_paths == tuple(flow_files.paths(*modules))
    width, height = (64, 64) if family == "sd1" else (64, 48)
    options = {"max_sequence_length": 16} if loaded.family.engine == "flow" else {}
    result = loaded.pipeline(prompt="a red cube", num_inference_steps=2, width=width, height=height,
                             generator=torch.Generator().manual_seed(1), output_type="pil", **options)
    assert result.images[0].size == (width, height)


def test_transformer_only_with_modules_has_exactly_the_files_weights(loads) -> None:
    pipe = loads["flux-schnell"].pipeline
    assert_same(pipe.transformer, build_tiny_component("flux-schnell-transformer"), torch.bfloat16)
    assert_same(pipe.vae, build_tiny_component("flux-vae"), torch.float16)
    assert_same(pipe.text_encoder, build_tiny_component("clip_l"), torch.float16)
    assert_same(pipe.text_encoder_2, build_tiny_component("t5xxl"), torch.float16)
    assert pipe.text_encoder_2.encoder.embed_tokens.weight is pipe.text_encoder_2.shared.weight  # the T5 tie
    assert pipe.transformer.config.guidance_embeds is False
    assert pipe.transformer.config.pooled_projection_dim == 8 and pipe.transformer.config.joint_attention_dim == 24


def test_all_in_one_flux_has_exactly_the_files_weights(loads) -> None:
    pipe = loads["flux-dev"].pipeline
    assert_same(pipe.transformer, build_tiny_component("flux-dev-transformer"), torch.bfloat16)
    assert_same(pipe.vae, build_tiny_component("flux-vae"), torch.float16)
    assert_same(pipe.text_encoder, build_tiny_component("clip_l"), torch.float16)
    assert_same(pipe.text_encoder_2, build_tiny_component("t5xxl"), torch.float16)
    assert pipe.transformer.config.guidance_embeds is True
    assert pipe.vae.config.latent_channels == 16 and pipe.vae.config.shift_factor == 0.1159


def test_sd35_keeps_clip_l_and_clip_g_apart(loads) -> None:
    pipe = loads["sd35-medium"].pipeline
    assert pipe.text_encoder.config.hidden_size == 8 and pipe.text_encoder_2.config.hidden_size == 12
    assert_same(pipe.text_encoder, build_tiny_component("clip_l-projection"), torch.float16)
    assert torch.equal(pipe.text_encoder.text_projection.weight, torch.eye(8))  # SD3 files keep no L projection
    assert_same(pipe.text_encoder_2, build_tiny_component("clip_g"), torch.float16)
    assert_same(pipe.text_encoder_3, build_tiny_component("t5xxl"), torch.float16)
    assert_same(pipe.transformer, build_tiny_component("sd35-medium-transformer"), torch.float16)
    assert_same(pipe.vae, build_tiny_component("sd3-vae"), torch.float16)
    config = pipe.transformer.config
    assert list(config.dual_attention_layers) == [0] and config.qk_norm == "rms_norm"
    assert pipe.vae.config.scaling_factor == 1.5305


def test_gguf_stays_quantized_and_dequantizes_on_the_fly(loads, flow_files) -> None:
    from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter, dequantize_gguf_tensor

    transformer = loads["flux-gguf"].pipeline.transformer
    source = build_tiny_component("flux-dev-transformer").state_dict()
    quantized = {name: m for name, m in transformer.named_modules() if isinstance(m, GGUFLinear)
                 and isinstance(m.weight, GGUFParameter)}
    assert "transformer_blocks.0.attn.to_q" in quantized and "x_embedder" in quantized
    for name, layer in quantized.items():
        expected = source[f"{name}.weight"]
        error = (dequantize_gguf_tensor(layer.weight).float() - expected).abs().max().item()
        assert error <= expected.abs().max().item() / 100, name  # Q8_0: 8 bits per 32-value block
    assert transformer.config.guidance_embeds is True
    text = loads["flux-gguf"].pipeline.text_encoder_2.encoder.block[0].layer[0].SelfAttention.q.weight
    stored = safetensors.torch.load_file(flow_files.path("t5xxl-fp8"))["encoder.block.0.layer.0.SelfAttention.q.weight"]
    assert stored.dtype == torch.float8_e4m3fn and text.dtype == torch.float32
    assert torch.equal(text, stored.float())


def test_fp8_scaled_weights_get_their_scale(loads, flow_files) -> None:
    stored = safetensors.torch.load_file(flow_files.path("t5xxl-fp8-scaled"))
    key = "encoder.block.1.layer.1.DenseReluDense.wo.weight"
    scale = stored[key.removesuffix(".weight") + ".scale_weight"].float()
    assert stored[key].dtype == torch.float8_e4m3fn and scale.item() != 1.0
    loaded = loads["chroma"].pipeline.text_encoder.state_dict()[key]
    assert torch.equal(loaded, stored[key].float() * scale)
    original = build_tiny_component("t5xxl").state_dict()[key]
    assert (loaded - original).abs().max() <= original.abs().max() / 8  # e4m3fn keeps 3 mantissa bits


def test_chroma_has_its_approximator(loads) -> None:
    pipe = loads["chroma"].pipeline
    assert_same(pipe.transformer, build_tiny_component("chroma-transformer"), torch.bfloat16)
    assert pipe.transformer.config.approximator_layers == 1


def test_a_vae_module_replaces_an_sd_checkpoints_vae(tmp_path: Path) -> None:
    checkpoint = write_tiny("sd1", tmp_path / "sd1.safetensors")
    vae = write_tiny("vae", tmp_path / "other.vae.safetensors", seed=7)
    loaded = load_checkpoint(checkpoint, modules=[vae], config_cache_dir=tmp_path / "cache")
    assert loaded.modules == ("other.vae",)
    own = load_checkpoint(checkpoint, config_cache_dir=tmp_path / "cache").pipeline.vae
    assert not torch.equal(loaded.pipeline.vae.decoder.conv_in.weight, own.decoder.conv_in.weight)


# ------------------------------------------------------------------------------------ the factory


def test_factory_files_are_small_and_deterministic(flow_files, tmp_path: Path) -> None:
    for kind in FILE_KINDS:
        assert flow_files.path(kind).stat().st_size < 5_000_000, kind
    again = write_flow_tiny("flux-dev", tmp_path / "again.safetensors")
    assert again.read_bytes() == flow_files.path("flux-dev").read_bytes()


# -------------------------------------------------------------------------------------- mistakes


def refused(path: Path, modules: list[Path], tmp_path: Path) -> InvalidModelFileError:
    with pytest.raises(InvalidModelFileError) as caught:
        load_checkpoint(path, modules=modules, config_cache_dir=tmp_path / "cache")
    return caught.value


def test_a_missing_text_encoder_says_what_and_where(flow_files, tmp_path: Path) -> None:
    error = refused(flow_files.path("flux-schnell"), flow_files.paths("flux-ae", "clip-l"), tmp_path)
    assert error.message == ("Flux.1 schnell needs a T5-XXL text encoder: put t5xxl_fp16.safetensors in "
                             "models/text_encoder.")
    assert error.status_code == 422
    error = refused(flow_files.path("flux-schnell"), [], tmp_path)
    assert error.message == "Flux.1 schnell needs a VAE: put ae.safetensors in models/VAE."


def test_clip_g_where_t5_is_needed_names_the_file_and_the_fix(flow_files, tmp_path: Path) -> None:
    error = refused(flow_files.path("flux-schnell"), flow_files.paths("flux-ae", "clip-l", "clip-g"), tmp_path)
    assert error.code == "module_wrong_kind"
    assert "clip_g.safetensors is a CLIP-G text encoder, which Flux.1 schnell does not use" in error.message
    assert "t5xxl_fp16.safetensors in models/text_encoder" in error.hint


def test_an_sd_vae_for_flux_is_refused(flow_files, tmp_path: Path) -> None:
    sd_vae = write_tiny("vae", tmp_path / "sdxl_vae.safetensors")
    error = refused(flow_files.path("flux-schnell"), [sd_vae, *flow_files.paths("clip-l", "t5xxl")], tmp_path)
    assert "sdxl_vae.safetensors is a VAE with 4 latent channels" in error.message


def test_a_t5_of_another_width_is_named(flow_files, tmp_path: Path) -> None:
    config = transformers.T5Config(vocab_size=32128, d_model=16, d_kv=8, d_ff=20, num_layers=1, num_heads=2,
                                   relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")
    state = transformers.T5EncoderModel(config).state_dict()
    other = tmp_path / "t5xxl_other.safetensors"
    safetensors.torch.save_file({k: v.half() for k, v in state.items() if k != "encoder.embed_tokens.weight"}, other)
    error = refused(flow_files.path("flux-schnell"), [*flow_files.paths("flux-ae", "clip-l"), other], tmp_path)
    assert error.code == "module_mismatch"
    assert "t5xxl_other.safetensors gives 16-wide T5 output" in error.message


@pytest.mark.parametrize("kind", ["flux-gguf", "flux-schnell"])
def test_truncated_checkpoints_are_named(flow_files, tmp_path: Path, kind: str) -> None:
    source = flow_files.path(kind)
    cut = tmp_path / source.name
    cut.write_bytes(source.read_bytes()[: source.stat().st_size - 4096])
    for call in (lambda: check_checkpoint(cut),
                 lambda: load_checkpoint(cut, modules=flow_files.paths("flux-ae", "clip-l", "t5xxl"),
                                         config_cache_dir=tmp_path / "cache")):
        with pytest.raises(InvalidModelFileError) as caught:
            call()
        assert cut.name in str(caught.value) and "damaged" in str(caught.value)


def test_a_truncated_module_is_named(flow_files, tmp_path: Path) -> None:
    source = flow_files.path("t5xxl")
    cut = tmp_path / "t5xxl_fp16.safetensors"
    cut.write_bytes(source.read_bytes()[:-100])
    error = refused(flow_files.path("flux-schnell"), [*flow_files.paths("flux-ae", "clip-l"), cut], tmp_path)
    assert "t5xxl_fp16.safetensors is damaged" in str(error)


def test_check_checkpoint_reads_only_the_header(flow_files, tmp_path: Path) -> None:
    source = flow_files.path("flux-schnell")
    data = bytearray(source.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    data[header_end:] = b"\xff" * (len(data) - header_end)  # every weight NaN: only a data read would notice
    garbage = tmp_path / "flux1-schnell-garbage.safetensors"
    garbage.write_bytes(bytes(data))
    assert check_checkpoint(garbage).name == "flux-schnell"
    assert check_checkpoint(flow_files.path("diffusers-flux")).name == "flux-dev"
    shutil.copytree(flow_files.path("diffusers-sd1"), tmp_path / "sd1-copy")
    assert check_checkpoint(tmp_path / "sd1-copy").name == "sd1"


def test_an_fp8_e5m2_transformer_with_comfyui_prefix_is_upcast(flow_files, tmp_path: Path) -> None:
    """ComfyUI's `diffusion_model.` prefix and fp8 (here e5m2) matrices, as in *_fp8 transformer files."""
    stored = safetensors.torch.load_file(flow_files.path("flux-schnell"))
    fp8 = {f"diffusion_model.{k}": (v.to(torch.float8_e5m2) if v.ndim == 2 else v) for k, v in stored.items()}
    path = tmp_path / "flux1-schnell-fp8_e5m2.safetensors"
    safetensors.torch.save_file(fp8, path)
    loaded = load_checkpoint(path, modules=flow_files.paths("flux-ae", "clip-l", "t5xxl"),
                             config_cache_dir=tmp_path / "cache")
    assert loaded.family.name == "flux-schnell"
    weight = loaded.pipeline.transformer.transformer_blocks[0].attn.to_out[0].weight
    assert weight.dtype == torch.float32
    assert torch.equal(weight, fp8["diffusion_model.double_blocks.0.img_attn.proj.weight"].float())
