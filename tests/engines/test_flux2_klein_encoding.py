"""Flux.2 Klein is prompted, scheduled and latent-coded as diffusers' Flux2KleinPipeline does it: Qwen3's chat
template without thinking, padded to 512 tokens, hidden states 9 / 18 / 27 side by side; mu from
`compute_empirical_mu` (image tokens and step count); the VAE's 2 x 2 patches normalised by its batch-norm
statistics. The whole txt2img path is checked against the pipeline in tests/api/test_flux2_klein.py."""

from __future__ import annotations

import diffusers
import numpy
import pytest
import torch
from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

from sdweb.engines.flow.engine import shift_for
from sdweb.engines.flow.text import FlowTextEncoder, TextOptions
from sdweb.generation.latent_codec import from_vae_latents, to_vae_latents
from sdweb.models.families import FAMILIES
from sdweb.samplers.flow import FlowSchedule, empirical_mu
from sdweb.samplers.schedules import schedule_sigmas
from sdweb.testing.tiny_flow import build_flow_pipeline

KLEIN = FAMILIES["flux2-klein"]


@pytest.fixture(scope="module")
def pipe():
    return build_flow_pipeline("flux2-klein")


@pytest.mark.parametrize("prompt", ["a red cat on a mat, 日本語", "", "a cat, " * 300])
def test_prompt_encoding_matches_the_pipeline(pipe, prompt):
    theirs = pipe.encode_prompt(prompt, device="cpu")[0]
    ours = FlowTextEncoder(pipe, KLEIN.text_encoders, TextOptions(emphasis="None"), {}).encode(prompt).embeds
    assert ours.shape == theirs.shape == (1, 512, 3 * pipe.text_encoder.config.hidden_size)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("width", "height", "steps"), [(96, 64, 4), (1024, 1024, 4), (1024, 1024, 50), (2048, 1536, 8)])
def test_schedule_matches_the_pipelines_empirical_mu(pipe, width, height, steps):
    """Simple over the shifted table gives the pipeline's linspace(1, 1/N, N) shifted by e^mu."""
    tokens = (height // 16) * (width // 16)
    assert empirical_mu(tokens, steps) == pytest.approx(compute_empirical_mu(tokens, steps), abs=1e-12)
    scheduler = pipe.scheduler
    scheduler.set_timesteps(sigmas=numpy.linspace(1.0, 1 / steps, steps), mu=compute_empirical_mu(tokens, steps))
    table = FlowSchedule(shift_for(KLEIN, {}, width, height, steps))
    torch.testing.assert_close(schedule_sigmas("simple", table, steps), scheduler.sigmas.float(), atol=2e-6, rtol=0)


def test_latents_are_the_vaes_patches_normalised_by_its_statistics(pipe):
    raw = torch.randn(1, 32, 8, 12)
    latents = from_vae_latents(pipe.vae, raw)
    assert latents.shape == (1, 128, 4, 6)
    torch.testing.assert_close(latents, (pipe._patchify_latents(raw) - pipe.vae.bn.running_mean.view(1, -1, 1, 1))
                               / torch.sqrt(pipe.vae.bn.running_var.view(1, -1, 1, 1) + pipe.vae.config.batch_norm_eps))
    torch.testing.assert_close(to_vae_latents(pipe.vae, latents), raw, atol=1e-5, rtol=1e-5)
    assert isinstance(pipe.vae, diffusers.AutoencoderKLFlux2)
