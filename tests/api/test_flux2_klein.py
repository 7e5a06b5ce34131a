"""Flux.2 Klein through /sdapi/v1 on tiny random-weight files in the layouts users have (BFL-key transformer,
ComfyUI-layout Qwen3, BFL-key Flux.2 VAE): listed, selected with Forge's Automatic modules, txt2img at the asked
size, the same seed giving the same image, the infotext pasted back restoring it, the image equal to diffusers'
Flux2KleinPipeline's for the same noise (distilled without CFG, base with CFG), img2img and batches, a LoRA changing
it, and a wrong VAE or text encoder a 4xx naming the file and the fix."""

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

from sdweb.generation.unet_sampling import noise_spec
from sdweb.testing.tiny_flow import write_klein_lora

KINDS = ("flux2-klein", "flux2-klein-base", "qwen3-4b-klein", "flux2-vae", "flux-ae", "qwen3-4b")
# 4 steps: Simple then picks the pipeline's linspace(1, 1/4, 4) exactly
SMALL = {"width": 96, "height": 64, "steps": 4, "sampler_name": "Euler", "scheduler": "Simple"}
DISTILLED, BASE = "flux-2-klein-4b-tiny", "flux-2-klein-base-4b-tiny"
MODULES = ["flux2-vae", "qwen_3_4b_klein"]  # what Automatic adds, in slot order


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    def loras(root):
        write_klein_lora(root / "models/Lora/klein-peft.safetensors", "peft")
        write_klein_lora(root / "models/Lora/klein-comfy.safetensors", "comfy")

    with flow_api(tmp_path_factory.mktemp("flux2-klein"), KINDS, loras, {"sd_checkpoints_limit": 2}) as context:
        yield context[:2]


def _txt2img(client, **fields):
    return client.post("/sdapi/v1/txt2img", json={"prompt": "a red cat", "seed": 11, **SMALL, **fields})


@pytest.mark.parametrize("stem", [DISTILLED, BASE])
def test_each_checkpoint_generates_reproducibly_and_pastes_back(api, stem):
    check_reproducible_and_pasted_back(api[0], stem, MODULES, _txt2img)


@pytest.mark.parametrize(("stem", "cfg"), [(DISTILLED, 1.0), (BASE, 4.0)])
def test_txt2img_is_flux2_klein_pipelines_image_for_the_same_noise(api, stem, cfg):
    """The loaded model is a diffusers Flux2KleinPipeline: run on A1111's noise for the seed, its own prompt
    encoding (padded to 512, hidden states 9 / 18 / 27), empirical-mu schedule, CFG against the empty prompt,
    batch-norm latent statistics and decode give the image the API gave."""
    client, state = api
    title = select(client, stem)
    ours = pixels(generated(_txt2img(client, cfg_scale=cfg)))
    pipe = state.manager.get(title).base_pipeline
    noise = noise_spec([11], [11], 0.0, None, state.settings.as_dict()).rng((128, 4, 6), "cpu").next()
    with torch.no_grad():
        theirs = pipe(prompt="a red cat", guidance_scale=cfg, height=64, width=96, num_inference_steps=4,
                      latents=noise).images[0]
    assert np.abs(ours - pixels(theirs)).max() <= 1


def test_img2img_hires_fix_and_batch(api):
    client, _ = api
    select(client, DISTILLED)
    init = generated(_txt2img(client))
    body = {"init_images": [png_b64(init)], "prompt": "a blue cat", "seed": 5, "denoising_strength": 0.6, **SMALL}
    changed = pixels(generated(client.post("/sdapi/v1/img2img", json=body)))
    assert changed.shape == (64, 96, 3) and not np.array_equal(changed, pixels(init))
    hires = _txt2img(client, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.5,
                     hr_second_pass_steps=2)
    assert generated(hires).size == (144, 96)
    batch = _txt2img(client, batch_size=2)
    assert batch.status_code == 200, batch.text
    first, second = (pixels(image_of(data)) for data in batch.json()["images"][:2])
    assert json.loads(batch.json()["info"])["all_seeds"] == [11, 12]
    assert np.abs(first - pixels(init)).max() <= 1, "the batch's first image is seed 11's"
    assert np.abs(second - pixels(generated(_txt2img(client, seed=12)))).max() <= 1


@pytest.mark.parametrize("lora", ["klein-peft", "klein-comfy"])
def test_lora_changes_the_image(api, lora):
    client, _ = api
    select(client, DISTILLED)
    plain = pixels(generated(_txt2img(client)))
    image = generated(_txt2img(client, prompt=f"a red cat <lora:{lora}:1>"))
    assert not np.array_equal(pixels(image), plain)
    assert f"<lora:{lora}:1>" in image.info["parameters"]
    assert np.array_equal(pixels(generated(_txt2img(client))), plain), "off again without the tag"


def test_wrong_vae_or_text_encoder_is_a_4xx_naming_the_file_and_the_fix(api):
    client, _ = api
    for modules, named, fix in ((["ae.safetensors", "qwen_3_4b_klein.safetensors"], "ae.safetensors",
                                 "flux2-vae.safetensors"),
                                (["flux2-vae.safetensors", "qwen_3_4b.safetensors"], "qwen_3_4b.safetensors", "Qwen3")):
        select(client, DISTILLED, modules)
        response = _txt2img(client)
        assert 400 <= response.status_code < 500, response.text
        assert named in response.text and fix in response.text, response.text
    select(client, DISTILLED)
    assert _txt2img(client).status_code == 200, "the next request works"
