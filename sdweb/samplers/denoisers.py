"""From a raw noise-prediction network to what the samplers call: A1111's CFG denoiser over a CompVis-style
discrete denoiser.

The network is reached through one callable the model engine provides (:class:`ModelCall`): it gets the
scaled batch, the timesteps, the sigmas, the evaluation index (prompt editing and the refiner switch follow
it) and whether the rows carry the negative prompt, and returns the raw output (eps or v). Rows are laid out
as A1111 does: for each image its AND sub-prompts in order, then one negative row per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from sdweb.samplers.discrete import DiscreteSchedule


@dataclass
class ModelInput:
    x: torch.Tensor  # the scaled network input (c_in applied)
    t: torch.Tensor  # fractional DDPM timesteps, one per row
    sigma: torch.Tensor  # the noise level of each row (k-diffusion samplers), or None for timestep samplers
    step: int  # model evaluation index (A1111's CFG denoiser step)
    with_uncond: bool  # the last len(x) / (1 + len(weights)) rows are the negative prompt's


class ModelCall(Protocol):
    def weights(self, step: int) -> list[float]:
        """The AND sub-prompt weights in effect at this evaluation ([1.0] without AND)."""

    def __call__(self, inputs: ModelInput) -> torch.Tensor:
        """The network's raw output (eps, or v for v-prediction models) for every row."""


RowDenoiser = Callable[[ModelInput, torch.Tensor], torch.Tensor]  # (inputs, unscaled x) -> combinable output


class CompVisDenoiser:
    """k-diffusion's CompVis(V)Denoiser: x0 = x + eps * -sigma, or v scaled with c_skip / c_out (sigma_data 1)."""

    def __init__(self, model: ModelCall, schedule: DiscreteSchedule, v_prediction: bool) -> None:
        self.model = model
        self.schedule = schedule
        self.v_prediction = v_prediction

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, step: int, with_uncond: bool) -> torch.Tensor:
        sigma_b = sigma[:, None, None, None]
        c_in = 1 / (sigma_b ** 2 + 1.0) ** 0.5
        output = self.model(ModelInput(x * c_in, self.schedule.sigma_to_t(sigma), sigma, step, with_uncond))
        if not self.v_prediction:
            return x + output * -sigma_b
        c_skip = 1.0 / (sigma_b ** 2 + 1.0)
        c_out = -sigma_b * 1.0 / (sigma_b ** 2 + 1.0) ** 0.5
        return output * c_out + x * c_skip


class LCMDenoiser:
    """A1111's LCM denoiser: the model's 50 LCM timesteps (every 20th, ending at 999) as its discrete table,
    and the consistency boundary condition (c_skip, c_out with sigma_data 0.5, timestep scaling 10)."""

    ORIGINAL_STEPS = 50

    def __init__(self, model: ModelCall, alphas_cumprod: torch.Tensor, v_prediction: bool) -> None:
        total = len(alphas_cumprod)
        self.skip = total // self.ORIGINAL_STEPS
        valid = torch.zeros(self.ORIGINAL_STEPS, dtype=torch.float32, device=alphas_cumprod.device)
        for k in range(self.ORIGINAL_STEPS):
            valid[self.ORIGINAL_STEPS - 1 - k] = alphas_cumprod[total - 1 - k * self.skip]
        self.schedule = LCMSchedule(valid, self.skip)
        self.inner = CompVisDenoiser(model, self.schedule, v_prediction)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, step: int, with_uncond: bool) -> torch.Tensor:
        denoised = self.inner(x, sigma, step, with_uncond)
        scaled_t = self.schedule.sigma_to_t(sigma)[:, None, None, None] * 10.0
        c_skip = 0.5 ** 2 / (scaled_t ** 2 + 0.5 ** 2)
        c_out = scaled_t / (scaled_t ** 2 + 0.5 ** 2) ** 0.5
        return c_out * denoised + c_skip * x


class LCMSchedule(DiscreteSchedule):
    """Nearest LCM timestep (no interpolation), reported in the model's 0..999 timesteps."""

    def __init__(self, alphas_cumprod: torch.Tensor, skip: int) -> None:
        super().__init__(alphas_cumprod)
        self.skip = skip

    def to(self, device: torch.device | str) -> LCMSchedule:
        return LCMSchedule(self.alphas_cumprod.to(device), self.skip)

    def get_sigmas(self, n: int) -> torch.Tensor:
        start = self.sigma_to_t(self.sigma_max)
        end = self.sigma_to_t(self.sigma_min)
        return torch.cat([self.t_to_sigma(torch.linspace(start, end, n, device=self.sigmas.device)),
                          self.sigmas.new_zeros([1])])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        dists = sigma.log() - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape) * self.skip + (self.skip - 1)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        index = ((t - (self.skip - 1)) / self.skip).float().clamp(0, len(self.sigmas) - 1)
        return super().t_to_sigma(index)


class TimestepEpsDenoiser:
    """For DDIM / PLMS / UniPC: the network at the given timesteps, as eps (v converted with alphas_cumprod)."""

    def __init__(self, model: ModelCall, alphas_cumprod: torch.Tensor, v_prediction: bool) -> None:
        self.model = model
        self.alphas_cumprod = alphas_cumprod
        self.v_prediction = v_prediction

    def __call__(self, x: torch.Tensor, t: torch.Tensor, step: int, with_uncond: bool) -> torch.Tensor:
        output = self.model(ModelInput(x, t, None, step, with_uncond))
        if not self.v_prediction:
            return output
        a = self.alphas_cumprod.to(x.device)[t.to(torch.int)][:, None, None, None]
        return torch.sqrt(a) * output + torch.sqrt(1 - a) * x


