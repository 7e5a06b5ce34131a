"""The tiny random-weight models, written in the real file formats and read back by the real loaders.

Everything runs offline: HF_HUB_OFFLINE is set and any socket connect fails the test.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import hashlib
import json
import socket
from pathlib import Path

import diffusers
import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from sdweb.postprocess.spandrel_import import import_spandrel
from sdweb.testing.tiny import (
    DEMO_FILE_NAME,
    DEMO_SEED,
    LORA_UNET_TARGETS,
    TINY_KINDS,
    TinyFile,
    build_tiny_controlnet,
    build_tiny_pipeline,
    checkpoint_content,
    ensure_demo_checkpoint,
    main,
    save_tiny_file,
    tiny_config_dir,
    write_tiny,
)
from sdweb.testing.tiny_configs import CHECKPOINT_KINDS, tiny_spec

SEED = DEMO_SEED  # so the SD1 file written here must equal the demo checkpoint byte for byte
GENERATION_KINDS = ("sd1", "sd1-inpaint", "sd2-v", "sdxl")


pytestmark = pytest.mark.usefixtures("no_network")  # loading never reaches the network


class Workspace:
    """Builds, writes and loads each tiny checkpoint kind once for the whole module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._references: dict[str, diffusers.DiffusionPipeline] = {}
        self._files: dict[str, Path] = {}
        self._loaded: dict[str, diffusers.DiffusionPipeline] = {}

    def reference(self, kind: str) -> diffusers.DiffusionPipeline:
        if kind not in self._references:
            self._references[kind] = build_tiny_pipeline(kind, seed=SEED)
        return self._references[kind]

    def checkpoint(self, kind: str) -> Path:
        if kind not in self._files:
            content = checkpoint_content(self.reference(kind), kind, SEED)
            self._files[kind] = save_tiny_file(content, self.root / f"tiny-{kind}.safetensors")
        return self._files[kind]

    def config(self, kind: str) -> Path:
        return tiny_config_dir(kind, self.root / f"config-{kind}")

    def loaded(self, kind: str) -> diffusers.DiffusionPipeline:
        if kind not in self._loaded:
            pipeline_class = getattr(diffusers, tiny_spec(kind).pipeline_class)
            pipe = pipeline_class.from_single_file(
                str(self.checkpoint(kind)),
                config=str(self.config(kind)),
                local_files_only=True,
                torch_dtype=torch.float32,
            )
            pipe.set_progress_bar_config(disable=True)
            self._loaded[kind] = pipe
        return self._loaded[kind]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("tiny"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_module_equal_fp16(reference: torch.nn.Module, loaded: torch.nn.Module) -> None:
    expected, actual = reference.state_dict(), loaded.state_dict()
    assert sorted(actual) == sorted(expected), "missing or unexpected keys"
    mismatched = [key for key in expected if not torch.equal(expected[key].half(), actual[key].half())]
    assert not mismatched, f"{len(mismatched)} tensors differ, e.g. {mismatched[:3]}"


def _generate(pipe: diffusers.DiffusionPipeline, prompt: str = "a photo of a cat") -> np.ndarray:
    extra = {}
    if "Inpaint" in type(pipe).__name__:
        mask = np.zeros((64, 64), dtype=np.uint8)
        mask[16:48, 16:48] = 255
        extra = {"image": Image.new("RGB", (64, 64), (120, 90, 60)), "mask_image": Image.fromarray(mask)}
    result = pipe(
        prompt,
        height=64,
        width=64,
        num_inference_steps=2,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(7),
        output_type="np",
        **extra,
    )
    return result.images[0]


def test_network_guard_is_active() -> None:
    with pytest.raises(OSError, match="network access attempted"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_checkpoint_loads_back_exactly(workspace: Workspace, kind: str) -> None:
    reference, loaded = workspace.reference(kind), workspace.loaded(kind)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        expected = getattr(reference, name, None)
        if expected is None:
            assert getattr(loaded, name, None) is None, name
            continue
        _assert_module_equal_fp16(expected, getattr(loaded, name))


@pytest.mark.parametrize("kind", GENERATION_KINDS)
def test_generation_runs(workspace: Workspace, kind: str) -> None:
    pipe = workspace.loaded(kind)
    expected_prediction = "v_prediction" if kind == "sd2-v" else "epsilon"
    assert pipe.scheduler.config.prediction_type == expected_prediction
    image = _generate(pipe)
    assert image.shape == (64, 64, 3)
    assert np.isfinite(image).all()


def test_checkpoint_file_layout(workspace: Workspace) -> None:
    sdxl = safetensors.torch.load_file(workspace.checkpoint("sdxl"))
    assert all(tensor.dtype == torch.float16 for tensor in sdxl.values())
    assert "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias" in sdxl
    assert "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight" in sdxl
    assert sdxl["conditioner.embedders.1.model.token_embedding.weight"].shape == (49408, 64)
    sd2 = safetensors.torch.load_file(workspace.checkpoint("sd2-v"))
    # SD2 files hold one OpenCLIP layer more than diffusers runs.
    assert "cond_stage_model.model.transformer.resblocks.4.ln_1.weight" in sd2
    sd1_inpaint = safetensors.torch.load_file(workspace.checkpoint("sd1-inpaint"))
    assert sd1_inpaint["model.diffusion_model.input_blocks.0.0.weight"].shape[1] == 9


def test_config_dir_layout(workspace: Workspace) -> None:
    config = workspace.config("sd1")
    index = json.loads((config / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False
    tokenizer = workspace.loaded("sd1").tokenizer
    ids = tokenizer("a photo of a cat, (masterpiece:1.2)").input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 267, 263, 12066, 281, 272, 269, 273, 264, 49407]
    assert tokenizer.model_max_length == 77


def test_ckpt_format_holds_the_same_state_dict(workspace: Workspace, tmp_path: Path) -> None:
    content = checkpoint_content(workspace.reference("sd1"), "sd1", SEED)
    path = save_tiny_file(content, tmp_path / "tiny.ckpt", "ckpt")
    assert _sha256(save_tiny_file(content, tmp_path / "again.ckpt", "ckpt")) == _sha256(path)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    from_safetensors = safetensors.torch.load_file(workspace.checkpoint("sd1"))
    assert sorted(state_dict) == sorted(from_safetensors)
    assert all(torch.equal(state_dict[key], tensor) for key, tensor in from_safetensors.items())
    pipe = diffusers.StableDiffusionPipeline.from_single_file(
        str(path), config=str(workspace.config("sd1")), local_files_only=True
    )
    _assert_module_equal_fp16(workspace.reference("sd1").unet, pipe.unet)


def test_same_seed_gives_the_same_bytes(workspace: Workspace, tmp_path: Path) -> None:
    demo = ensure_demo_checkpoint(tmp_path / "cache")
    assert demo.name == DEMO_FILE_NAME
    # Built independently of the workspace's pipeline, from the same seed.
    assert _sha256(demo) == _sha256(workspace.checkpoint("sd1"))
    written_at = demo.stat().st_mtime_ns
    assert ensure_demo_checkpoint(tmp_path / "cache") == demo
    assert demo.stat().st_mtime_ns == written_at
    first = write_tiny("vae", tmp_path / "a.safetensors", seed=SEED)
    second = write_tiny("vae", tmp_path / "b.safetensors", seed=SEED)
    other = write_tiny("vae", tmp_path / "c.safetensors", seed=SEED + 1)
    assert _sha256(first) == _sha256(second) != _sha256(other)


def test_safetensors_bytes_do_not_depend_on_metadata_order(tmp_path: Path) -> None:
    tensors = {"b": torch.ones(3), "a": torch.zeros(2, dtype=torch.float16)}
    metadata = {f"ss_key_{index}": str(index) for index in range(20)}
    first = save_tiny_file(TinyFile(tensors, metadata, tensors), tmp_path / "first.safetensors")
    reordered = dict(reversed(list(metadata.items())))
    second = save_tiny_file(TinyFile(tensors, reordered, tensors), tmp_path / "second.safetensors")
    assert _sha256(first) == _sha256(second)
    with safetensors.safe_open(str(first), "pt") as handle:
        assert handle.metadata() == metadata and torch.equal(handle.get_tensor("b"), torch.ones(3))


def test_standalone_vae_matches_the_sd1_vae(workspace: Workspace, tmp_path: Path) -> None:
    path = write_tiny("vae", tmp_path / "vae-ft-tiny.safetensors", seed=SEED)
    vae_file = safetensors.torch.load_file(path)
    checkpoint = safetensors.torch.load_file(workspace.checkpoint("sd1"))
    from_checkpoint = {
        key.removeprefix("first_stage_model."): tensor
        for key, tensor in checkpoint.items()
        if key.startswith("first_stage_model.")
    }
    assert sorted(vae_file) == sorted(from_checkpoint)
    assert all(torch.equal(vae_file[key], tensor) for key, tensor in from_checkpoint.items())
    for config, subfolder in (
        (workspace.config("sd1"), "vae"),
        (tiny_config_dir("vae", tmp_path / "vae-config"), None),
    ):
        vae = diffusers.AutoencoderKL.from_single_file(
            str(path), config=str(config), subfolder=subfolder, local_files_only=True
        )
        _assert_module_equal_fp16(workspace.reference("sd1").vae, vae)


def _lora_layer_count(module: torch.nn.Module) -> int:
    from peft.tuners.lora import LoraLayer

    return sum(isinstance(child, LoraLayer) for child in module.modules())


def test_kohya_lora_loads_into_unet_and_text_encoder(workspace: Workspace, tmp_path: Path) -> None:
    path = write_tiny("lora", tmp_path / "tiny-lora.safetensors", seed=SEED)
    with safetensors.safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
        keys = set(handle.keys())
    assert metadata["ss_output_name"] == "tiny-lora" and metadata["ss_network_dim"] == "4"
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in keys
    assert "lora_unet_up_blocks_1_attentions_0_proj_in.alpha" in keys
    pipe = workspace.loaded("sd1")
    base = _generate(pipe)
    pipe.load_lora_weights(str(tmp_path), weight_name=path.name, adapter_name="tiny")
    try:
        assert _lora_layer_count(pipe.unet) == len(LORA_UNET_TARGETS)
        assert _lora_layer_count(pipe.text_encoder) == 6 * pipe.text_encoder.config.num_hidden_layers
        assert np.abs(_generate(pipe) - base).max() > 1e-3
    finally:
        pipe.unload_lora_weights()
    assert np.allclose(_generate(pipe), base, atol=1e-4)


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
def test_embedding_loads_as_textual_inversion(workspace: Workspace, tmp_path: Path, fmt: str) -> None:
    path = write_tiny("embedding", tmp_path / f"tiny-emb.{'pt' if fmt == 'ckpt' else 'safetensors'}", fmt=fmt)
    if fmt == "ckpt":
        vectors = torch.load(path, weights_only=True)["string_to_param"]["*"]
    else:
        vectors = safetensors.torch.load_file(path)["emb_params"]
    pipe = workspace.loaded("sd1")
    assert vectors.shape == (2, pipe.text_encoder.config.hidden_size)
    pipe.load_textual_inversion(str(path), token="tiny-emb")
    try:
        ids = pipe.tokenizer.convert_tokens_to_ids(["tiny-emb", "tiny-emb_1"])
        assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[ids], vectors)
        assert np.isfinite(_generate(pipe, "a tiny-emb cat")).all()
    finally:
        pipe.unload_textual_inversion()


def test_sdxl_embedding_has_one_part_per_encoder(workspace: Workspace, tmp_path: Path) -> None:
    parts = safetensors.torch.load_file(write_tiny("embedding-sdxl", tmp_path / "tiny-xl.safetensors"))
    pipe = workspace.loaded("sdxl")
    encoders = {
        "clip_l": (pipe.text_encoder, pipe.tokenizer),
        "clip_g": (pipe.text_encoder_2, pipe.tokenizer_2),
    }
    for part, (encoder, tokenizer) in encoders.items():
        assert parts[part].shape == (2, encoder.config.hidden_size)
        pipe.load_textual_inversion(parts[part], token="tiny-xl", text_encoder=encoder, tokenizer=tokenizer)
        try:
            ids = tokenizer.convert_tokens_to_ids(["tiny-xl", "tiny-xl_1"])
            assert torch.equal(encoder.get_input_embeddings().weight[ids], parts[part])
        finally:
            pipe.unload_textual_inversion(
                tokens=["tiny-xl", "tiny-xl_1"], text_encoder=encoder, tokenizer=tokenizer
            )


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
def test_esrgan_loads_with_spandrel_as_x4(tmp_path: Path, fmt: str) -> None:
    spandrel = import_spandrel()
    path = write_tiny("esrgan", tmp_path / f"4x-tiny.{'pth' if fmt == 'ckpt' else 'safetensors'}", fmt=fmt)
    model = spandrel.ModelLoader().load_from_file(str(path))
    assert (model.architecture.id, model.scale, model.input_channels) == ("ESRGAN", 4, 3)
    with torch.no_grad():
        upscaled = model(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert upscaled.shape == (1, 3, 64, 64) and torch.isfinite(upscaled).all()


def test_controlnet_loads_and_runs(workspace: Workspace, tmp_path: Path) -> None:
    path = write_tiny("controlnet", tmp_path / "control_tiny_sd15.safetensors", seed=SEED)
    assert "control_model.input_hint_block.0.weight" in safetensors.torch.load_file(path)
    controlnet = diffusers.ControlNetModel.from_single_file(
        str(path), config=str(tiny_config_dir("controlnet", tmp_path / "cn-config")), local_files_only=True
    )
    _assert_module_equal_fp16(build_tiny_controlnet(SEED), controlnet)
    sd1 = workspace.loaded("sd1")
    pipe = diffusers.StableDiffusionControlNetPipeline(
        vae=sd1.vae,
        text_encoder=sd1.text_encoder,
        tokenizer=sd1.tokenizer,
        unet=sd1.unet,
        scheduler=sd1.scheduler,
        controlnet=controlnet.float(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    hint = Image.new("RGB", (64, 64), (255, 255, 255))
    image = pipe("a cat", image=hint, height=64, width=64, num_inference_steps=2, output_type="np").images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()


def test_cli_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "emb.pt"
    assert main(["embedding", str(out), "--format", "ckpt", "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert torch.load(out, weights_only=True)["name"] == "tiny-embedding"


def test_unknown_kind_and_format_are_refused(tmp_path: Path) -> None:
    assert "controlnet" in TINY_KINDS
    with pytest.raises(ValueError, match="unknown tiny kind"):
        write_tiny("sd3", tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="unknown format"):
        write_tiny("vae", tmp_path / "x.bin", fmt="bin")
