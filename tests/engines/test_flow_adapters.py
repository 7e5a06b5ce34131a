"""The flow adapters call each transformer exactly as diffusers' own pipeline does: an Euler loop over our
adapter gives the pipeline's latents for the same noise, embeddings and sigmas."""

from __future__ import annotations

import diffusers
import numpy
import pytest
import torch

from sdweb.engines.flow.transformers import FlowConditioning, adapter_for, pack_latents, unpack_latents


def _euler(adapter, noise, sigmas, cond, guidance=None):
    x = noise
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        v = adapter.velocity(x, torch.full((x.shape[0],), float(sigma)), cond, guidance)
        x = x + (sigma_next - sigma) * v
    return x


def _scheduler_sigmas(pipe, steps, **kwargs):
    pipe.scheduler.set_timesteps(steps, **kwargs)
    return [float(s) for s in pipe.scheduler.sigmas]


@pytest.fixture(scope="module")
def flux_transformer():
    torch.manual_seed(0)
    return diffusers.FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                            attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                            pooled_projection_dim=24, axes_dims_rope=[4, 4, 8],
                                            guidance_embeds=True).eval()


def test_pack_round_trip():
    latents = torch.randn(2, 4, 6, 8)
    packed = pack_latents(latents, 2)
    assert packed.shape == (2, 12, 16)
    assert torch.equal(unpack_latents(packed, 6, 8, 2), latents)


def test_flux_adapter_matches_flux_pipeline(flux_transformer):
    pipe = diffusers.FluxPipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), vae=None,
                                  text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                                  transformer=flux_transformer)
    pipe.vae_scale_factor = 8
    generator = torch.Generator().manual_seed(3)
    noise = torch.randn(1, 4, 4, 6, generator=generator)
    embeds, pooled = torch.randn(1, 7, 32, generator=generator), torch.randn(1, 24, generator=generator)
    sigmas = numpy.linspace(1.0, 1 / 4, 4)
    packed = pack_latents(noise, 2)
    expected = pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, latents=packed, height=32, width=48,
                    num_inference_steps=4, sigmas=list(sigmas), guidance_scale=3.5, output_type="latent").images
    used = [float(s) for s in pipe.scheduler.sigmas]
    ours = _euler(adapter_for(flux_transformer), noise, used, FlowConditioning(embeds, pooled),
                  torch.tensor([3.5]))
    torch.testing.assert_close(pack_latents(ours, 2), expected, atol=1e-5, rtol=1e-5)


def test_chroma_adapter_matches_chroma_pipeline():
    torch.manual_seed(1)
    transformer = diffusers.ChromaTransformer2DModel(patch_size=1, in_channels=16, num_layers=1,
                                                     num_single_layers=1, attention_head_dim=16,
                                                     num_attention_heads=2, joint_attention_dim=32,
                                                     axes_dims_rope=[4, 4, 8], approximator_hidden_dim=32,
                                                     approximator_layers=1, approximator_num_channels=16).eval()
    pipe = diffusers.ChromaPipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), vae=None,
                                    text_encoder=None, tokenizer=None, transformer=transformer)
    pipe.vae_scale_factor = 8
    generator = torch.Generator().manual_seed(4)
    noise = torch.randn(1, 4, 4, 4, generator=generator)
    embeds = torch.randn(1, 6, 32, generator=generator)
    mask = torch.tensor([[True, True, True, True, False, False]])
    packed = pack_latents(noise, 2)
    expected = pipe(prompt_embeds=embeds, prompt_attention_mask=mask.float(), latents=packed, height=32, width=32,
                    num_inference_steps=3, sigmas=[1.0, 0.6, 0.3], guidance_scale=1.0,
                    output_type="latent").images
    used = [float(s) for s in pipe.scheduler.sigmas]
    ours = _euler(adapter_for(transformer), noise, used, FlowConditioning(embeds, None, mask))
    torch.testing.assert_close(pack_latents(ours, 2), expected, atol=1e-5, rtol=1e-5)


