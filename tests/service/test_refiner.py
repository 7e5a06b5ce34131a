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
    write_tiny("sdxl", folder / "other-xl.safetensors", seed=4)  # an SDXL fine-tune used as refiner
    write_tiny("sd1", folder / "tiny-sd1-b.safetensors", seed=5)
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


def test_a_refiner_with_other_latents_is_a_clear_error(state):
    with pytest.raises(UserError, match="latents are different"):
        _run(state, model="tiny-sd1", refiner_checkpoint="refiner-xl", refiner_switch_at=0.5)


def test_any_checkpoint_with_the_same_latents_refines_as_in_a1111(state):
    """Bug 4 of the daily-UI issue: A1111 takes any SDXL checkpoint as refiner (an Illustrious base refined
    by a realistic fine-tune); only checkpoints whose latents differ are refused."""
    plain = _run(state)
    refined = _run(state, refiner_checkpoint="other-xl", refiner_switch_at=0.5)
    assert "Refiner: other-xl [" in refined.infotexts[0]
    assert not np.array_equal(_pixels(plain), _pixels(refined))
    with pytest.raises(UserError, match="latents are different"):
        _run(state, refiner_checkpoint="tiny-sd1", refiner_switch_at=0.5)
    sd1_by_sd1 = _run(state, model="tiny-sd1", refiner_checkpoint="tiny-sd1-b", refiner_switch_at=0.5)
    assert "Refiner: tiny-sd1-b [" in sd1_by_sd1.infotexts[0]
    assert not np.array_equal(_pixels(sd1_by_sd1), _pixels(_run(state, model="tiny-sd1")))


def _refined(state, prompt):
    return _pixels(_run(state, prompt=prompt, steps=8, refiner_checkpoint="refiner-xl", refiner_switch_at=0.5))


def test_prompt_editing_goes_on_in_the_refiner(state):
    """Switch at 0.5 of 8 Euler steps: the base samples steps 0-3, the refiner 4-7. The edit to "a dog" at 0.7 of the
    steps (step 6) only the refiner can see; it counts the steps of the whole loop, as in A1111, so 0.7 and 0.8
    (step 7) differ too (a refiner counting from its own start would reach neither)."""
    cat = _refined(state, "a cat")
    edited = _refined(state, "[a cat:a dog:0.7]")
    later = _refined(state, "[a cat:a dog:0.8]")
    assert not np.array_equal(edited, cat)
    assert not np.array_equal(edited, later)
    assert np.array_equal(edited, _refined(state, "[a cat:a dog:0.7]"))


def test_and_reaches_the_refiner(state):
    """Both prompts are "a cat AND a cat :0.5" for the base; after step 6 (refiner only) the second sub-prompt of
    the first becomes "a dog", which changes the image only if the refiner combines the AND sub-prompts."""
    both_cats = _refined(state, "a cat AND a cat :0.5")
    then_dog = _refined(state, "a cat AND [a cat:a dog:0.7] :0.5")
    assert not np.array_equal(then_dog, both_cats)
