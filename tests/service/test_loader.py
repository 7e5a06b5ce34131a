"""Single-file checkpoint loading: tiny files in the real formats, offline, and files that must be refused.

Any socket connect fails the module: loading must never reach the network.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import struct
import sys
import types
from pathlib import Path
from typing import Any

import numpy
import pytest
import safetensors.torch
import torch
from transformers import CLIPTokenizer

import sdweb.models
from sdweb.core.errors import InvalidModelFileError
from sdweb.models.families import FAMILIES
from sdweb.models.ldm_convert import pipeline_to_ldm
from sdweb.models.loader import (
    LoadedCheckpoint,
    config_files,
    load_checkpoint,
    load_single_file,
    read_metadata,
    read_shapes,
    read_state_dict,
    write_config_dir,
)
from sdweb.testing.tiny import write_tiny

KINDS = ("sd1", "sd1-inpaint", "sd2-v", "sdxl")
PIPELINES = {
    "sd1": "StableDiffusionPipeline",
    "sd1-inpaint": "StableDiffusionInpaintPipeline",
    "sd2-v": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
}
PROMPT_IDS = [49406, 320, 1125, 539, 320, 2368, 267, 263, 12066, 281, 272, 269, 273, 264, 49407]
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 2132625894\n"
V_YAML = 'model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    parameterization: "v"\n'


pytestmark = pytest.mark.usefixtures("no_network")  # loading never reaches the network


class Workspace:
    """Tiny files written once per module, loaded at most once each."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "config-cache"
        self.checkpoints = root / "models" / "Stable-diffusion"
        self._files: dict[str, Path] = {}
        self._loaded: dict[str, LoadedCheckpoint] = {}

    def file(self, kind: str) -> Path:
        if kind not in self._files:
            path = write_tiny(kind, self.checkpoints / f"tiny-{kind}.safetensors")
            if kind == "sd2-v":  # the A1111 habit: 768-v-ema.yaml copied beside the checkpoint
                path.with_suffix(".yaml").write_text(V_YAML)
            self._files[kind] = path
        return self._files[kind]

    def loaded(self, kind: str) -> LoadedCheckpoint:
        if kind not in self._loaded:
            self._loaded[kind] = load_checkpoint(self.file(kind), config_cache_dir=self.cache)
        return self._loaded[kind]

    def variant(self, kind: str, name: str, extra: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
        """A copy of a tiny file with extra tensors and metadata."""
        tensors = read_state_dict(self.file(kind)) | extra
        path = self.checkpoints / name
        safetensors.torch.save_file(tensors, path, metadata=metadata or None)
        return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("loader"))


