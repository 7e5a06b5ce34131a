"""Acceptance for A1111 parity: our sampling pass against k-diffusion's own sampler functions driven by A1111's
rules (written out here independently: LDM's noise table, A1111's schedules and img2img cut, its CFG
combination, its per-image noise and Brownian trees), on the tiny SD1 and SDXL models. Each case compares the
final latents (max abs difference <= 1e-3) and the VAE-decoded images (PSNR >= 40 dB).

The default run is a representative subset; ``-m slow`` runs the full cross product. The harness (cases, models,
our side, the comparison and the table of every case) is a1111_harness.py with its fixtures in conftest.py,
shared with test_a1111_timestep_parity.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from a1111_harness import (
    CFG,
    DENOISING,
    SCHEDULES,
    STEPS,
    Case,
    ReferenceNoise,
    call_unet,
    check,
    ldm_alphas_cumprod,
    run_ours,
)

from sdweb.samplers.resolve import find_sampler
from sdweb.testing import kdiffusion_reference

pytestmark = pytest.mark.skipif(not kdiffusion_reference.available(), reason="k-diffusion (dev extra) missing")

K_SAMPLERS = ["DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
              "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart"]


# ------------------------------------------------------------------ the reference (A1111's rules, written out)

def reference_sigmas(sampling, denoiser, sampler_name, schedule, steps, is_sdxl):
    info = find_sampler(sampler_name)
    discard = info.discard_penultimate_sigma
    n = steps + (1 if discard else 0)
    name = schedule if schedule != "Automatic" else {"karras": "Karras", "exponential": "Exponential"}.get(
        info.default_schedule, "Automatic")
    smin, smax = denoiser.sigmas[0].item(), denoiser.sigmas[-1].item()
    if name == "Automatic":
        sigmas = denoiser.get_sigmas(n)
    elif name == "Karras":
        sigmas = sampling.get_sigmas_karras(n, smin, smax)
    elif name == "Exponential":
        sigmas = sampling.get_sigmas_exponential(n, smin, smax)
    elif name == "SGM Uniform":
        start, end = denoiser.sigma_to_t(torch.tensor(smax)), denoiser.sigma_to_t(torch.tensor(smin))
        sigmas = torch.FloatTensor([denoiser.t_to_sigma(ts) for ts in torch.linspace(start, end, n + 1)[:-1]] + [0.0])
    else:  # Align Your Steps: NVIDIA's 10-step tables, log-linearly resampled
        table = ([14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029] if is_sdxl else
                 [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029])
        if n != len(table):
            xs, ys = np.linspace(0, 1, len(table)), np.log(table[::-1])
            table = list(np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1]) + [0.0]
        else:
            table = table + [0.0]
        sigmas = torch.FloatTensor(table)
    return torch.cat([sigmas[:-2], sigmas[-1:]]) if discard else sigmas


class ReferenceCFG:
    """A1111's CFGDenoiser for one prompt: rows [cond per image, uncond per image], combine_denoised."""

    def __init__(self, inner, cond, uncond, scale):
        self.inner, self.cond, self.uncond, self.scale = inner, cond, uncond, scale

    def __call__(self, x, sigma, **extra):
        batch = x.shape[0]
        x_in, sigma_in = torch.cat([x, x]), torch.cat([sigma, sigma])
        out = self.inner(x_in, sigma_in, cond=(self.cond, self.uncond, batch))
        uncond = out[-batch:]
        denoised = torch.clone(uncond)
        for i in range(batch):
            denoised[i] += (out[i] - uncond[i]) * (1.0 * self.scale)
        return denoised


class ReferenceUNet:
    """What k-diffusion's CompVisDenoiser wraps: alphas_cumprod and apply_model(x, t, cond)."""

    def __init__(self, pipe, case):
        self.pipe, self.case = pipe, case
        self.alphas_cumprod = ldm_alphas_cumprod()

    def apply_model(self, x, t, cond):
        cond_state, uncond_state, batch = cond
        embeds = torch.cat([cond_state.embeds] * batch + [uncond_state.embeds] * batch)
        pooled = None
        if self.case.family == "sdxl":
            pooled = torch.cat([cond_state.pooled] * batch + [uncond_state.pooled] * batch)
        return call_unet(self.pipe, self.case, x, t, embeds, pooled)


