"""The generation service's script hooks and ControlNet units, on the tiny SD1 and its tiny ControlNet."""

import diffusers
import numpy as np
import pytest
from PIL import Image

from sdweb.cli import parse_options
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.hooks import ControlUnit, JobHooks
from sdweb.generation.service import SaveOptions
from sdweb.state import build_app_state
from sdweb.testing.tiny import tiny_config_dir, write_tiny

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 4, "sampler_name": "Euler", "seed": 11, "prompt": "a cat"}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny-sd1.safetensors", seed=1)
    app_state = build_app_state(parse_options(["--data-dir", str(data)], {}))
    yield app_state
    app_state.queue.shutdown()


@pytest.fixture(scope="module")
def controlnet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cn")
    path = write_tiny("controlnet", folder / "control_tiny.safetensors", seed=5)
    return diffusers.ControlNetModel.from_single_file(str(path), config=str(tiny_config_dir("controlnet",
                                                      folder / "cfg")), local_files_only=True).float().eval()


class Hooks(JobHooks):
    def __init__(self, units=(), prompt_suffix=""):
        self.units, self.prompt_suffix, self.steps_seen, self.calls = list(units), prompt_suffix, [], []

    def before_process(self, p):
        if self.prompt_suffix:
            p.prompt = p.prompt + self.prompt_suffix
            p.extra_generation_params["Probe"] = "yes"

    def before_sampling(self, p, call):
        self.calls.append((call.mode, call.width, call.height, call.batch_size))
        call.controlnets.extend(self.units)

    def on_step(self, p, info):
        self.steps_seen.append(info.step)


class Provider:
    def __init__(self, hooks):
        self.hooks = hooks

    def bind(self, mode, request):
        return self.hooks


def _run(state, hooks, request=None, mode="txt2img"):
    state.service.scripts = Provider(hooks) if hooks is not None else None
    try:
        request = request or Txt2ImgRequest(**SMALL)
        run = state.service.txt2img if mode == "txt2img" else state.service.img2img
        return run(request, None, NO_SAVE)
    finally:
        state.service.scripts = None


def _pixels(result, index=0):
    return np.asarray(result.images[index].convert("RGB"), dtype=np.int16)


def _hint():
    hint = Image.new("RGB", (64, 64), (0, 0, 0))
    hint.paste(Image.new("RGB", (24, 24), (255, 255, 255)), (20, 20))
    return hint


def test_hooks_change_the_prompt_and_see_every_step(state):
    hooks = Hooks(prompt_suffix=", masterpiece")
    result = _run(state, hooks)
    assert result.infotexts[0].startswith("a cat, masterpiece\n")
    assert "Probe: yes" in result.infotexts[0]
    assert hooks.steps_seen == [1, 2, 3, 4]
    assert hooks.calls == [("txt2img", 64, 64, 1)]


def test_controlnet_unit_changes_the_image_and_weight_zero_does_not(state, controlnet):
    plain = _pixels(_run(state, None))
    with_unit = _pixels(_run(state, Hooks([ControlUnit(controlnet, _hint(), weight=1.0)])))
    zero = _pixels(_run(state, Hooks([ControlUnit(controlnet, _hint(), weight=0.0)])))
    assert np.abs(with_unit - plain).max() > 0
    assert np.abs(zero - plain).max() <= 1


def test_guidance_end_and_two_units_and_control_modes(state, controlnet):
    full = _pixels(_run(state, Hooks([ControlUnit(controlnet, _hint(), guidance_end=1.0)])))
    half = _pixels(_run(state, Hooks([ControlUnit(controlnet, _hint(), guidance_end=0.5)])))
    two = _run(state, Hooks([ControlUnit(controlnet, _hint()), ControlUnit(controlnet, _hint().rotate(90))]))
    assert not np.array_equal(full, half)
    assert not np.array_equal(_pixels(two), full)
    results = {mode: _pixels(_run(state, Hooks([ControlUnit(controlnet, _hint(), control_mode=mode)])))
               for mode in ("My prompt is more important", "ControlNet is more important")}
    assert not np.array_equal(results["My prompt is more important"], full)
    assert not np.array_equal(results["ControlNet is more important"], results["My prompt is more important"])


def test_controlnet_in_img2img_and_inpaint(state, controlnet):
    init = Image.new("RGB", (64, 64), (120, 60, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    fields = {key: value for key, value in SMALL.items()}
    for request, mode in ((Img2ImgRequest(init_images=[init], **fields), "img2img"),
                          (Img2ImgRequest(init_images=[init], mask=mask, **fields), "inpaint")):
        hooks = Hooks([ControlUnit(controlnet, _hint())])
        result = _run(state, hooks, request, mode="img2img")
        assert result.images[0].size == (64, 64)
        assert hooks.calls[0][0] == mode
