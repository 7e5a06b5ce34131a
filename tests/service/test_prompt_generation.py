"""Prompt syntax through the whole generation service on tiny SD1 and SDXL files: emphasis, prompt editing,
composable AND with weights (checked against A1111's formula through exact equalities), long prompts,
textual-inversion embeddings from the embeddings folder, styles.

"Equal" allows one level of CPU rounding (a batched UNet call may round differently from a smaller one).
"""

import numpy as np
import pytest
from PIL import Image

from sdweb.cli import parse_options
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.prompts.embeddings import read_embedding_file
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 4, "sampler_name": "Euler", "seed": 11, "cfg_scale": 7.0}
STYLES = ("name,prompt,negative_prompt\n"
          "quality,\"best quality, sharp\",lowres\n"
          "frame,\"a photo of {prompt}, framed\",\n")


def _state(tmp_path_factory, kind):
    data = tmp_path_factory.mktemp(kind)
    write_tiny(kind, data / "models" / "Stable-diffusion" / f"tiny-{kind}.safetensors", seed=1)
    write_tiny("embedding", data / "embeddings" / "tiny-embedding.pt", seed=1, fmt="ckpt")
    write_tiny("embedding-sdxl", data / "embeddings" / "tiny-xl.safetensors", seed=1)
    (data / "styles.csv").write_text(STYLES, encoding="utf-8")
    return build_app_state(parse_options(["--data-dir", str(data)], {}))


@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    state = _state(tmp_path_factory, "sd1")
    yield state
    state.queue.shutdown()


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    state = _state(tmp_path_factory, "sdxl")
    yield state
    state.queue.shutdown()


def _run(state, prompt, **fields):
    return state.service.txt2img(Txt2ImgRequest(prompt=prompt, **{**SMALL, **fields}), None, NO_SAVE)


def _pixels(result, index=0):
    return np.asarray(result.images[index].convert("RGB"), dtype=np.int16)


def _diff(a, b):
    return int(np.abs(_pixels(a) - _pixels(b)).max())


# -- SD1 ----------------------------------------------------------------------------------------------------


def test_emphasis_changes_the_image_and_weight_one_does_not(sd1):
    cat = _run(sd1, "a cat")
    assert _diff(_run(sd1, "a (cat:1.5)"), cat) > 1
    assert _diff(_run(sd1, "a (cat:1.0)"), cat) == 0


def test_prompt_editing_differs_from_both_ends(sd1):
    edited = _run(sd1, "a [cat:dog:0.5]", steps=6)
    assert _diff(edited, _run(sd1, "a cat", steps=6)) > 0
    assert _diff(edited, _run(sd1, "a dog", steps=6)) > 0


def test_and_runs_differs_from_the_joined_prompt_and_keeps_the_text_in_infotext(sd1):
    composed = _run(sd1, "a cat AND a dog")
    assert _diff(composed, _run(sd1, "a cat, a dog")) > 1
    assert _diff(composed, _run(sd1, "a cat")) > 1
    assert composed.infotexts[0].startswith("a cat AND a dog\n")
    assert not composed.notes


# (prompt, request fields, prompt that must give the same image by A1111's formula, its fields)
FORMULA = [
    ("cat AND dog :0", {}, "cat", {}),  # a zero-weight sub-prompt adds nothing
    ("cat :2", {"cfg_scale": 3.0}, "cat", {"cfg_scale": 6.0}),  # weight w at cfg c == cfg w*c
    ("cat :0.5 AND cat :0.5", {}, "cat", {}),  # the weights sum
    ("cat :0 AND dog :0", {}, "", {}),  # only the negative prompt (uncond) is left
    ("[cat:dog:2] AND bird :0", {}, "[cat:dog:2]", {}),  # prompt editing inside a sub-prompt
    ("cat AND dog :0", {"cfg_scale": 1.0}, "cat", {"cfg_scale": 1.0}),  # no CFG: the hook does the formula
]


@pytest.mark.parametrize(("prompt", "fields", "same_as", "same_fields"), FORMULA)
def test_and_weights_follow_a1111s_formula(sd1, prompt, fields, same_as, same_fields):
    assert _diff(_run(sd1, prompt, **fields), _run(sd1, same_as, **same_fields)) <= 1


def test_the_formula_checks_can_fail(sd1):
    cat = _run(sd1, "cat")
    assert _diff(_run(sd1, "cat AND dog :0.5"), cat) > 1
    assert _diff(_run(sd1, "cat :1.5"), cat) > 1


def test_negative_weights_are_accepted_and_cancel(sd1):
    """A1111 accepts negative sub-prompt weights: cat :1 AND cat :-1 leaves only the uncond."""
    assert _diff(_run(sd1, "cat :-1"), _run(sd1, "cat")) > 1
    assert _diff(_run(sd1, "cat :1 AND cat :-1"), _run(sd1, "")) <= 1


def test_and_in_a_batch_equals_the_image_alone(sd1):
    batch = _run(sd1, "[cat:dog:2] AND bird :0.7", batch_size=2, seed=20)
    alone = _run(sd1, "[cat:dog:2] AND bird :0.7", seed=21)
    assert batch.seeds == [20, 21]
    assert int(np.abs(_pixels(batch, 1) - _pixels(alone)).max()) <= 1


