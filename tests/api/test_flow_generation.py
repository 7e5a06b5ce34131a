"""Flux.1 dev / schnell, Chroma, SD 3.5 medium, a Flux GGUF and a diffusers Flux folder through /sdapi/v1, on
tiny random-weight files in the layouts users have: listed, selected, generated at the asked size, the same
seed giving the same image, the infotext pasted back restoring every field (modules included), img2img and
inpaint changing what they should, and each wrong setup a 4xx naming the file and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from api_kit import (
    check_reproducible_and_pasted_back,
    flow_api,
    image_of,
    pixels,
    png_b64,
    select,
)
from PIL import Image

from sdweb.testing.tiny import write_tiny
from sdweb.testing.tiny_flow import write_flux_lora

KINDS = ("flux-dev", "flux-schnell", "chroma", "sd35-medium", "flux-gguf", "diffusers-flux", "diffusers-sd1",
         "flux-ae", "clip-l", "clip-g", "t5xxl")
SMALL = {"width": 96, "height": 64, "steps": 3, "sampler_name": "Euler", "scheduler": "Simple"}
# checkpoint stem -> the modules Forge's Automatic adds (the all-in-one files and the folder carry their own)
CHECKPOINTS = {
    "flux1-dev-tiny": [],
    "flux1-schnell-tiny": ["ae", "clip_l", "t5xxl_fp16"],
    "chroma-tiny": ["ae", "t5xxl_fp16"],
    "sd3.5_medium_incl_clips-tiny": [],
    "flux1-dev-tiny-Q8_0": ["ae", "clip_l", "t5xxl_fp16"],
    "flux1-dev-tiny-diffusers": [],
    "sd1-tiny-diffusers": [],  # a diffusers folder of an SD family loads through the same path
}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    def loras(root):
        write_flux_lora(root / "models/Lora/flux-kohya.safetensors", "kohya")
        write_flux_lora(root / "models/Lora/flux-peft.safetensors", "peft")
        write_tiny("lora", root / "models/Lora/sd1-lora.safetensors")

    with flow_api(tmp_path_factory.mktemp("flow-api"), KINDS, loras) as context:
        yield context


def _txt2img(client, **fields):
    return client.post("/sdapi/v1/txt2img", json={"prompt": "a red (cat:1.2)", "seed": 11, **SMALL, **fields})


@pytest.mark.parametrize("stem", list(CHECKPOINTS))
def test_each_flow_checkpoint_generates_reproducibly_and_pastes_back(api, stem):
    check_reproducible_and_pasted_back(api[0], stem, CHECKPOINTS[stem], _txt2img)


def test_flux_dev_distilled_guidance_is_a_field_and_in_the_infotext(api):
    client, _, _ = api
    select(client, "flux1-dev-tiny")
    low = _txt2img(client, distilled_cfg_scale=1.5)
    high = _txt2img(client, distilled_cfg_scale=6.0)
    low_image, high_image = image_of(low.json()["images"][0]), image_of(high.json()["images"][0])
    assert "Distilled CFG Scale: 1.5" in low_image.info["parameters"]
    assert not np.array_equal(pixels(low_image), pixels(high_image))
    fields = client.post("/sdapi/v1/png-info", json={"image": high.json()["images"][0]}).json()["parameters"]
    assert fields["Distilled CFG Scale"] == "6.0"


def test_negative_prompt_only_with_cfg_above_one_as_forge(api):
    client, _, _ = api
    select(client, "chroma-tiny")
    plain = pixels(image_of(_txt2img(client, cfg_scale=1.0).json()["images"][0]))
    ignored = _txt2img(client, cfg_scale=1.0, negative_prompt="blurry")
    assert np.array_equal(pixels(image_of(ignored.json()["images"][0])), plain)
    assert any("negative prompt is not used" in note for note in json.loads(ignored.json()["info"])["notes"])
    guided = _txt2img(client, cfg_scale=3.0, negative_prompt="blurry")
    assert not np.array_equal(pixels(image_of(guided.json()["images"][0])), plain)


@pytest.mark.parametrize("sampler", ["Euler", "Euler a", "Heun", "DPM2", "DPM2 a", "LMS", "DPM++ 2M"])
def test_flow_samplers_run(api, sampler):
    client, _, _ = api
    select(client, "flux1-schnell-tiny")
    response = _txt2img(client, sampler_name=sampler, scheduler="Automatic")
    assert response.status_code == 200, response.text
    picture = pixels(image_of(response.json()["images"][0]))
    assert picture.std() > 0


def test_img2img_and_inpaint_change_what_they_should(api):
    client, _, _ = api
    select(client, "flux1-schnell-tiny")
    init = image_of(_txt2img(client).json()["images"][0])
    body = {"init_images": [png_b64(init)], "prompt": "a blue cat", "seed": 5, "denoising_strength": 0.6, **SMALL}
    changed = client.post("/sdapi/v1/img2img", json=body)
    assert changed.status_code == 200, changed.text
    changed_pixels = pixels(image_of(changed.json()["images"][0]))
    assert changed_pixels.shape == (64, 96, 3)
    assert not np.array_equal(changed_pixels, pixels(init))

    mask = Image.new("L", init.size, 0)
    mask.paste(255, (48, 0, 96, 64))  # the right half
    inpaint = client.post("/sdapi/v1/img2img", json={**body, "mask": png_b64(mask), "mask_blur": 0,
                                                      "inpainting_fill": 1})
    assert inpaint.status_code == 200, inpaint.text
    result = pixels(image_of(inpaint.json()["images"][0]))
    assert np.array_equal(result[:, :36], pixels(init)[:, :36]), "outside the mask the picture is kept"
    assert not np.array_equal(result[:, 60:], pixels(init)[:, 60:]), "inside the mask it is repainted"


def test_hires_fix_on_flux(api):
    client, _, _ = api
    select(client, "flux1-schnell-tiny")
    response = _txt2img(client, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5,
                        hr_second_pass_steps=2)
    assert response.status_code == 200, response.text
    assert image_of(response.json()["images"][0]).size == (144, 96)


def test_what_a_flow_model_cannot_do_is_refused_by_name(api):
    client, _, _ = api
    select(client, "flux1-schnell-tiny")
    ddim = _txt2img(client, sampler_name="DDIM")
    assert 400 <= ddim.status_code < 500 and "DDIM" in ddim.text and "Euler" in ddim.text
    odd = _txt2img(client, width=104)
    assert 400 <= odd.status_code < 500 and "multiple of 16" in odd.text
    assert _txt2img(client).status_code == 200


def test_missing_and_wrong_encoders_are_4xx_naming_the_fix(api, tmp_path):
    client, state, files = api
    select(client, "chroma-tiny")
    wrong = client.post("/sdapi/v1/options", json={"forge_additional_modules": ["ae.safetensors",
                                                                                "clip_g.safetensors"]})
    assert wrong.status_code == 200, wrong.text  # the files exist; what they fit is checked when loading
    response = _txt2img(client)
    assert 400 <= response.status_code < 500, response.text
    assert "clip_g" in response.text and "t5xxl" in response.text.lower().replace("-", "")
    unknown = client.post("/sdapi/v1/options", json={"forge_additional_modules": ["nothing.safetensors"]})
    assert unknown.status_code == 404 and "nothing.safetensors" in unknown.text

    moved = files.path("t5xxl").rename(tmp_path / "t5xxl_fp16.safetensors")
    try:
        state.registry.refresh_modules()
        client.post("/sdapi/v1/options", json={"forge_additional_modules": []})
        state.manager.unload_all()
        missing = _txt2img(client)
        assert 400 <= missing.status_code < 500, missing.text
        assert "T5" in missing.text and "models/text_encoder" in missing.text
    finally:
        moved.rename(files.root / "models/text_encoder/t5xxl_fp16.safetensors")
        state.registry.refresh_modules()
    assert _txt2img(client).status_code == 200


def test_sd_modules_route_lists_the_module_files(api):
    client, _, _ = api
    names = {item["model_name"] for item in client.get("/sdapi/v1/sd-modules").json()}
    assert {"ae.safetensors", "clip_l.safetensors", "clip_g.safetensors", "t5xxl_fp16.safetensors"} <= names


@pytest.mark.parametrize("lora", ["flux-kohya", "flux-peft"])
def test_flux_lora_changes_the_image_and_another_familys_is_refused(api, lora):
    client, _, _ = api
    select(client, "flux1-dev-tiny")
    plain = pixels(image_of(_txt2img(client).json()["images"][0]))
    with_lora = _txt2img(client, prompt=f"a red (cat:1.2) <lora:{lora}:1>")
    assert with_lora.status_code == 200, with_lora.text
    image = image_of(with_lora.json()["images"][0])
    assert not np.array_equal(pixels(image), plain)
    assert f"<lora:{lora}:1>" in image.info["parameters"]
    assert np.array_equal(pixels(image_of(_txt2img(client).json()["images"][0])), plain), "off again without the tag"
    wrong = _txt2img(client, prompt="a cat <lora:sd1-lora:1>")
    assert 400 <= wrong.status_code < 500 and "sd1-lora.safetensors" in wrong.text and "SD 1.x" in wrong.text
    assert _txt2img(client).status_code == 200


def test_truncated_gguf_is_a_4xx_naming_the_file(api):
    client, state, files = api
    good = files.path("flux-gguf")
    broken = good.with_name("flux1-broken-Q8_0.gguf")
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    try:
        state.registry.refresh_checkpoints()
        titles = {item["model_name"]: item["title"] for item in client.get("/sdapi/v1/sd-models").json()}
        response = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": titles["flux1-broken-Q8_0"]})
        if response.status_code == 200:
            response = _txt2img(client)
        assert 400 <= response.status_code < 500 and "flux1-broken-Q8_0.gguf" in response.text
    finally:
        broken.unlink()
        state.registry.refresh_checkpoints()
    select(client, "flux1-dev-tiny")
    assert _txt2img(client).status_code == 200


def test_xyz_plot_over_distilled_cfg_scale(api):
    from sdweb.builtin_scripts.common.xyz_axes import a1111_labels

    client, _, _ = api
    select(client, "flux1-dev-tiny")
    axis = a1111_labels(False).index("Distilled CFG Scale")
    args = [axis, "1.5, 6", [], 0, "", [], 0, "", [], True, True, False, False, False, False, False, 0, False]
    response = _txt2img(client, script_name="x/y/z plot", script_args=args)
    assert response.status_code == 200, response.text
    images = [image_of(b64) for b64 in response.json()["images"]]
    assert len(images) == 3  # the grid, then each cell
    assert "Distilled CFG Scale: 1.5" in images[1].info["parameters"]
    assert "Distilled CFG Scale: 6.0" in images[2].info["parameters"]
    assert not np.array_equal(pixels(images[1]), pixels(images[2]))