class InnerDenoiser(Protocol):
    def __call__(self, x: torch.Tensor, noise_level: torch.Tensor, step: int, with_uncond: bool) -> torch.Tensor: ...


@dataclass
class MaskBlend:
    """Inpainting with a normal model: keep the init latent where ``mask`` is 1 (A1111's p.mask), sample where
    ``nmask`` is 1; blended into the denoised prediction, or into x before the call for timestep samplers."""

    init_latent: torch.Tensor
    mask: torch.Tensor
    nmask: torch.Tensor
    before_denoising: bool = False

    def apply(self, latent: torch.Tensor) -> torch.Tensor:
        return latent * self.nmask + self.init_latent * self.mask


@dataclass
class UncondSkip:
    """When A1111's CFG denoiser leaves the negative prompt out of an evaluation: for the first ``skip_early``
    fraction of the ``total`` expected evaluations ("Ignore negative prompt during early sampling"), else below
    sigma ``min_sigma`` on every other evaluation, or every one with ``every_step`` (NGMS). Each image's first
    cond output then stands in for its uncond, so that evaluation is unguided. Records its infotext keys."""

    min_sigma: float = 0.0
    every_step: bool = False
    skip_early: float = 0.0
    total: int = 1
    params: dict = field(default_factory=dict)

    def applies(self, step: int, noise_level: torch.Tensor) -> bool:
        if self.skip_early and step / self.total <= self.skip_early:
            self.params["Skip Early CFG"] = self.skip_early
            return True
        if (step % 2 or self.every_step) and self.min_sigma > 0 and float(noise_level[0]) < self.min_sigma:
            self.params["NGMS"] = self.min_sigma
            if self.every_step:
                self.params["NGMS all steps"] = True
            return True
        return False


def renormed(x: torch.Tensor, guided: torch.Tensor, cond: torch.Tensor, patch: int) -> torch.Tensor:
    """Qwen-Image's true CFG on x0 predictions of a flow model: the guided velocity (x - x0) of each token (a
    patch x patch square of latent pixels, all channels) rescaled to the norm of the conditional one."""
    def token_norms(velocity: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = velocity.shape
        tokens = velocity.reshape(batch, channels, height // patch, patch, width // patch, patch)
        norms = torch.linalg.vector_norm(tokens, dim=(1, 3, 5), keepdim=True)
        return norms.expand_as(tokens).reshape(velocity.shape)

    velocity = x - guided
    return x - velocity * (token_norms(x - cond) / token_norms(velocity))


class CFGDenoiser:
    """A1111's classifier-free guidance: ``uncond + sum_i w_i * scale * (cond_i - uncond)`` per image, on the
    inner denoiser's outputs (x0 for k-diffusion samplers, eps for timestep samplers). ``renorm_patch`` > 0:
    Qwen-Image's rescaling of the guided prediction (:func:`renormed`; the conditional one is the prompts' mix at
    scale 1)."""

    def __init__(self, inner: InnerDenoiser, model: ModelCall, cfg_scale: float,
                 blend: MaskBlend | None = None, skip: UncondSkip | None = None, renorm_patch: int = 0) -> None:
        self.inner = inner
        self.renorm_patch = renorm_patch
        self.skip = skip
        self.model = model
        self.cfg_scale = float(cfg_scale)
        self.blend = blend
        self.step = 0
        self.cfg_scale_multiplier = 1.0  # DDIM CFG++ scales the guidance down
        self.last_uncond: torch.Tensor | None = None
        self.last_denoised: torch.Tensor | None = None  # for previews and interrupts

    def __call__(self, x: torch.Tensor, noise_level: torch.Tensor) -> torch.Tensor:
        weights = self.model.weights(self.step)
        batch, count = x.shape[0], len(weights)
        if self.blend is not None and self.blend.before_denoising:
            x = self.blend.apply(x)
        with_uncond = not (self.cfg_scale == 1.0 and weights == [1.0]) or self.cfg_scale_multiplier != 1.0
        skipped = with_uncond and self.skip is not None and self.skip.applies(self.step, noise_level)
        call_uncond = with_uncond and not skipped
        rows = torch.cat([torch.stack([x[i]] * count) for i in range(batch)] + ([x] if call_uncond else []))
        levels = torch.cat([torch.stack([noise_level[i]] * count) for i in range(batch)]
                           + ([noise_level] if call_uncond else []))
        out = self.inner(rows, levels, self.step, call_uncond)
        if skipped:
            out = torch.cat([out, torch.stack([out[i * count] for i in range(batch)])])
        if with_uncond:
            uncond = out[-batch:]
            self.last_uncond = uncond
            denoised = torch.clone(uncond)
            # a skipped negative prompt: A1111 combines with scale 1 (unguided even with AND sub-prompts)
            scale = 1.0 if skipped else self.cfg_scale * self.cfg_scale_multiplier
            for i in range(batch):
                for j, weight in enumerate(weights):
                    denoised[i] += (out[i * count + j] - uncond[i]) * (weight * scale)
            if self.renorm_patch:
                denoised = renormed(x, denoised, self._conditional(out, uncond, weights), self.renorm_patch)
        else:
            denoised = out
        if self.blend is not None and not self.blend.before_denoising:
            denoised = self.blend.apply(denoised)
        self.last_denoised = denoised
        self.step += 1
        return denoised

    @staticmethod
    def _conditional(out: torch.Tensor, uncond: torch.Tensor, weights: list[float]) -> torch.Tensor:
        """Each image's prompts mixed at scale 1 (its only prompt's output without AND)."""
        conditional = torch.clone(uncond)
        for i in range(uncond.shape[0]):
            for j, weight in enumerate(weights):
                conditional[i] += (out[i * len(weights) + j] - uncond[i]) * weight
        return conditional