def _init_image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("masked", [False, True])
def test_and_in_img2img_and_inpaint(sd1, masked):
    mask = Image.new("L", (64, 64), 255) if masked else None

    def run(prompt):
        request = Img2ImgRequest(prompt=prompt, init_images=[_init_image()], mask=mask, mask_blur_x=0,
                                 mask_blur_y=0, denoising_strength=0.8, **SMALL)
        return sd1.service.img2img(request, None, NO_SAVE)

    cat = run("cat")
    assert _diff(run("cat AND dog :0"), cat) <= 1
    assert _diff(run("cat AND dog"), cat) > 1


def test_and_in_the_hires_pass(sd1):
    hires = {"enable_hr": True, "hr_scale": 1.5, "denoising_strength": 0.6, "steps": 3}
    cat = _run(sd1, "cat", **hires)
    assert cat.images[0].size == (96, 96)
    assert _diff(_run(sd1, "cat AND dog :0", **hires), cat) <= 1
    assert _diff(_run(sd1, "cat AND dog", **hires), cat) > 1


def test_tokens_past_75_change_the_image(sd1):
    filler = " ".join(["dog"] * 76)
    assert _diff(_run(sd1, f"{filler} cat"), _run(sd1, f"{filler} bird")) > 1


def test_textual_inversion_from_the_embeddings_folder(sd1):
    used = _run(sd1, "a tiny-embedding cat", negative_prompt="tiny-embedding")
    sha = read_embedding_file(sd1.paths.embeddings / "tiny-embedding.pt").sha256
    assert f'TI hashes: "tiny-embedding: {sha[:12]}"' in used.infotexts[0]
    assert _diff(used, _run(sd1, "a tiny embedding cat", negative_prompt="tiny embedding")) > 1
    plain = _run(sd1, "a cat")
    assert "TI hashes" not in plain.infotexts[0]
    skipped = _run(sd1, "a tiny-xl cat")
    assert any("'tiny-xl' was skipped" in note and "width 32" in note for note in skipped.notes)
    assert "TI hashes" not in skipped.infotexts[0]


def test_styles_are_applied_and_the_infotext_has_the_styled_prompt(sd1):
    styled = _run(sd1, "a cat", negative_prompt="blurry", styles=["quality", "frame"])
    assert styled.infotexts[0].startswith("a photo of a cat, best quality, sharp, framed\n"
                                          "Negative prompt: blurry, lowres\n")
    direct = _run(sd1, "a photo of a cat, best quality, sharp, framed", negative_prompt="blurry, lowres")
    assert _diff(styled, direct) == 0
    assert styled.info["styles"] == ["quality", "frame"]
    missing = _run(sd1, "a cat", styles=["nope"])
    assert any("nope" in note for note in missing.notes)
    assert missing.infotexts[0].startswith("a cat\n")


def test_styles_reach_the_hires_prompt(sd1):
    hires = {"enable_hr": True, "hr_scale": 1.5, "denoising_strength": 0.6, "steps": 3}
    styled = _run(sd1, "a cat", styles=["frame"], hr_prompt="a dog", **hires)
    direct = _run(sd1, "a photo of a cat, framed", hr_prompt="a photo of a dog, framed", **hires)
    assert _diff(styled, direct) == 0
    assert _diff(styled, _run(sd1, "a photo of a cat, framed", hr_prompt="a dog", **hires)) > 1

# -- SDXL ---------------------------------------------------------------------------------------------------


def test_sdxl_emphasis_editing_and_long_prompts(sdxl):
    cat = _run(sdxl, "a cat")
    assert _diff(_run(sdxl, "a (cat:2)"), cat) > 1  # the tiny SDXL reacts less: (cat:1.5) moves one level
    assert _diff(_run(sdxl, "a (cat:1.0)"), cat) == 0
    edited = _run(sdxl, "a [cat:dog:0.5]")
    assert _diff(edited, cat) > 0 and _diff(edited, _run(sdxl, "a dog")) > 0
    filler = " ".join(["dog"] * 76)
    assert _diff(_run(sdxl, f"{filler} cat"), _run(sdxl, f"{filler} bird")) > 1


def test_sdxl_composable_with_pooled_embeds(sdxl):
    cat = _run(sdxl, "cat")
    assert _diff(_run(sdxl, "cat AND dog :0"), cat) <= 1
    assert _diff(_run(sdxl, "cat :2", cfg_scale=3.0), _run(sdxl, "cat", cfg_scale=6.0)) <= 1
    composed = _run(sdxl, "cat AND dog", batch_size=2)
    assert _diff(composed, _run(sdxl, "cat, dog")) > 1
    assert int(np.abs(_pixels(composed, 1) - _pixels(_run(sdxl, "cat AND dog", seed=12))).max()) <= 1


def test_sdxl_textual_inversion_uses_clip_l_and_clip_g(sdxl):
    used = _run(sdxl, "a tiny-xl cat")
    assert 'TI hashes: "tiny-xl: ' in used.infotexts[0]
    assert _diff(used, _run(sdxl, "a tiny xl cat")) > 1
    skipped = _run(sdxl, "a tiny-embedding cat")
    assert any("'tiny-embedding' was skipped" in note for note in skipped.notes)