def reference_latents(pipe, conditioning, case, init_latent):
    sampling, external = kdiffusion_reference.load()
    is_sdxl = case.family == "sdxl"
    denoiser = external.CompVisDenoiser(ReferenceUNet(pipe, case))
    state = conditioning.first
    cfg = ReferenceCFG(denoiser, state.conds[0], state.uncond, CFG)
    seeds = case.seeds()
    rng = ReferenceNoise(case.latent_shape(), seeds, case.subseeds(), case.subseed_strength)
    info = find_sampler(case.sampler)
    function = getattr(sampling, info.function, None)
    noise = rng.next()
    if case.mode == "txt2img":
        sigmas = reference_sigmas(sampling, denoiser, case.sampler, case.schedule, STEPS, is_sdxl)
        x, sigma_sched, brownian_x = noise * sigmas[0], sigmas, None
        fast = {"sigma_min": denoiser.sigmas[0].item(), "sigma_max": denoiser.sigmas[-1].item(), "n": STEPS}
    else:
        strength = DENOISING
        if case.mode == "hires":
            steps, t_enc = int(STEPS / min(strength, 0.999)), STEPS - 1
        else:
            steps, t_enc = STEPS, int(min(strength, 0.999) * STEPS)
        sigmas = reference_sigmas(sampling, denoiser, case.sampler, case.schedule, steps, is_sdxl)
        sigma_sched = sigmas[steps - t_enc - 1:]
        x, brownian_x = init_latent + noise * sigma_sched[0], init_latent
        fast = {"sigma_min": sigma_sched[-2], "sigma_max": sigma_sched[0], "n": len(sigma_sched) - 1}
    kwargs = {}
    if info.brownian_noise:
        low, high = sigmas[sigmas > 0].min(), sigmas.max()
        kwargs["noise_sampler"] = sampling.BrownianTreeNoiseSampler(brownian_x if brownian_x is not None else x,
                                                                    low, high, seed=seeds)
    if info.solver_type == "heun":
        kwargs["solver_type"] = "heun"
    with kdiffusion_reference.a1111_noise(sampling, rng.next), torch.no_grad():
        if case.sampler in ("DPM fast", "DPM adaptive"):
            if case.sampler == "DPM adaptive":
                fast.pop("n")
            return function(cfg, x, eta=1.0, disable=True, **fast)
        if case.sampler == "Restart":
            return reference_restart(sampling, cfg, x, sigma_sched, rng)
        if "eta" in function.__code__.co_varnames:
            kwargs["eta"] = 1.0
        return function(cfg, x, sigma_sched, disable=True, **kwargs)


def reference_restart(sampling, model, x, sigmas, rng):
    """A1111's Restart sampler as k-diffusion Heun runs over its step list, re-noised between restarts."""
    steps = len(sigmas) - 1
    restart = None
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = sampling.get_sigmas_karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item())
        restart = (restart_steps + 1, restart_times, 2.0)
    segments = [sigmas]
    if restart is not None:
        at = int(torch.argmin(abs(sigmas - 0.1)))
        top = int(torch.argmin(abs(sigmas - restart[2])))
        if top < at:
            again = sampling.get_sigmas_karras(restart[0], sigmas[at].item(), sigmas[top].item())[:-1]
            segments = [sigmas[:at + 1]] + [again] * restart[1] + [sigmas[at:]]
    for index, segment in enumerate(segments):
        if index > 0 and segment[0] > segments[index - 1][-1]:
            x = x + rng.next() * ((segment[0] ** 2 - segments[index - 1][-1] ** 2) ** 0.5)
        x = sampling.sample_heun(model, x, segment, disable=True)
    return x


def run_case(models, rows, case):
    run = run_ours(models, case)
    check(case, run, reference_latents(run.pipe, run.conditioning, case, run.init_latent), rows)


DEFAULT_CASES = (
    [Case("sd1", name) for name in K_SAMPLERS]
    + [Case("sd1", "Euler a", schedule) for schedule in SCHEDULES[1:]]
    + [Case("sd1", "DPM++ 2M", "SGM Uniform"), Case("sd1", "DPM++ 2M", "Align Your Steps")]
    + [Case("sd1", "Euler a", seed=12345, batch=2), Case("sd1", "DPM++ SDE", batch=2),
       Case("sd1", "DPM++ 2M SDE", batch=2), Case("sd1", "Euler a", subseed_strength=0.3, batch=2),
       Case("sd1", "DPM2 a", size=(48, 32)), Case("sd1", "Euler a", mode="img2img"),
       Case("sd1", "DPM++ 2M SDE", mode="img2img"), Case("sd1", "DPM++ 2M", mode="hires"),
       Case("sdxl", "Euler a"), Case("sdxl", "DPM++ 2M"), Case("sdxl", "DPM++ SDE", "Karras", batch=2)]
)
FULL_CASES = [
    Case(family, sampler, schedule, seed, batch)
    for family, sampler, schedule, seed, batch in itertools.product(("sd1", "sdxl"), K_SAMPLERS, SCHEDULES,
                                                                    (1, 12345), (1, 2))
] + [Case(family, sampler, variation_kind[0], 1, 2, *variation_kind[1:])
     for family, sampler in itertools.product(("sd1", "sdxl"), K_SAMPLERS)
     for variation_kind in (("Automatic", 0.3), ("Automatic", 0.0, (48, 32)), ("Automatic", 0.0, (32, 32), "img2img"),
                            ("Automatic", 0.0, (32, 32), "hires"))]


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=Case.label)
def test_matches_a1111(a1111_models, a1111_parity_rows, case):
    run_case(a1111_models, a1111_parity_rows, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", [case for case in FULL_CASES if case not in DEFAULT_CASES], ids=Case.label)
def test_matches_a1111_full(a1111_models, a1111_parity_rows, case):
    run_case(a1111_models, a1111_parity_rows, case)
