"""Sampling flow-matching models (rectified flow: x_sigma = (1 - sigma) * x0 + sigma * noise, the network
predicts the velocity noise - x0) with the same sampler functions as the SD families.

The k-diffusion samplers only need a denoiser that returns x0 and a sigma schedule: with x0 = x - sigma * v
their ODE derivative (x - x0) / sigma is the velocity, so Euler, Heun, DPM2, LMS and DPM++ 2M integrate the
flow exactly as they integrate a VE diffusion. What differs: the noise table (sigma in (0, 1], shifted), how
an img2img start is noised, and the ancestral step, which must keep x on the (1 - sigma, sigma) line.
"""

from __future__ import annotations

import math

import torch

from sdweb.samplers.context import SamplerContext
from sdweb.samplers.denoisers import ModelCall, ModelInput
from sdweb.samplers.discrete import DiscreteSchedule

TRAIN_STEPS = 1000

# The sampler functions that are meaningful for a flow model (run.SIGMA_FUNCTIONS names). The SDE samplers'
# noise terms, DPM fast / adaptive, Restart and the timestep samplers assume the VE or DDPM parametrisation.
FLOW_SAMPLER_FUNCTIONS = frozenset({
    "sample_euler", "sample_euler_ancestral", "sample_heun", "sample_dpm_2", "sample_dpm_2_ancestral",
    "sample_lms", "sample_dpmpp_2m",
})
FLOW_SCHEDULES = frozenset({"uniform", "simple", "normal", "sgm_uniform", "karras", "exponential", "beta",
                            "kl_optimal", "ddim", "polyexponential"})


def shifted(t: torch.Tensor, shift: float) -> torch.Tensor:
    """The shifted noise level of a timestep fraction t in (0, 1]: s*t / (1 + (s - 1)*t)."""
    return shift * t / (1 + (shift - 1) * t)


