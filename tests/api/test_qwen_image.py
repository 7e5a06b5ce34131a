"""Qwen-Image and Qwen-Image-Edit through /sdapi/v1 on tiny random-weight files in the layouts users have: listed,
selected, txt2img at the asked size, the same seed giving the same image, the infotext pasted back restoring it,
the image equal to diffusers' QwenImagePipeline's for the same noise (true CFG with a negative prompt), img2img,
inpainting, hires fix and batches, LoRAs in ComfyUI's and kohya's layouts changing it; the edit model editing the
given image (denoising 1.0 by default) and refusing a text-only request; a wrong VAE or text encoder a 4xx naming
the file and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from api_kit import (
    check_reproducible_and_pasted_back,
    flow_api,
    generated,
    image_of,
    pixels,
    png_b64,
    select,
)
from PIL import Image

from sdweb.engines.flow.transformers import pack_latents
from sdweb.generation.unet_sampling import noise_spec
from sdweb.testing.tiny_flow import write_qwen_image_lora

KINDS = ("qwen-image", "qwen-image-edit", "qwen-image-aio", "qwen-image-vae", "qwen25vl-7b", "qwen25vl-7b-fp8-scaled",
         "flux-ae", "qwen3-4b")
# 4 steps: Simple then picks the pipeline's linspace(1, 1/4, 4) exactly
SMALL = {"width": 96, "height": 64, "steps": 4, "sampler_name": "Euler", "scheduler": "Simple", "cfg_scale": 4.0,
         "negative_prompt": "blurry"}
CHECKPOINTS = {"qwen_image_bf16-tiny": ["qwen_image_vae", "qwen_2.5_vl_7b"], "qwen_image_aio-tiny": []}
EDIT = "qwen_image_edit_bf16-tiny"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    def loras(root):
        write_qwen_image_lora(root / "models/Lora/qwen-comfy.safetensors", "comfy")
        write_qwen_image_lora(root / "models/Lora/qwen-kohya.safetensors", "kohya")

    # the three checkpoints stay loaded: switching between them does not load them again
    with flow_api(tmp_path_factory.mktemp("qwen-image"), KINDS, loras, {"sd_checkpoints_limit": 3}) as context:
        yield context[:2]


def _txt2img(client, **fields):
    return client.post("/sdapi/v1/txt2img", json={"prompt": "a red cat", "seed": 11, **SMALL, **fields})


@pytest.mark.parametrize("stem", list(CHECKPOINTS))
def test_each_checkpoint_generates_reproducibly_and_pastes_back(api, stem):
    check_reproducible_and_pasted_back(api[0], stem, CHECKPOINTS[stem], _txt2img,
                                       also_in_infotext=("CFG scale: 4.0", "Negative prompt: blurry"))


def test_txt2img_is_qwen_image_pipelines_image_for_the_same_noise(api):
    """The loaded model is a diffusers QwenImagePipeline: run on A1111's noise for the seed, its own prompt
    encoding, schedule, true CFG and decode give the image the API gave."""
    client, state = api
    title = select(client, "qwen_image_bf16-tiny")
    # a high scale: the tiny random model's two prompts differ little, so only strong guidance (and its
    # rescaling) shows in 8-bit pixels (without the rescaling they differ by 7 levels)
    ours = pixels(generated(_txt2img(client, cfg_scale=20.0)))
    pipe = state.manager.get(title).base_pipeline
    noise = noise_spec([11], [11], 0.0, None, state.settings.as_dict()).rng((16, 8, 12), "cpu").next()
    with torch.no_grad():
        theirs = pipe("a red cat", negative_prompt="blurry", true_cfg_scale=20.0, height=64, width=96,
                      num_inference_steps=4, latents=pack_latents(noise, 2)).images[0]
    assert np.abs(ours - pixels(theirs)).max() <= 1


def test_img2img_inpaint_hires_fix_and_batch(api):
    client, _ = api
    select(client, "qwen_image_bf16-tiny")
    init = generated(_txt2img(client))
    body = {"init_images": [png_b64(init)], "prompt": "a blue cat", "seed": 5, "denoising_strength": 0.6, **SMALL}
    changed = pixels(generated(client.post("/sdapi/v1/img2img", json=body)))
    assert changed.shape == (64, 96, 3) and not np.array_equal(changed, pixels(init))
    mask = Image.new("L", init.size, 0)
    mask.paste(255, (48, 0, 96, 64))  # the right half
    inpainted = pixels(generated(client.post("/sdapi/v1/img2img", json=body | {
        "mask": png_b64(mask), "mask_blur": 0, "inpainting_fill": 1, "denoising_strength": 0.8})))
    assert np.array_equal(inpainted[:, :36], pixels(init)[:, :36]), "outside the mask the picture is kept"
    assert not np.array_equal(inpainted[:, 60:], pixels(init)[:, 60:]), "inside the mask it is repainted"
    hires = _txt2img(client, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5,
                     hr_second_pass_steps=2)
    assert generated(hires).size == (144, 96)
    batch = _txt2img(client, batch_size=2)
    assert batch.status_code == 200, batch.text
    first, second = (pixels(image_of(data)) for data in batch.json()["images"][:2])
    assert json.loads(batch.json()["info"])["all_seeds"] == [11, 12]
    assert np.abs(first - pixels(init)).max() <= 1, "the batch's first image is seed 11's"
    assert np.abs(second - pixels(generated(_txt2img(client, seed=12)))).max() <= 1


@pytest.mark.parametrize("lora", ["qwen-comfy", "qwen-kohya"])
def test_lora_changes_the_image(api, lora):
    client, _ = api
    select(client, "qwen_image_bf16-tiny")
    plain = pixels(generated(_txt2img(client)))
    image = generated(_txt2img(client, prompt=f"a red cat <lora:{lora}:1>"))
    assert not np.array_equal(pixels(image), plain)
    assert f"<lora:{lora}:1>" in image.info["parameters"]
    assert np.array_equal(pixels(generated(_txt2img(client))), plain), "off again without the tag"


def test_edit_model_edits_the_given_image_and_refuses_a_text_only_request(api):
    client, _ = api
    select(client, "qwen_image_bf16-tiny")
    source = generated(_txt2img(client))
    other_source = generated(_txt2img(client, seed=99))
    select(client, EDIT)
    text_only = _txt2img(client)
    assert 400 <= text_only.status_code < 500, text_only.text
    assert EDIT in text_only.text and "init_images" in text_only.text

    body = {"prompt": "make it blue", "seed": 5, **SMALL}
    image = generated(client.post("/sdapi/v1/img2img", json={**body, "init_images": [png_b64(source)]}))
    assert image.size == (96, 64)
    assert "Denoising strength: 1.0" in image.info["parameters"], "edit models start from noise by default"
    assert "Module 2: qwen_2.5_vl_7b" in image.info["parameters"]
    assert not np.array_equal(pixels(image), pixels(source)), "the image is changed"
    again = client.post("/sdapi/v1/img2img", json={**body, "init_images": [png_b64(source)]})
    assert np.array_equal(pixels(generated(again)), pixels(image))
    # at full denoising the start is pure noise: only the reference tokens and the prompt's image carry it in
    other = client.post("/sdapi/v1/img2img", json={**body, "init_images": [png_b64(other_source)]})
    assert not np.array_equal(pixels(generated(other)), pixels(image))
    partial = client.post("/sdapi/v1/img2img", json={**body, "init_images": [png_b64(source)],
                                                     "denoising_strength": 0.5})
    assert "Denoising strength: 0.5" in generated(partial).info["parameters"]


def test_wrong_vae_or_text_encoder_is_a_4xx_naming_the_file_and_the_fix(api):
    client, _ = api
    for modules, named, fix in ((["ae.safetensors", "qwen_2.5_vl_7b.safetensors"], "ae.safetensors",
                                 "qwen_image_vae.safetensors"),
                                (["qwen_image_vae.safetensors", "qwen_3_4b.safetensors"], "qwen_3_4b.safetensors",
                                 "qwen_2.5_vl_7b_fp8_scaled.safetensors")):
        select(client, "qwen_image_bf16-tiny", modules)
        response = _txt2img(client)
        assert 400 <= response.status_code < 500, response.text
        assert named in response.text and fix in response.text
    select(client, "qwen_image_aio-tiny")
    assert _txt2img(client).status_code == 200, "the next request works"
