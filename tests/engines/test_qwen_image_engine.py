"""Qwen-Image and Qwen-Image-Edit are prompted, scheduled, guided and called as diffusers' own pipelines do it:
the template's hidden states without its first tokens (Edit: with the image through Qwen2.5-VL's vision tower),
the dynamic-shift schedule stretched to 0.02, true CFG rescaled to the conditional velocity's norm, and (slow)
the edit loop with the reference image's tokens. The whole txt2img path through the API is checked against
QwenImagePipeline in tests/api/test_qwen_image.py."""

from __future__ import annotations

from types import SimpleNamespace

import diffusers
import numpy
import pytest
import torch
import transformers
from PIL import Image

from sdweb.engines.flow.engine import shift_for
from sdweb.engines.flow.text import FlowTextEncoder, TextOptions
from sdweb.engines.flow.transformers import adapter_for, pack_latents
from sdweb.models.families import FAMILIES
from sdweb.models.flow_loader import image_processor_for, tokenizer_for
from sdweb.prompts.qwen import vision_input
from sdweb.samplers.denoisers import renormed
from sdweb.samplers.flow import FlowSchedule, stretched_to_terminal
from sdweb.samplers.schedules import schedule_sigmas
from sdweb.testing.tiny_flow import build_flow_pipeline

PROMPTS = ("a red cat on a mat, 日本語", "", "a cat, " * 300)  # the last is cut to 512 tokens


@pytest.fixture(scope="module")
def pipe():
    return build_flow_pipeline("qwen-image")


@pytest.fixture(scope="module")
def edit_pipe():
    pipe = build_flow_pipeline("qwen-image-edit")
    pipe.processor = _processor(pipe.tokenizer, image_processor_for(FAMILIES["qwen-image-edit"]))
    return pipe


def _processor(tokenizer, image_processor):
    """transformers' Qwen2-VL processor (what QwenImageEditPipeline calls). Its constructor insists on a video
    processor, which needs torchvision; the attributes it would set are set here and its own __call__ runs."""
    processor = transformers.Qwen2VLProcessor.__new__(transformers.Qwen2VLProcessor)
    processor.image_processor, processor.tokenizer, processor.video_processor = image_processor, tokenizer, None
    processor.chat_template = None
    processor.image_token, processor.video_token = "<|image_pad|>", "<|video_pad|>"
    processor.image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    processor.video_token_id = tokenizer.convert_tokens_to_ids(processor.video_token)
    return processor


def _picture(width: int = 100, height: int = 60, seed: int = 0) -> Image.Image:
    pixels = numpy.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=numpy.uint8)
    return Image.fromarray(pixels)


def test_bundled_tokenizer_is_qwen25vl():
    tokenizer = tokenizer_for("qwen25vl")
    template = FAMILIES["qwen-image"].text_encoders[0].template
    assert len(tokenizer) == 151665
    assert tokenizer("a photo of a cat")["input_ids"] == [64, 6548, 315, 264, 8251]
    ids = tokenizer(template.format("a photo of a cat"))["input_ids"]
    assert len(ids) == 44 and ids[34:] == [64, 6548, 315, 264, 8251, 151645, 198, 151644, 77091, 198]
    assert tokenizer("<think>")["input_ids"] != tokenizer_for("qwen3")("<think>")["input_ids"]


def test_prompt_encoding_matches_qwen_image_pipeline(pipe):
    # the loaded model's encoder is the language model alone (Qwen2_5_VLTextModel): the same weights
    ours = FlowTextEncoder(SimpleNamespace(text_encoder=pipe.text_encoder.model.language_model,
                                           tokenizer=pipe.tokenizer),
                           FAMILIES["qwen-image"].text_encoders, TextOptions(), {})
    for prompt in PROMPTS:
        expected, mask = pipe.encode_prompt(prompt, device=torch.device("cpu"), max_sequence_length=512)
        encoded = ours.encode(prompt)
        assert mask is None and encoded.mask is None
        torch.testing.assert_close(encoded.embeds, expected, atol=1e-5, rtol=1e-5)
    assert ours.encode(PROMPTS[2]).length == 512


