"""Out of memory: one retry in a lower-memory mode; VAE NaNs: fp32 retry (A1111's auto_vae_precision)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sdweb.cli import parse_options
from sdweb.core.errors import UserError
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.generation.vae_decode import VAE_UPCAST_NOTE
from sdweb.runtime.memory import oom_fallback_modes, oom_in_vae
from sdweb.runtime.policy import GIB, CudaDevice, HardwareInfo, plan_runtime
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 11}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny-sd1.safetensors", seed=1)
    app_state = build_app_state(parse_options(["--data-dir", str(data)], {}))
    yield app_state
    app_state.queue.shutdown()


def _run(state, **overrides):
    result = state.service.txt2img(Txt2ImgRequest(prompt="a cat", override_settings=overrides, **SMALL), None,
                                   NO_SAVE)
    return np.asarray(result.images[0], dtype=np.int16), result


@pytest.fixture(scope="module")
def base(state):
    return _run(state)[0]


class _FailingDecoder:
    """A forward pre-hook on the VAE decoder that raises a CUDA-style OOM the first `times` calls."""

    def __init__(self, times: int) -> None:
        self.left = times

    def __call__(self, module, inputs):
        if self.left > 0:
            self.left -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")


def test_oom_in_the_vae_is_retried_once_with_vae_tiling(state, base):
    vae = state.manager.get(None).base_pipeline.vae
    handle = vae.decoder.register_forward_pre_hook(_FailingDecoder(1))
    try:
        image, result = _run(state)
    finally:
        handle.remove()
    assert np.array_equal(image, base)  # 64 px is below the tile size: tiling changes nothing here
    assert "Out of memory: this batch was run again with VAE tiling." in result.notes
    assert not vae.use_tiling  # for the retry only


def test_oom_again_after_the_retry_is_a_clear_error_and_the_next_job_runs(state, base):
    vae = state.manager.get(None).base_pipeline.vae
    handle = vae.decoder.register_forward_pre_hook(_FailingDecoder(2))
    try:
        with pytest.raises(UserError, match="also with VAE tiling") as error:
            _run(state)
    finally:
        handle.remove()
    assert error.value.code == "out_of_memory" and "--medvram" in error.value.hint
    assert np.array_equal(_run(state)[0], base)


def test_oom_is_located_by_its_traceback():
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4, layers_per_block=1)
    vae.decoder.register_forward_pre_hook(_FailingDecoder(1))
    with pytest.raises(torch.OutOfMemoryError) as error:
        vae.decode(torch.zeros(1, 4, 4, 4))
    assert oom_in_vae(error.value)
    assert not oom_in_vae(torch.OutOfMemoryError("raised here"))


def _plan(flags: list[str]):
    gpu = CudaDevice(name="Test GPU", total_memory_bytes=24 * GIB, capability=(8, 6), supports_bf16=True)
    return plan_runtime(parse_options(flags, {}), HardwareInfo(cuda_devices=(gpu,)))


@pytest.mark.parametrize(("flags", "in_vae", "tiling_on", "expected"), [
    ([], True, False, ("vae_tiling",)),
    ([], True, True, ()),
    ([], False, False, ("vae_tiling", "model_offload")),
    ([], False, True, ("model_offload",)),
    (["--medvram"], False, False, ()),  # already offloading: nothing lower that helps the UNet
    (["--medvram"], True, False, ("vae_tiling",)),
    (["--use-cpu", "all"], False, False, ()),
    (["--use-cpu", "all"], True, False, ("vae_tiling",)),
])
def test_fallback_modes(flags, in_vae, tiling_on, expected):
    assert oom_fallback_modes(_plan(flags), is_sdxl=False, in_vae=in_vae, vae_tiling_on=tiling_on) == expected


def _nan_in_low_precision(module, inputs, output):
    return torch.full_like(output, float("nan")) if output.dtype != torch.float32 else output


def test_vae_nan_is_retried_in_fp32_and_the_vae_stays_fp32(state, base):
    model = state.manager.get(None)
    vae = model.base_pipeline.vae
    vae.to(torch.float16)  # lossless: the weights came from an fp16 file
    handle = vae.decoder.register_forward_hook(_nan_in_low_precision)
    try:
        image, result = _run(state)
    finally:
        handle.remove()
    assert VAE_UPCAST_NOTE in result.notes
    assert vae.dtype == torch.float32 and model.vae_upcast
    assert np.array_equal(image, base)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # the NaN image
def test_vae_nan_without_auto_precision_or_in_fp32_is_a_clear_error(state, base):
    vae = state.manager.get(None).base_pipeline.vae
    handle = vae.decoder.register_forward_hook(lambda module, inputs, output: torch.full_like(output, float("nan")))
    try:
        with pytest.raises(UserError, match="NaNs was produced in VAE") as error:
            _run(state)  # already fp32: nothing to retry with
        assert "--no-half-vae" in error.value.hint
        vae.to(torch.float16)  # lossless: the weights came from an fp16 file
        with pytest.raises(UserError, match="NaNs was produced in VAE"):
            _run(state, auto_vae_precision=False)
        assert vae.dtype == torch.float16
        service_plan = state.service.plan
        state.service.plan = dataclasses.replace(service_plan, nan_check=False)  # --disable-nan-check
        try:
            image, result = _run(state)
        finally:
            state.service.plan = service_plan
        assert not result.notes and image.max() == 0  # NaNs decode to a black image, as in A1111
    finally:
        handle.remove()
        vae.to(torch.float32)
    assert np.array_equal(_run(state)[0], base)