def unshifted(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """The inverse of :func:`shifted`."""
    return sigma / (shift - (shift - 1) * sigma)


def dynamic_shift(image_tokens: int, base_shift: float, max_shift: float, base_tokens: int,
                  max_tokens: int) -> float:
    """The shift e^mu of diffusers' dynamic shifting: mu linear in the image's token count between (base_tokens,
    base_shift) and (max_tokens, max_shift). Its exponential time shift e^mu / (e^mu + 1/t - 1) is the static
    shift's formula with s = e^mu."""
    slope = (max_shift - base_shift) / (max_tokens - base_tokens)
    return math.exp(base_shift + slope * (image_tokens - base_tokens))


def empirical_mu(image_tokens: int, steps: int) -> float:
    """Flux.2's mu (diffusers' `compute_empirical_mu`): linear in the token count, and below 4300 tokens also in the
    step count, between fits made at 10 and 200 steps."""
    at_200 = 0.00016927 * image_tokens + 0.45666666
    if image_tokens > 4300:
        return at_200
    at_10 = 8.73809524e-05 * image_tokens + 1.89833333
    slope = (at_200 - at_10) / 190.0
    return slope * steps + at_200 - 200.0 * slope


def stretched_to_terminal(sigmas: torch.Tensor, terminal: float) -> torch.Tensor:
    """diffusers' `shift_terminal`: the schedule (ending in 0) stretched so its last level before 0 is
    `terminal`, keeping its first: 1 - (1 - sigma) * (1 - terminal) / (1 - last)."""
    levels = sigmas[:-1] if len(sigmas) and float(sigmas[-1]) == 0 else sigmas
    if not len(levels) or float(levels[-1]) >= 1:
        return sigmas
    scale = (1 - levels[-1]) / (1 - terminal)
    return torch.cat([1 - (1 - levels) / scale, sigmas[len(levels):]])


class FlowSchedule(DiscreteSchedule):
    """The noise table of a flow model, as a :class:`DiscreteSchedule` so the schedule functions work unchanged:
    ``sigmas[i]`` is the level of training timestep (i + 1) / 1000, ascending; timesteps are continuous.
    ``terminal`` > 0: every schedule drawn from it is stretched to end there (:func:`stretched_to_terminal`)."""

    def __init__(self, shift: float, device: torch.device | str = "cpu", terminal: float = 0.0) -> None:
        self.shift = float(shift)
        self.terminal = float(terminal)
        steps = torch.arange(1, TRAIN_STEPS + 1, dtype=torch.float32, device=device) / TRAIN_STEPS
        self.sigmas = shifted(steps, self.shift)
        self.log_sigmas = self.sigmas.log()

    def to(self, device: torch.device | str) -> FlowSchedule:
        return FlowSchedule(self.shift, device, self.terminal)

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional index into ``sigmas`` (continuous: the flow's timestep is a real number)."""
        return unshifted(sigma, self.shift) * TRAIN_STEPS - 1

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return shifted((t.float() + 1) / TRAIN_STEPS, self.shift)


class FlowDenoiser:
    """Velocity network -> x0 (x - sigma * v); the model call gets the unscaled x and sigma as timestep."""

    def __init__(self, model: ModelCall) -> None:
        self.model = model

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, step: int, with_uncond: bool) -> torch.Tensor:
        velocity = self.model(ModelInput(x, sigma, sigma, step, with_uncond))
        return x - velocity * sigma[:, None, None, None]


def noised_start(init_latent: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """img2img: the init latent moved to noise level sigma along the flow line."""
    return init_latent * (1 - sigma) + noise * sigma


def _ancestral_rf_step(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor,
                       eta: float, noise: torch.Tensor) -> torch.Tensor:
    """Step deterministically down to sigma_down, rescale onto the flow line, then add fresh noise so the
    result sits at sigma_next: sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)."""
    sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
    alpha_next, alpha_down = 1 - sigma_next, 1 - sigma_down
    renoise = (sigma_next ** 2 - sigma_down ** 2 * alpha_next ** 2 / alpha_down ** 2).clamp(min=0) ** 0.5
    ratio = sigma_down / sigma
    x = ratio * x + (1 - ratio) * denoised
    return x * (alpha_next / alpha_down) + noise * renoise


def sample_euler_ancestral_rf(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Euler a for flow models: the last step lands on x0, every other adds ``eta`` of fresh noise back."""
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    noise = ctx.noise(x)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        ctx.report(i, x, denoised, sigmas[i])
        if host[i + 1] == 0 or not ctx.eta:
            x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
            continue
        x = _ancestral_rf_step(x, denoised, sigmas[i], sigmas[i + 1], ctx.eta,
                               noise(sigmas[i], sigmas[i + 1]) * ctx.s_noise)
    return x


def sample_dpm_2_ancestral_rf(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """DPM2 a for flow models: a DPM2 (midpoint) step down to sigma_down, then the flow-line renoise."""
    noise = ctx.noise(x)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = ctx.model(x, sigma * s_in)
        ctx.report(i, x, denoised, sigma)
        d = (x - denoised) / sigma
        if sigma_next == 0:
            x = x + d * (sigma_next - sigma)
            continue
        sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * ctx.eta)
        sigma_mid = sigma.log().lerp(sigma_down.log(), 0.5).exp()
        x_mid = x + d * (sigma_mid - sigma)
        denoised_mid = ctx.model(x_mid, sigma_mid * s_in)
        x_down_d = (x_mid - denoised_mid) / sigma_mid
        x_down = x + x_down_d * (sigma_down - sigma)
        # the midpoint's x0 estimate stands in for denoised in the flow-line rescale
        alpha_next, alpha_down = 1 - sigma_next, 1 - sigma_down
        renoise = (sigma_next ** 2 - sigma_down ** 2 * alpha_next ** 2 / alpha_down ** 2).clamp(min=0) ** 0.5
        x = x_down * (alpha_next / alpha_down) + noise(sigma, sigma_next) * ctx.s_noise * renoise
    return x


ANCESTRAL_RF = {"sample_euler_ancestral": sample_euler_ancestral_rf,
                "sample_dpm_2_ancestral": sample_dpm_2_ancestral_rf}
