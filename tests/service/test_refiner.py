"""The SDXL refiner switch: the base samples part of the schedule, the refiner finishes it."""

import numpy as np
import pytest

from sdweb.cli import parse_options
from sdweb.core.errors import UserError
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 4, "sampler_name": "Euler", "seed": 3, "prompt": "a cat"}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    folder = data / "models" / "Stable-diffusion"
    write_tiny("sdxl", folder / "base-xl.safetensors", seed=1)
    write_tiny("sdxl-refiner", folder / "refiner-xl.safetensors", seed=2)
    write_tiny("sd1", folder / "tiny-sd1.safetensors", seed=3)
    app_state = build_app_state(parse_options(["--data-dir", str(data)], {}))
    yield app_state
    app_state.queue.shutdown()


def _run(state, **fields):
    model = fields.pop("model", "base-xl")
    request = Txt2ImgRequest(**{**SMALL, **fields}, override_settings={"sd_model_checkpoint": model})
    return state.service.txt2img(request, None, NO_SAVE)


def _pixels(result):
    return np.asarray(result.images[0].convert("RGB"), dtype=np.int16)


def test_refiner_changes_the_image_and_is_recorded(state):
    plain = _run(state)
    refined = _run(state, refiner_checkpoint="refiner-xl", refiner_switch_at=0.5)
    assert refined.images[0].size == (64, 64)
    assert not np.array_equal(_pixels(plain), _pixels(refined))
    assert "Refiner: refiner-xl [" in refined.infotexts[0] and "Refiner switch at: 0.5" in refined.infotexts[0]
    again = _run(state, refiner_checkpoint="refiner-xl", refiner_switch_at=0.5)
    assert np.array_equal(_pixels(refined), _pixels(again))


def test_switch_at_one_or_no_refiner_is_the_plain_image(state):
    plain = _run(state)
    assert np.array_equal(_pixels(plain), _pixels(_run(state, refiner_checkpoint="refiner-xl",
                                                         refiner_switch_at=1.0)))
    assert np.array_equal(_pixels(plain), _pixels(_run(state, refiner_checkpoint="None",
                                                         refiner_switch_at=0.5)))


def test_refiner_on_an_sd1_base_is_a_clear_error(state):
    with pytest.raises(UserError, match="needs an SDXL base"):
        _run(state, model="tiny-sd1", refiner_checkpoint="refiner-xl", refiner_switch_at=0.5)



def _refiner_plans(state, monkeypatch, **fields):
    """The conditioning plans the refiner's pipeline call ran with (the tiny refiner barely reacts to its
    prompt in pixels, so the plan itself is checked)."""
    import sdweb.generation.refiner as refiner_module

    seen = []
    original = refiner_module.composable_guidance

    def record(pipe, plan, swaps):
        seen.append((plan, swaps))
        return original(pipe, plan, swaps)

    monkeypatch.setattr(refiner_module, "composable_guidance", record)
    _run(state, refiner_checkpoint="refiner-xl", refiner_switch_at=0.5, **fields)
    return seen


def test_prompt_editing_after_the_switch_reaches_the_refiner(state, monkeypatch):
    import torch

    # 8 steps, the base runs 4; [a cat:a dog:0.3] changes at step 3 (in effect when the refiner starts),
    # [a cat:a dog:0.7] at step 6 (two steps into the refiner)
    (dog_plan, _), = _refiner_plans(state, monkeypatch, prompt="a dog", steps=8)
    (early, _), = _refiner_plans(state, monkeypatch, prompt="[a cat:a dog:0.3]", steps=8)
    assert torch.equal(early.first[0].embeds, dog_plan.first[0].embeds) and not early.changes
    (late, swaps), = _refiner_plans(state, monkeypatch, prompt="[a cat:a dog:0.7]", steps=8)
    assert not torch.equal(late.first[0].embeds, dog_plan.first[0].embeds)
    assert list(late.changes) == [2] and list(swaps.at_step) == [2]
    assert torch.equal(late.changes[2][0].embeds, dog_plan.first[0].embeds)


def test_and_reaches_the_refiner(state, monkeypatch):
    (plan, _), = _refiner_plans(state, monkeypatch, prompt="a cat AND a dog :0.5")
    assert plan.composable and plan.weights == [1.0, 0.5] and len(plan.steps[0].conds) == 2
