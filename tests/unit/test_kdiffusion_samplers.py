"""Our sampler functions against k-diffusion's own (the library A1111 pins), on a cheap nonlinear denoiser with
A1111's per-image noise: same floating-point results, step by step."""

import pytest
import torch

from sdweb.samplers import dpm_solver, kdiffusion, restart
from sdweb.samplers.context import SamplerContext
from sdweb.samplers.rng import ImageRNG
from sdweb.samplers.schedules import karras
from sdweb.testing import kdiffusion_reference

pytestmark = pytest.mark.skipif(not kdiffusion_reference.available(), reason="k-diffusion (dev extra) missing")

SEEDS = [1, 12345]
SHAPE = (4, 6, 5)


def toy_denoiser(x, sigma):
    """A smooth nonlinear stand-in for a UNet: pulls x towards a fixed pattern, differently per sigma."""
    pattern = torch.linspace(-1, 1, x[0].numel()).reshape(x.shape[1:])
    s = sigma.reshape(-1, 1, 1, 1)
    return torch.tanh(x / (1 + s)) * 0.7 + pattern * (s / (1 + s)) * 0.3


def _rng():
    return ImageRNG(SHAPE, SEEDS, source="CPU")


def _ours(function, sigmas, eta=1.0, brownian=False, sigma_range=None, steps=0, solver_type="midpoint"):
    rng = _rng()
    x = rng.next() * sigmas[0]
    ctx = SamplerContext(model=toy_denoiser, randn_like=lambda _: rng.next(), eta=eta, solver_type=solver_type,
                         sigma_range=sigma_range, steps=steps)
    if brownian:
        low, high = kdiffusion.sigma_bounds(sigmas)
        ctx.noise_sampler = kdiffusion.BrownianTreeNoiseSampler(x, low, high, SEEDS)
    return function(ctx, x, sigmas)


def _reference(name, sigmas, brownian=False, extra=None):
    sampling, _ = kdiffusion_reference.load()
    rng = _rng()
    x = rng.next() * sigmas[0]
    kwargs = dict(extra or {})
    if brownian:
        low, high = sigmas[sigmas > 0].min(), sigmas.max()
        kwargs["noise_sampler"] = sampling.BrownianTreeNoiseSampler(x, low, high, seed=SEEDS)
    if "sigma_min" not in kwargs:
        kwargs["sigmas"] = sigmas
    with kdiffusion_reference.a1111_noise(sampling, rng.next):
        return getattr(sampling, name)(lambda x, sigma: toy_denoiser(x, sigma), x, disable=True, **kwargs)


SIGMAS = karras(7, 0.0292, 14.6146)
CASES = [
    ("sample_euler", kdiffusion.sample_euler, False),
    ("sample_euler_ancestral", kdiffusion.sample_euler_ancestral, False),
    ("sample_heun", kdiffusion.sample_heun, False),
    ("sample_dpm_2", kdiffusion.sample_dpm_2, False),
    ("sample_dpm_2_ancestral", kdiffusion.sample_dpm_2_ancestral, False),
    ("sample_lms", kdiffusion.sample_lms, False),
    ("sample_dpmpp_2s_ancestral", kdiffusion.sample_dpmpp_2s_ancestral, False),
    ("sample_dpmpp_sde", kdiffusion.sample_dpmpp_sde, True),
    ("sample_dpmpp_2m", kdiffusion.sample_dpmpp_2m, False),
    ("sample_dpmpp_2m_sde", kdiffusion.sample_dpmpp_2m_sde, True),
    ("sample_dpmpp_3m_sde", kdiffusion.sample_dpmpp_3m_sde, True),
]


@pytest.mark.parametrize(("name", "function", "brownian"), CASES, ids=[case[0] for case in CASES])
def test_sampler_matches_k_diffusion(name, function, brownian):
    ours = _ours(function, SIGMAS, brownian=brownian)
    reference = _reference(name, SIGMAS, brownian=brownian)
    assert torch.equal(ours, reference), (ours - reference).abs().max()


def test_dpmpp_2m_sde_heun_matches():
    ours = _ours(kdiffusion.sample_dpmpp_2m_sde, SIGMAS, brownian=True, solver_type="heun")
    assert torch.equal(ours, _reference("sample_dpmpp_2m_sde", SIGMAS, brownian=True, extra={"solver_type": "heun"}))


@pytest.mark.parametrize(("name", "function"), [("sample_dpm_fast", dpm_solver.sample_dpm_fast),
                                                ("sample_dpm_adaptive", dpm_solver.sample_dpm_adaptive)])
def test_dpm_fast_and_adaptive_match(name, function):
    sigma_min, sigma_max = 0.0292, 14.6146
    extra = {"sigma_min": sigma_min, "sigma_max": sigma_max, "eta": 1.0}
    if name == "sample_dpm_fast":
        extra["n"] = 7
    ours = _ours(function, SIGMAS, sigma_range=(sigma_min, sigma_max), steps=7)
    assert torch.equal(ours, _reference(name, SIGMAS, extra=extra))


def test_ancestral_noise_continues_the_image_generators():
    """Image 2 of a batch equals a single-image run with its seed (A1111's per-image generators)."""
    rng_batch = ImageRNG(SHAPE, SEEDS, source="CPU")
    rng_single = ImageRNG(SHAPE, SEEDS[1:], source="CPU")
    outs = []
    for rng in (rng_batch, rng_single):
        x = rng.next() * SIGMAS[0]
        ctx = SamplerContext(model=toy_denoiser, randn_like=lambda _, rng=rng: rng.next())
        outs.append(kdiffusion.sample_euler_ancestral(ctx, x, SIGMAS))
    assert torch.equal(outs[0][1], outs[1][0])


def test_restart_plan_adds_restart_steps():
    sigmas = karras(20, 0.0292, 14.6146)
    main, steps = restart.restart_plan(sigmas)
    assert len(main) == 20 - 9 + 1  # 11 main steps, 9 restart steps at sigma 0.1 .. 2
    assert len(steps) == 11 + 9
    increases = [i for i in range(1, len(steps)) if steps[i][0] > steps[i - 1][1]]
    assert len(increases) == 1  # one jump back up (re-noising)
