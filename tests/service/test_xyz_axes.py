"""Each X/Y/Z plot axis changes what its cells are made with: checked from the cells' infotexts on tiny models
(two checkpoints, a VAE, a LoRA, a style), and, for the axes the infotext does not show, from the job."""

import pytest
from PIL import Image

from sdweb.builtin_scripts.common.xyz_axes import AXES, apply_value
from sdweb.cli import parse_options
from sdweb.core.errors import UserError
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.extensions.api import Processing
from sdweb.generation.service import SaveOptions
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 1, "sampler_name": "Euler", "seed": 5, "prompt": "a cat"}
HIRES = {"enable_hr": True, "hr_scale": 1.25}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    root = tmp_path_factory.mktemp("axes")
    write_tiny("sd1", root / "models" / "Stable-diffusion" / "first.safetensors", seed=1)
    write_tiny("sd1", root / "models" / "Stable-diffusion" / "second.safetensors", seed=2)
    write_tiny("vae", root / "models" / "VAE" / "tinyvae.safetensors", seed=3)
    write_tiny("lora", root / "models" / "Lora" / "tinylora.safetensors", seed=4)
    (root / "styles.csv").write_text('name,prompt,negative_prompt\nshiny,"{prompt}, shiny",\n', encoding="utf-8")
    app_state = build_app_state(parse_options(["--data-dir", str(root)], {}))
    yield app_state
    app_state.queue.shutdown()


def _plot(state, label, values, fields=None, mode="txt2img"):
    args = [label, values, [], "Nothing", "", [], "Nothing", "", [], False, True, False, False, False, False, False,
            0, True]  # no legend, with the cells, text inputs
    if mode == "txt2img":
        request = Txt2ImgRequest(**{**SMALL, **(fields or {})}, script_name="X/Y/Z plot", script_args=args)
        return state.service.txt2img(request, None, NO_SAVE)
    request = Img2ImgRequest(**{**SMALL, **(fields or {})}, init_images=[Image.new("RGB", (64, 64), "gray")],
                             script_name="X/Y/Z plot", script_args=args)
    return state.service.img2img(request, None, NO_SAVE)


@pytest.mark.parametrize(("label", "values", "fields", "mode", "expected"), [
    ("Var. seed", "7, 8", {"subseed_strength": 0.3}, "txt2img", ["Variation seed: 7,", "Variation seed: 8,"]),
    ("Var. strength", "0.2, 0.4", None, "txt2img", ["Variation seed strength: 0.2", "Variation seed strength: 0.4"]),
    ("Hires steps", "1, 2", HIRES, "txt2img", ["Hires steps: 1,", "Hires steps: 2,"]),
    ("Hires sampler", "DDIM, Euler a", HIRES, "txt2img", ["Hires sampler: DDIM", "Hires sampler: Euler a"]),
    ("Hires upscaler", "Latent, lanczos", HIRES, "txt2img", ["Hires upscaler: Latent,", "Hires upscaler: Lanczos"]),
    ("Schedule type", "Karras, exponential", None, "txt2img", ["Schedule type: Karras", "Schedule type: Exponential"]),
    ("Checkpoint name", "first, second", None, "txt2img", ["Model: first,", "Model: second,"]),
    ("VAE", "None, tinyvae", None, "txt2img", ["Model: ", "VAE: tinyvae.safetensors"]),
    ("Clip skip", "1, 2", None, "txt2img", ["Model: ", "Clip skip: 2"]),
    ("Styles", "shiny", None, "txt2img", ["a cat, shiny\n"]),
    ("RNG source", "CPU, NV", None, "txt2img", ["RNG: CPU", "RNG: NV"]),
    ("Size", "64x64, 72x64", None, "txt2img", ["Size: 64x64", "Size: 72x64"]),
    ("Prompt order", "red, blue", {"prompt": "a red and blue cat"}, "txt2img",
     ["a red and blue cat\n", "a blue and red cat\n"]),
    ("Prompt S/R", "0.5, 1", {"prompt": "a cat <lora:tinylora:0.5>"}, "txt2img",
     ["<lora:tinylora:0.5>\n", "<lora:tinylora:1>\n"]),  # an extra network's weight
    ("Denoising", "0.3, 0.6", None, "img2img", ["Denoising strength: 0.3", "Denoising strength: 0.6"]),
])
def test_axis_reaches_its_cells(state, label, values, fields, mode, expected):
    result = _plot(state, label, values, fields, mode)
    cells = result.infotexts[1:]
    assert len(cells) == len(expected)
    for text, wanted in zip(cells, expected, strict=True):
        assert wanted in text, text
    if label == "Prompt S/R":
        assert all('Lora hashes: "tinylora: ' in text for text in cells)
        assert result.images[1].tobytes() != result.images[2].tobytes(), "the LoRA weight changes the image"


def test_unknown_names_fail_before_the_first_image(state):
    for label, values in (("Checkpoint name", "third"), ("VAE", "nope"), ("Hires upscaler", "Bicubic 9x"),
                          ("Schedule type", "Wobbly")):
        with pytest.raises(UserError, match="X/Y/Z plot: unknown"):
            _plot(state, label, values)


@pytest.mark.parametrize(("label", "value", "read"), [
    ("Seed", 9, lambda r: r.seed == 9),
    ("Steps", 3, lambda r: r.steps == 3),
    ("CFG Scale", 4.5, lambda r: r.cfg_scale == 4.5),
    ("Sampler", "DDIM", lambda r: r.sampler_name == "DDIM"),
    ("Negative Guidance minimum sigma", 1.5, lambda r: r.s_min_uncond == 1.5),
    ("Sigma Churn", 0.5, lambda r: r.s_churn == 0.5),
    ("Sigma min", 0.1, lambda r: r.s_tmin == 0.1),
    ("Sigma max", 10.0, lambda r: r.s_tmax == 10.0),
    ("Sigma noise", 1.01, lambda r: r.s_noise == 1.01),
    ("Schedule min sigma", 0.05, lambda r: r.override_settings["sigma_min"] == 0.05),
    ("Schedule max sigma", 12.0, lambda r: r.override_settings["sigma_max"] == 12.0),
    ("Schedule rho", 5.0, lambda r: r.override_settings["rho"] == 5.0),
    ("Eta", 0.3, lambda r: r.eta == 0.3),
    ("Face restore", "CodeFormer", lambda r: r.restore_faces and
     r.override_settings["face_restoration_model"] == "CodeFormer"),
    ("Face restore", "false", lambda r: not r.restore_faces),
    ("Refiner checkpoint", "None", lambda r: r.refiner_checkpoint is None),
    ("Refiner checkpoint", "second.safetensors", lambda r: r.refiner_checkpoint == "second.safetensors"),
    ("Refiner switch at", 0.6, lambda r: r.refiner_switch_at == 0.6),
])
def test_axes_the_infotext_does_not_show_set_the_job(label, value, read):
    p = Processing("txt2img", Txt2ImgRequest(**SMALL))
    apply_value(AXES[label], p, value, [value])
    assert read(p.request)


def test_a_value_the_job_refuses_names_the_axis():
    p = Processing("txt2img", Txt2ImgRequest(**SMALL))
    with pytest.raises(UserError, match="X/Y/Z plot: Steps 0: .*greater than or equal to 1"):
        apply_value(AXES["Steps"], p, 0, [0])
    with pytest.raises(UserError, match="X/Y/Z plot: Size '70x64': width must be a multiple of 8"):
        apply_value(AXES["Size"], p, "70x64", ["70x64"])