def assert_weights_equal_file(loaded: LoadedCheckpoint, path: Path) -> None:
    in_file = read_state_dict(path)
    in_pipeline = pipeline_to_ldm(loaded.pipeline, loaded.family.name)
    assert sorted(in_pipeline) == sorted(k for k in in_file if k not in ("v_pred", "ztsnr"))
    different = [k for k, t in in_pipeline.items() if not torch.equal(t.to(in_file[k].dtype), in_file[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# ------------------------------------------------------------------------------------- tiny files


def test_network_guard_is_active() -> None:
    with pytest.raises(OSError, match="network access attempted"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_checkpoints_load_with_family_and_prediction(workspace: Workspace, kind: str) -> None:
    loaded = workspace.loaded(kind)
    assert loaded.family.name == kind
    assert type(loaded.pipeline).__name__ == PIPELINES[kind]
    expected = "v_prediction" if kind == "sd2-v" else "epsilon"
    assert loaded.prediction_type == expected
    assert loaded.pipeline.scheduler.config.prediction_type == expected
    assert loaded.prediction_source == ("yaml" if kind == "sd2-v" else "family default")
    assert_weights_equal_file(loaded, workspace.file(kind))


def test_loaded_pipeline_has_the_inferred_architecture(workspace: Workspace) -> None:
    sdxl = workspace.loaded("sdxl").pipeline
    assert list(sdxl.unet.config.block_out_channels) == [32, 32, 64]
    assert sdxl.unet.config.addition_time_embed_dim == 8
    assert sdxl.unet.config.norm_num_groups == 8
    assert sdxl.text_encoder_2.config.num_hidden_layers == 10
    assert sdxl.vae.config.scaling_factor == 0.13025 and sdxl.vae.config.force_upcast
    sd2 = workspace.loaded("sd2-v").pipeline
    assert sd2.text_encoder.config.num_hidden_layers == 4  # the file's fifth resblock is never run
    assert sd2.unet.config.sample_size == 96  # the 768-v template


def test_load_single_file_returns_the_pipeline(workspace: Workspace) -> None:
    pipe = load_single_file(workspace.file("sd1"), config_cache_dir=workspace.cache)
    assert type(pipe).__name__ == "StableDiffusionPipeline"


def test_config_dir_is_cached_by_content(workspace: Workspace) -> None:
    first = workspace.loaded("sd1").config_dir
    again = load_checkpoint(workspace.file("sd1"), config_cache_dir=workspace.cache)
    assert again.config_dir == first
    assert first.parent == workspace.cache and first.name.startswith("sd1-")
    assert workspace.loaded("sd1-inpaint").config_dir != first
    index = json.loads((first / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False


def test_bundled_tokenizer_gives_the_real_ids(workspace: Workspace) -> None:
    family = FAMILIES["sdxl"]
    config_dir = write_config_dir(family, config_files(family, {}, {}), workspace.cache)
    for folder in ("tokenizer", "tokenizer_2"):
        tokenizer = CLIPTokenizer.from_pretrained(str(config_dir / folder), local_files_only=True)
        assert tokenizer("a photo of a cat, (masterpiece:1.2)").input_ids == PROMPT_IDS
        assert tokenizer.model_max_length == 77
    assert (
        workspace.loaded("sd1").pipeline.tokenizer("a photo of a cat, (masterpiece:1.2)").input_ids
        == PROMPT_IDS
    )


def test_bundled_configs_are_small() -> None:
    configs = Path(sdweb.models.__file__).parent / "configs"
    for path in configs.rglob("*.json"):
        if not path.parent.name.endswith("_tokenizer"):  # the bundled tokenizers (CLIP, T5, Qwen)
            assert path.stat().st_size < 4096, path


# ------------------------------------------------------------------------------------ prediction


def test_explicit_prediction_type_wins_over_the_yaml(workspace: Workspace) -> None:
    loaded = load_checkpoint(
        workspace.file("sd2-v"), prediction_type="epsilon", config_cache_dir=workspace.cache
    )
    assert (loaded.family.name, loaded.prediction_type, loaded.prediction_source) == (
        "sd2",
        "epsilon",
        "argument",
    )
    assert loaded.pipeline.scheduler.config.prediction_type == "epsilon"


def test_modelspec_metadata_declares_v_prediction(workspace: Workspace) -> None:
    path = workspace.variant("sd2-v", "kohya-v.safetensors", {}, {"modelspec.prediction_type": "v"})
    loaded = load_checkpoint(path, config_cache_dir=workspace.cache)
    assert (loaded.family.name, loaded.prediction_type, loaded.prediction_source) == (
        "sd2-v",
        "v_prediction",
        "metadata",
    )
    assert read_metadata(path) == {"modelspec.prediction_type": "v"}


def test_sd2_without_hints_runs_the_unet_test(workspace: Workspace) -> None:
    path = workspace.variant("sd2-v", "no-hints.safetensors", {}, {})
    loaded = load_checkpoint(path, config_cache_dir=workspace.cache)
    # Random tiny weights do not predict v; a real 768-v file does.
    assert (loaded.family.name, loaded.prediction_type, loaded.prediction_source) == (
        "sd2",
        "epsilon",
        "unet test",
    )
    assert_weights_equal_file(loaded, path)


def test_v_pred_and_ztsnr_keys(workspace: Workspace) -> None:
    markers = {"v_pred": torch.tensor([]), "ztsnr": torch.tensor([])}
    path = workspace.variant("sdxl", "noob-vpred.safetensors", markers, {})
    loaded = load_checkpoint(path, config_cache_dir=workspace.cache)
    config = loaded.pipeline.scheduler.config
    assert (loaded.prediction_type, loaded.prediction_source) == ("v_prediction", "file key")
    assert config.prediction_type == "v_prediction"
    assert config.rescale_betas_zero_snr is True and config.timestep_spacing == "trailing"


# ------------------------------------------------------------------------------------------- .ckpt


def test_ckpt_loads_safely_with_the_same_weights(workspace: Workspace) -> None:
    path = write_tiny("sd1", workspace.checkpoints / "tiny-sd1.ckpt", fmt="ckpt")
    assert read_shapes(path) == read_shapes(workspace.file("sd1"))
    loaded = load_checkpoint(path, config_cache_dir=workspace.cache)
    assert loaded.family.name == "sd1"
    assert_weights_equal_file(loaded, path)


def _save_with_fake_lightning(path: Path, obj_factory: Any) -> None:
    """torch.save an object naming pytorch_lightning's ModelCheckpoint, as old SD .ckpt files do."""
    module_name = "pytorch_lightning.callbacks.model_checkpoint"
    module = types.ModuleType(module_name)
    model_checkpoint = type("ModelCheckpoint", (), {"__module__": module_name})
    module.ModelCheckpoint = model_checkpoint
    names = ("pytorch_lightning", "pytorch_lightning.callbacks", module_name)
    with pytest.MonkeyPatch.context() as patch:
        for name in names:
            patch.setitem(sys.modules, name, module)
        torch.save(obj_factory(model_checkpoint), path)


def test_lightning_era_ckpt_with_numpy_and_callbacks_loads(workspace: Workspace) -> None:
    state_dict = read_state_dict(workspace.file("sd1"))
    path = workspace.checkpoints / "sd-v1-4-style.ckpt"
    _save_with_fake_lightning(
        path,
        lambda callback: {
            "state_dict": state_dict,
            "global_step": 470000,
            "callbacks": {
                callback: {"best_model_score": numpy.float64(0.5), "dtype": numpy.dtype("float32")}
            },
        },
    )
    loaded = load_checkpoint(path, config_cache_dir=workspace.cache)
    assert loaded.family.name == "sd1"


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _OpensFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("payload", [_RunsCommand, _OpensFile])
def test_pickle_that_runs_code_is_refused(workspace: Workspace, tmp_path: Path, payload: type) -> None:
    marker = tmp_path / "pwned"
    path = workspace.checkpoints / f"evil-{payload.__name__}.ckpt"
    torch.save({"state_dict": read_state_dict(workspace.file("sd1")), "x": payload(marker)}, path)
    for attempt in (
        read_shapes,
        read_state_dict,
        lambda p: load_checkpoint(p, config_cache_dir=workspace.cache),
    ):
        with pytest.raises(InvalidModelFileError, match=f"{path.name} contains code or objects") as caught:
            attempt(path)
        assert "--disable-safe-unpickle" in str(caught.value)
    assert not marker.exists()


def test_trusted_pickle_loads_when_unsafe_unpickling_is_allowed(workspace: Workspace) -> None:
    path = workspace.checkpoints / "odd-but-trusted.ckpt"
    torch.save(
        {"state_dict": read_state_dict(workspace.file("sd1")), "when": datetime.date(2022, 8, 22)}, path
    )
    with pytest.raises(InvalidModelFileError, match="safe loading refuses"):
        load_checkpoint(path, config_cache_dir=workspace.cache)
    loaded = load_checkpoint(path, config_cache_dir=workspace.cache, allow_unsafe_pickle=True)
    assert loaded.family.name == "sd1"
    assert not list((workspace.cache / "tmp").glob("*.safetensors"))  # the converted copy is gone


# ------------------------------------------------------------------------------------- bad files


def _header_file(
    path: Path, header: dict[str, Any], declared_len: int | None = None, data: bytes = b""
) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if declared_len is None else declared_len) + raw + data)
    return path


BAD_FILES = {
    "zero-byte.safetensors": ("0 bytes", lambda ws, p: p.write_bytes(b"")),
    "truncated.safetensors": (
        "truncated",
        lambda ws, p: p.write_bytes(ws.file("sd1").read_bytes()[:200_000]),
    ),
    "huge-header.safetensors": (
        "header claims 1000000000000 bytes",
        lambda ws, p: _header_file(p, {}, 10**12),
    ),
    "huge-tensor.safetensors": (
        "outside the file",
        lambda ws, p: _header_file(
            p, {"w": {"dtype": "F32", "shape": [250_000, 1_000_000], "data_offsets": [0, 10**12]}}
        ),
    ),
    "wrong-size.safetensors": (
        "has 4 bytes for shape",
        lambda ws, p: _header_file(
            p, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, data=b"1234"
        ),
    ),
    "not-json.safetensors": (
        "not valid JSON",
        lambda ws, p: p.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{x"),
    ),
    "header-only.safetensors": (
        "contains no tensors",
        lambda ws, p: _header_file(p, {"__metadata__": {"a": "b"}}),
    ),
    "truncated.ckpt": ("damaged", lambda ws, p: p.write_bytes(b"PK\x03\x04" + b"\0" * 100)),
    "lfs-pointer.ckpt": ("Git LFS pointer", lambda ws, p: p.write_bytes(LFS_POINTER)),
    "lfs-pointer.safetensors": ("Git LFS pointer", lambda ws, p: p.write_bytes(LFS_POINTER)),
    "my-lora.safetensors": ("looks like a LoRA: put it in models/Lora", lambda ws, p: write_tiny("lora", p)),
    "my-vae.safetensors": ("looks like a VAE: put it in models/VAE", lambda ws, p: write_tiny("vae", p)),
    "embedding.pt": ("put it in embeddings/", lambda ws, p: write_tiny("embedding", p, fmt="ckpt")),
    "notes.gguf": ("damaged or not a model file", lambda ws, p: p.write_bytes(b"GGUF")),
    "notes.onnx": ("unsupported model file type", lambda ws, p: p.write_bytes(b"onnx")),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_are_named_never_a_crash(workspace: Workspace, name: str) -> None:
    expected, make = BAD_FILES[name]
    path = workspace.checkpoints / name
    make(workspace, path)
    with pytest.raises(InvalidModelFileError) as caught:
        load_checkpoint(path, config_cache_dir=workspace.cache)
    message = str(caught.value)
    assert name in message and expected in message, message
    assert path.exists()  # never deleted or moved because of an error


def test_missing_file(workspace: Workspace) -> None:
    with pytest.raises(InvalidModelFileError, match="gone.safetensors does not exist"):
        load_checkpoint(workspace.checkpoints / "gone.safetensors", config_cache_dir=workspace.cache)
