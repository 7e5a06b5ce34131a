"""The SD single-file loader builds each component on its own (sdweb.models.sd_components); what it builds must be
what diffusers' `Pipeline.from_single_file` builds from the same file and config dir, bit for bit."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import diffusers
import pytest
import safetensors.torch
import torch

from sdweb.models.families import FAMILIES
from sdweb.models.loader import (
    config_files,
    infer_architecture,
    load_checkpoint,
    read_state_dict,
    write_config_dir,
)
from sdweb.models.reading import read_shapes
from sdweb.models.sd_components import _fill
from sdweb.testing.tiny import write_tiny
from sdweb.testing.tiny_configs import CHECKPOINT_KINDS


def _reference(path: Path, family_name: str, config_dir: Path, dtype: torch.dtype, probed: bool,
               cache: Path) -> Any:
    """diffusers' from_single_file, as the loader called it before (the SD2 UNet test loads the UNet alone
    from the config dir without a prediction type)."""
    components = {}
    if probed:
        base = FAMILIES["sd2"]
        probe_dir = write_config_dir(base, config_files(base, infer_architecture(read_shapes(path), base), {}), cache)
        components["unet"] = diffusers.UNet2DConditionModel.from_single_file(
            str(path), config=str(probe_dir), subfolder="unet", local_files_only=True, torch_dtype=dtype)
    pipeline_class = getattr(diffusers, FAMILIES[family_name].load_pipeline)
    return pipeline_class.from_single_file(str(path), config=str(config_dir), local_files_only=True,
                                           torch_dtype=dtype, **components)


def _config(component: Any) -> dict[str, Any]:
    config = component.config
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def assert_same_pipeline(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs)
    assert dict(ours.config) == dict(theirs.config)
    assert list(ours.components) == list(theirs.components)
    for name, mine in ours.components.items():
        other = theirs.components[name]
        assert type(mine) is type(other), name
        if isinstance(mine, torch.nn.Module):
            assert _config(mine) == _config(other), name
            assert mine.training == other.training
            assert getattr(mine, "hf_device_map", None) == getattr(other, "hf_device_map", None), name
            a, b = mine.state_dict(), other.state_dict()
            assert list(a) == list(b), name
            for key in a:
                assert a[key].dtype == b[key].dtype, f"{name}.{key}"
                assert a[key].is_contiguous() == b[key].is_contiguous(), f"{name}.{key}"
                assert torch.equal(a[key], b[key]), f"{name}.{key} differs"
            assert [type(p) for p in mine.parameters()] == [type(p) for p in other.parameters()]
        elif hasattr(mine, "get_vocab"):
            assert mine.get_vocab() == other.get_vocab() and mine.model_max_length == other.model_max_length
            assert mine.pad_token == other.pad_token
        elif mine is not None:
            assert _config(mine) == _config(other), name


def _check(path: Path, cache: Path, dtype: torch.dtype = torch.float32) -> Any:
    loaded = load_checkpoint(path, dtype=dtype, config_cache_dir=cache)
    reference = _reference(path, loaded.family.name, loaded.config_dir, dtype,
                           loaded.prediction_source == "unet test", cache)
    assert_same_pipeline(loaded.pipeline, reference)
    return loaded


@pytest.mark.parametrize("kind", CHECKPOINT_KINDS)
def test_every_tiny_family_loads_as_from_single_file_does(tmp_path: Path, kind: str) -> None:
    loaded = _check(write_tiny(kind, tmp_path / f"{kind}.safetensors"), tmp_path / "configs")
    assert loaded.pipeline.unet.config.in_channels == (9 if "inpaint" in kind else 4)
    if kind == "sd2":
        assert loaded.prediction_source == "unet test"


@pytest.mark.parametrize("kind", ["sd1", "sd2-v", "sdxl"])
def test_fp16_load_and_fp32_file(tmp_path: Path, kind: str) -> None:
    """The tiny files are fp16: load them in fp16 too, and an fp32 copy in fp32 and fp16."""
    path = write_tiny(kind, tmp_path / f"{kind}.safetensors")
    cache = tmp_path / "configs"
    _check(path, cache, torch.float16)
    full = tmp_path / f"{kind}-fp32.safetensors"
    safetensors.torch.save_file({k: v.float() if v.is_floating_point() else v
                                 for k, v in read_state_dict(path).items()}, full)
    _check(full, cache, torch.float32)
    _check(full, cache, torch.float16)


def test_file_with_ema_weights_loads_its_plain_weights(tmp_path: Path) -> None:
    """A training checkpoint also carries `model_ema.*` (flattened names): from_single_file takes the non-EMA
    UNet weights, and so does the loader."""
    path = write_tiny("sd1", tmp_path / "sd1.safetensors")
    tensors = read_state_dict(path)
    prefix = "model.diffusion_model."
    ema = {"model_ema." + key[len(prefix):].replace(".", ""): torch.full_like(value, 0.25)
           for key, value in tensors.items() if key.startswith(prefix)}
    assert len(ema) > 100  # diffusers' own test for an EMA-carrying file
    with_ema = tmp_path / "sd1-ema.safetensors"
    safetensors.torch.save_file(tensors | ema | {"model_ema.decay": torch.tensor(0.9999),
                                                 "model_ema.num_updates": torch.tensor(1000)}, with_ema)
    loaded = _check(with_ema, tmp_path / "configs")
    weight = loaded.pipeline.unet.conv_in.weight
    assert torch.equal(weight, tensors[prefix + "input_blocks.0.0.weight"].float())


def test_ckpt_file(tmp_path: Path) -> None:
    _check(write_tiny("sd1", tmp_path / "sd1.ckpt", fmt="ckpt"), tmp_path / "configs")


def test_fill_lets_each_read_tensor_go_once_the_model_holds_it() -> None:
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    converted = {key: torch.randn(tuple(p.shape), dtype=torch.float16) for key, p in model.state_dict().items()}
    watched = [weakref.ref(tensor) for tensor in converted.values()]
    expected = {key: tensor.float() for key, tensor in converted.items()}
    _fill(model, converted, torch.float32, None, None)
    gc.collect()
    assert converted == {}
    assert all(ref() is None for ref in watched)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in expected.items())
