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
    with pytest.raises(UserError, match="refiner pass does not apply"):
        _run(state, model="tiny-sd1", refiner_checkpoint="refiner-xl", refiner_switch_at=0.5)



def _refiner_stage_conditioning(state, monkeypatch, **fields):
    """The stages of the sampling pass (the refiner's conditioning follows the base's evaluation count: the
    refiner takes over inside the same loop, so prompt editing and AND go on where the base stopped)."""
    import sdweb.generation.runner as runner_module

    seen = []
    original = runner_module.sample_pass

    def record(job):
        seen.append(job)
        return original(job)

    monkeypatch.setattr(runner_module, "sample_pass", record)
    _run(state, refiner_checkpoint="refiner-xl", refiner_switch_at=0.5, **fields)
    return seen


def test_refiner_takes_over_with_its_own_conditioning(state, monkeypatch):
    import torch

    job, = _refiner_stage_conditioning(state, monkeypatch, prompt="[a cat:a dog:0.7]", steps=8)
    assert [stage.model.entry.name_for_extra for stage in job.stages] == ["base-xl", "refiner-xl"]
    assert job.switch_at == 0.5 and job.final_stage == 1
    refiner_plan = job.stages[1].conditioning
    assert set(refiner_plan.steps) == {0, 6}  # [a cat:a dog:0.7] over 8 steps: the dog from step 6
    base_dog = job.stages[0].conditioning.steps[6].conds[0].embeds
    assert not torch.equal(refiner_plan.steps[6].conds[0].embeds, base_dog)  # the refiner's own encoder


def test_and_reaches_the_refiner(state, monkeypatch):
    job, = _refiner_stage_conditioning(state, monkeypatch, prompt="a cat AND a dog :0.5")
    plan = job.stages[1].conditioning
    assert plan.composable and plan.weights == [1.0, 0.5] and len(plan.steps[0].conds) == 2