def test_edit_prompt_encoding_reads_the_image_as_qwen_image_edit_pipeline(edit_pipe):
    family = FAMILIES["qwen-image-edit"]
    picture, other = _picture(), _picture(seed=1)
    encoder = FlowTextEncoder(SimpleNamespace(text_encoder=edit_pipe.text_encoder.model, tokenizer=edit_pipe.tokenizer),
                              family.text_encoders, TextOptions(), {},
                              vision_input(image_processor_for(family), picture))
    for prompt in ("make the cat blue", ""):
        expected = edit_pipe.encode_prompt(prompt, image=picture, device=torch.device("cpu"))[0]
        torch.testing.assert_close(encoder.encode(prompt).embeds, expected, atol=1e-5, rtol=1e-5)
    changed = FlowTextEncoder(SimpleNamespace(text_encoder=edit_pipe.text_encoder.model, tokenizer=edit_pipe.tokenizer),
                              family.text_encoders, TextOptions(), {},
                              vision_input(image_processor_for(family), other)).encode("make the cat blue")
    assert not torch.allclose(changed.embeds, encoder.encode("make the cat blue").embeds), "the image is read"


@pytest.mark.parametrize(("width", "height", "steps"), [(96, 64, 4), (1024, 1024, 8), (1664, 928, 20)])
def test_schedule_matches_the_pipelines_dynamic_shift_and_terminal(pipe, width, height, steps):
    """Simple over the shifted table gives the pipeline's linspace(1, 1/N, N), shifted by e^mu, stretched."""
    family = FAMILIES["qwen-image"]
    scheduler = pipe.scheduler
    tokens = (height // 16) * (width // 16)
    config = scheduler.config
    mu = diffusers.pipelines.qwenimage.pipeline_qwenimage.calculate_shift(
        tokens, config.base_image_seq_len, config.max_image_seq_len, config.base_shift, config.max_shift)
    scheduler.set_timesteps(sigmas=numpy.linspace(1.0, 1 / steps, steps), mu=mu)
    table = FlowSchedule(shift_for(family, {}, width, height), terminal=family.scheduling.shift_terminal)
    ours = stretched_to_terminal(schedule_sigmas("simple", table, steps), table.terminal)
    torch.testing.assert_close(ours, scheduler.sigmas.float(), atol=2e-6, rtol=0)
    assert abs(float(ours[-2]) - 0.02) < 1e-6


def test_true_cfg_rescales_the_guided_velocity_per_token_as_the_pipeline():
    generator = torch.Generator().manual_seed(2)
    x, v_cond, v_uncond = (torch.randn(2, 16, 6, 4, generator=generator) for _ in range(3))
    sigma, scale = 0.7, 4.0
    guided_x0 = (x - sigma * v_uncond) + scale * ((x - sigma * v_cond) - (x - sigma * v_uncond))  # A1111's CFG
    ours = (x - renormed(x, guided_x0, x - sigma * v_cond, 2)) / sigma
    packed_cond, packed_uncond = pack_latents(v_cond, 2), pack_latents(v_uncond, 2)
    combined = packed_uncond + scale * (packed_cond - packed_uncond)  # QwenImagePipeline's true CFG
    expected = combined * (torch.norm(packed_cond, dim=-1, keepdim=True) / torch.norm(combined, dim=-1, keepdim=True))
    torch.testing.assert_close(pack_latents(ours, 2), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_edit_loop_with_reference_tokens_matches_qwen_image_edit_pipeline(edit_pipe):
    """The pipeline always resizes the image to about 1 MP (so this is slow); the reference latents are then
    128 x 128 while the output is 32 x 32: the adapter gives both grids to the transformer's RoPE."""
    picture = _picture(1024, 1024)
    noise = torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(3))
    expected = edit_pipe(picture, "make it blue", height=32, width=32, num_inference_steps=2, true_cfg_scale=1.0,
                         latents=pack_latents(noise, 2), output_type="latent").images
    sigmas = [float(s) for s in edit_pipe.scheduler.sigmas]
    pixels = edit_pipe.image_processor.preprocess(picture, 1024, 1024).unsqueeze(2)
    reference = edit_pipe._encode_vae_image(pixels, None)[:, :, 0]
    family = FAMILIES["qwen-image-edit"]
    cond = FlowTextEncoder(SimpleNamespace(text_encoder=edit_pipe.text_encoder.model, tokenizer=edit_pipe.tokenizer),
                           family.text_encoders, TextOptions(), {},
                           vision_input(image_processor_for(family), picture)).encode("make it blue")
    adapter, x = adapter_for(edit_pipe.transformer), noise
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        x = x + (sigma_next - sigma) * adapter.velocity(x, torch.full((1,), sigma), cond, None, reference)
    torch.testing.assert_close(pack_latents(x, 2), expected, atol=1e-5, rtol=1e-5)
