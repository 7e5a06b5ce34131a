"""The 2025-26 families (Z-Image Turbo, ...) through /sdapi/v1 on tiny random-weight files in the layouts users
have: listed, selected, txt2img at the asked size, the same seed giving the same image, the infotext pasted
back restoring it (modules included), img2img changing the picture, LoRA (and Z-Image's ai-toolkit LoKr)
changing it, and a missing or wrong text encoder a 4xx naming the file and the fix."""

from __future__ import annotations

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

from sdweb.testing.tiny_flow import write_zimage_lora

KINDS = ("z-image", "qwen3-4b", "flux-ae", "t5xxl", "clip-l", "flux-kontext")
SMALL = {"width": 96, "height": 64, "steps": 3, "sampler_name": "Euler", "scheduler": "Simple"}
# checkpoint stem -> the modules Forge's Automatic adds
CHECKPOINTS = {
    "z_image_turbo-tiny": ["ae", "qwen_3_4b"],
}  # Flux.1 Kontext has no txt2img: test_kontext_...


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    def loras(root):
        write_zimage_lora(root / "models/Lora/zimage-peft.safetensors", "peft")
        write_zimage_lora(root / "models/Lora/zimage-lokr.safetensors", "lokr")

    with flow_api(tmp_path_factory.mktemp("families-2026"), KINDS, loras) as context:
        yield context


def _txt2img(client, **fields):
    return client.post("/sdapi/v1/txt2img", json={"prompt": "a red (cat:1.2)", "seed": 11, **SMALL, **fields})


@pytest.mark.parametrize("stem", list(CHECKPOINTS))
def test_each_checkpoint_generates_reproducibly_and_pastes_back(api, stem):
    check_reproducible_and_pasted_back(api[0], stem, CHECKPOINTS[stem], _txt2img)


def test_zimage_img2img_changes_the_picture(api):
    client, _, _ = api
    select(client, "z_image_turbo-tiny")
    init = image_of(_txt2img(client).json()["images"][0])
    body = {"init_images": [png_b64(init)], "prompt": "a blue cat", "seed": 5, "denoising_strength": 0.6, **SMALL}
    changed = client.post("/sdapi/v1/img2img", json=body)
    assert changed.status_code == 200, changed.text
    picture = pixels(image_of(changed.json()["images"][0]))
    assert picture.shape == (64, 96, 3)
    assert not np.array_equal(pixels, pixels(init))


def test_zimage_inpaint_and_hires_fix(api):
    client, _, _ = api
    select(client, "z_image_turbo-tiny")
    init = image_of(_txt2img(client).json()["images"][0])
    mask = Image.new("L", init.size, 0)
    mask.paste(255, (48, 0, 96, 64))  # the right half
    body = {"init_images": [png_b64(init)], "prompt": "a blue cat", "seed": 5, "denoising_strength": 0.8,
            "mask": png_b64(mask), "mask_blur": 0, "inpainting_fill": 1, **SMALL}
    inpaint = client.post("/sdapi/v1/img2img", json=body)
    assert inpaint.status_code == 200, inpaint.text
    result = pixels(image_of(inpaint.json()["images"][0]))
    assert np.array_equal(result[:, :36], pixels(init)[:, :36]), "outside the mask the picture is kept"
    assert not np.array_equal(result[:, 60:], pixels(init)[:, 60:]), "inside the mask it is repainted"
    hires = _txt2img(client, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5,
                     hr_second_pass_steps=2)
    assert hires.status_code == 200, hires.text
    assert image_of(hires.json()["images"][0]).size == (144, 96)


def test_zimage_cfg_uses_the_negative_prompt(api):
    client, _, _ = api
    select(client, "z_image_turbo-tiny")
    plain = pixels(image_of(_txt2img(client).json()["images"][0]))
    guided = _txt2img(client, cfg_scale=3.0, negative_prompt="blurry")
    assert guided.status_code == 200, guided.text
    assert not np.array_equal(pixels(image_of(guided.json()["images"][0])), plain)


@pytest.mark.parametrize("lora", ["zimage-peft", "zimage-lokr"])
def test_zimage_lora_and_lokr_change_the_image(api, lora):
    client, _, _ = api
    select(client, "z_image_turbo-tiny")
    plain = pixels(image_of(_txt2img(client).json()["images"][0]))
    with_lora = _txt2img(client, prompt=f"a red (cat:1.2) <lora:{lora}:1>")
    assert with_lora.status_code == 200, with_lora.text
    image = image_of(with_lora.json()["images"][0])
    assert not np.array_equal(pixels(image), plain)
    assert f"<lora:{lora}:1>" in image.info["parameters"]
    assert np.array_equal(pixels(image_of(_txt2img(client).json()["images"][0])), plain), "off again without the tag"


def test_kontext_edits_the_given_image_and_refuses_a_text_only_request(api):
    client, _, _ = api
    select(client, "z_image_turbo-tiny")
    source = image_of(_txt2img(client).json()["images"][0])
    other_source = image_of(_txt2img(client, seed=99).json()["images"][0])
    select(client, "flux1-kontext-dev-tiny")
    text_only = _txt2img(client)
    assert 400 <= text_only.status_code < 500, text_only.text
    assert "flux1-kontext-dev-tiny" in text_only.text and "init_images" in text_only.text

    body = {"prompt": "make it blue", "seed": 5, **SMALL}
    edited = client.post("/sdapi/v1/img2img", json={**body, "init_images": [png_b64(source)]})
    assert edited.status_code == 200, edited.text
    image = image_of(edited.json()["images"][0])
    assert image.size == (96, 64)
    assert "Denoising strength: 1.0" in image.info["parameters"], "edit models start from noise by default"
    again = client.post("/sdapi/v1/img2img", json={**body, "init_images": [png_b64(source)]})
    assert np.array_equal(pixels(image_of(again.json()["images"][0])), pixels(image))
    # at full denoising the start is pure noise: only the reference tokens carry the image in
    other = client.post("/sdapi/v1/img2img", json={**body, "init_images": [png_b64(other_source)]})
    assert not np.array_equal(pixels(image_of(other.json()["images"][0])), pixels(image))
    partial = client.post("/sdapi/v1/img2img", json={**body, "init_images": [png_b64(source)],
                                                     "denoising_strength": 0.5})
    assert "Denoising strength: 0.5" in image_of(partial.json()["images"][0]).info["parameters"]


def test_zimage_wrong_and_missing_text_encoder_are_4xx_naming_the_fix(api, tmp_path):
    client, state, files = api
    select(client, "z_image_turbo-tiny", ["ae.safetensors", "t5xxl_fp16.safetensors"])
    wrong = _txt2img(client)
    assert 400 <= wrong.status_code < 500, wrong.text
    assert "t5xxl_fp16.safetensors" in wrong.text and "qwen_3_4b.safetensors" in wrong.text

    moved = files.path("qwen3-4b").rename(tmp_path / "qwen_3_4b.safetensors")
    try:
        state.registry.refresh_modules()
        client.post("/sdapi/v1/options", json={"forge_additional_modules": []})
        state.manager.unload_all()
        missing = _txt2img(client)
        assert 400 <= missing.status_code < 500, missing.text
        assert "Qwen3" in missing.text and "qwen_3_4b.safetensors" in missing.text
        assert "models/text_encoder" in missing.text
    finally:
        moved.rename(files.root / "models/text_encoder/qwen_3_4b.safetensors")
        state.registry.refresh_modules()
    assert _txt2img(client).status_code == 200