def test_sd3_adapter_matches_sd3_pipeline():
    torch.manual_seed(2)
    transformer = diffusers.SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1,
                                                  attention_head_dim=8, num_attention_heads=4,
                                                  caption_projection_dim=32, joint_attention_dim=32,
                                                  pooled_projection_dim=64, out_channels=4).eval()
    pipe = diffusers.StableDiffusion3Pipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
                                              vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None,
                                              tokenizer_2=None, text_encoder_3=None, tokenizer_3=None,
                                              transformer=transformer)
    pipe.vae_scale_factor = 8
    generator = torch.Generator().manual_seed(5)
    noise = torch.randn(1, 4, 4, 4, generator=generator)
    embeds, pooled = torch.randn(1, 9, 32, generator=generator), torch.randn(1, 64, generator=generator)
    expected = pipe(prompt_embeds=embeds, pooled_prompt_embeds=pooled, latents=noise, height=32, width=32,
                    num_inference_steps=3, guidance_scale=1.0, output_type="latent").images
    used = [float(s) for s in pipe.scheduler.sigmas]
    ours = _euler(adapter_for(transformer), noise, used, FlowConditioning(embeds, pooled))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_zimage_adapter_matches_zimage_pipeline():
    torch.manual_seed(3)
    transformer = diffusers.ZImageTransformer2DModel(dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, n_kv_heads=2,
                                                     cap_feat_dim=16, axes_dims=[8, 4, 4], axes_lens=[256, 32, 32])
    with torch.no_grad():  # zero pad tokens would hide a wrong caption / image length
        transformer.x_pad_token.normal_()
        transformer.cap_pad_token.normal_()
    transformer.eval()
    pipe = diffusers.ZImagePipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
                                    vae=None, text_encoder=None, tokenizer=None, transformer=transformer)
    generator = torch.Generator().manual_seed(6)
    noise = torch.randn(1, 16, 4, 6, generator=generator)
    embeds = torch.randn(1, 7, 16, generator=generator)
    expected = pipe(prompt_embeds=[embeds[0]], latents=noise, height=32, width=48, num_inference_steps=3,
                    guidance_scale=0.0, output_type="latent").images
    used = [float(s) for s in pipe.scheduler.sigmas]
    ours = _euler(adapter_for(transformer), noise, used, FlowConditioning(embeds))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_qwen3_prompt_encoding_matches_zimage_pipeline():
    """The prompt tokens, template and hidden state Z-Image's pipeline uses (it pads to 512 and keeps the
    unmasked tokens; we encode the unpadded prompt)."""
    import transformers

    from sdweb.models.families import FAMILIES
    from sdweb.models.flow_loader import tokenizer_for
    from sdweb.prompts.qwen import encode_qwen

    torch.manual_seed(7)
    encoder = transformers.Qwen3Model(transformers.Qwen3Config(
        vocab_size=151936, hidden_size=16, intermediate_size=32, num_hidden_layers=3, head_dim=8,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024)).eval()
    tokenizer = tokenizer_for("qwen3")
    pipe = diffusers.ZImagePipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), vae=None,
                                    text_encoder=encoder, tokenizer=tokenizer, transformer=None)
    spec = FAMILIES["z-image"].text_encoders[0]
    for prompt in ("a red cat on a mat, 日本語", ""):
        expected = pipe.encode_prompt(prompt, device=torch.device("cpu"), do_classifier_free_guidance=False)[0][0]
        ours = encode_qwen(encoder, tokenizer, prompt, max_length=spec.max_length, hidden_states=spec.hidden_states,
                           thinking=spec.thinking)
        torch.testing.assert_close(ours[0], expected, atol=1e-5, rtol=1e-5)


def test_flux_adapter_with_a_reference_matches_flux_kontext_pipeline(flux_transformer):
    vae = diffusers.AutoencoderKL(block_out_channels=[8, 8, 8, 8], latent_channels=4, norm_num_groups=8,
                                  down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
    pipe = diffusers.FluxKontextPipeline(scheduler=diffusers.FlowMatchEulerDiscreteScheduler(), vae=vae,
                                         text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                                         transformer=flux_transformer)
    generator = torch.Generator().manual_seed(8)
    noise = torch.randn(1, 4, 4, 6, generator=generator)
    reference = torch.randn(1, 4, 4, 6, generator=generator)  # already latents: the pipeline takes them as they are
    embeds, pooled = torch.randn(1, 7, 32, generator=generator), torch.randn(1, 24, generator=generator)
    sigmas = list(numpy.linspace(1.0, 1 / 3, 3))
    expected = pipe(image=reference, prompt_embeds=embeds, pooled_prompt_embeds=pooled, latents=pack_latents(noise, 2),
                    height=32, width=48, num_inference_steps=3, sigmas=sigmas, guidance_scale=2.5,
                    output_type="latent", _auto_resize=False, max_area=32 * 48).images
    used = [float(s) for s in pipe.scheduler.sigmas]
    adapter = adapter_for(flux_transformer)
    x = noise
    for sigma, sigma_next in zip(used[:-1], used[1:], strict=True):
        v = adapter.velocity(x, torch.full((1,), sigma), FlowConditioning(embeds, pooled), torch.tensor([2.5]),
                             reference)
        x = x + (sigma_next - sigma) * v
    torch.testing.assert_close(pack_latents(x, 2), expected, atol=1e-5, rtol=1e-5)
    plain = _euler(adapter, noise, used, FlowConditioning(embeds, pooled), torch.tensor([2.5]))
    assert not torch.allclose(plain, x), "the reference tokens change the result"
