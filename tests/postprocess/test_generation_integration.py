"""The generation service with postprocessing: model upscalers in the hires fix, and restore_faces."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdweb.cli import parse_options
from sdweb.core.errors import NotFoundError, UserError
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.state import build_app_state
from sdweb.testing import tiny_postprocess as tiny
from sdweb.testing.tiny import write_tiny

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 3}


@pytest.fixture(scope="module")
def state(tmp_path_factory, face_models: Path):
    data = tmp_path_factory.mktemp("data")
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny-sd1.safetensors", seed=1)
    tiny.save_state_dict(tiny.esrgan_state_dict(1, layout="old"), data / "models" / "ESRGAN" / "4x-Tiny.pth")
    tiny.save_state_dict(tiny.compact_state_dict(2, scale=2), data / "models" / "RealESRGAN" / "RealESRGAN_x2plus.pth")
    options = parse_options(["--data-dir", str(data), "--gfpgan-models-path", str(face_models / "GFPGAN"),
                             "--codeformer-models-path", str(data / "models" / "Codeformer")], {})
    app_state = build_app_state(options)
    yield app_state
    app_state.queue.shutdown()


@pytest.mark.parametrize(("upscaler", "scale", "size"), [("4x-Tiny", 1.5, (96, 96)), ("R-ESRGAN 2x+", 2, (128, 128))])
def test_hires_fix_with_a_model_upscaler(state, upscaler: str, scale: float, size: tuple[int, int]):
    request = Txt2ImgRequest(prompt="a cat", enable_hr=True, hr_upscaler=upscaler, hr_scale=scale,
                             hr_second_pass_steps=1, denoising_strength=0.5, **SMALL)
    result = state.service.txt2img(request, None, NO_SAVE)
    assert result.images[0].size == size
    assert f"Hires upscaler: {upscaler}," in result.infotexts[0]


def test_unknown_hires_upscaler_lists_the_model_upscalers(state):
    with pytest.raises(UserError, match="'4x-Nope'") as error:
        state.service.txt2img(Txt2ImgRequest(enable_hr=True, hr_upscaler="4x-Nope", **SMALL), None, NO_SAVE)
    assert "4x-Tiny" in error.value.hint and "R-ESRGAN 2x+" in error.value.hint


def test_restore_faces_runs_and_is_in_the_infotext(state):
    request = Txt2ImgRequest(prompt="a face", restore_faces=True,
                             override_settings={"face_restoration_model": "GFPGAN"}, **SMALL)
    result = state.service.txt2img(request, None, NO_SAVE)
    assert "Face restoration: GFPGAN" in result.infotexts[0]
    assert result.info["face_restoration_model"] == "GFPGAN"
    plain = state.service.txt2img(Txt2ImgRequest(prompt="a face", **SMALL), None, NO_SAVE)
    assert "Face restoration" not in plain.infotexts[0]
    # a random tiny model draws no face, so the picture itself is unchanged
    assert result.images[0].tobytes() == plain.images[0].tobytes()


def test_restore_faces_without_a_model_fails_before_generating(state):
    request = Txt2ImgRequest(prompt="a face", restore_faces=True, **SMALL)  # default model: CodeFormer
    with pytest.raises(NotFoundError, match="No CodeFormer model"):
        state.service.txt2img(request, None, NO_SAVE)
