"""A1111's timestep samplers: DDIM (Song et al. 2020), DDIM CFG++ (Chung et al. 2024), PLMS (Liu et al. 2022),
UniPC (Zhao et al. 2023). They walk integer DDPM timesteps, not sigmas, and the CFG denoiser they call returns
the noise prediction eps. A1111's conventions are kept: timesteps ``range(0, 1000, 1000 // steps) + 1`` and a
loop of ``len(timesteps) - 1`` steps that stops at the first timestep (never at alpha = 1); DDIM draws its eta
noise from the per-image generators every step.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from sdweb.samplers.context import SamplerContext


class EpsDenoiser(Protocol):
    cfg_scale_multiplier: float
    last_uncond: torch.Tensor | None

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...


def ddim_timesteps(steps: int, train_steps: int = 1000) -> torch.Tensor:
    return torch.clip(torch.asarray(list(range(0, train_steps, train_steps // steps))) + 1, 0, train_steps - 1)


def _tables(alphas_cumprod: torch.Tensor, timesteps: torch.Tensor, eta: float) -> tuple:
    alphas = alphas_cumprod[timesteps]
    alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    prev = alphas_prev.cpu().numpy()
    current = alphas.cpu()
    # A1111's numpy/torch mix, to the last bit: (1 - prev) / (1 - alpha) is torch's reflected division, the
    # float32 reciprocal of 1 - alpha times the float64 numerator; the rest is float64
    ratio = (1 - prev) * (1 - current).reciprocal().double().numpy()
    sigmas = eta * np.sqrt(ratio * (1 - current.double().numpy() / prev))
    return alphas, alphas_prev, sqrt_one_minus_alphas, sigmas


def _ddim_loop(ctx: SamplerContext, x: torch.Tensor, timesteps: torch.Tensor, alphas_cumprod: torch.Tensor,
               cfg_pp: bool) -> torch.Tensor:
    model: EpsDenoiser = ctx.model  # type: ignore[assignment]
    alphas, alphas_prev, sqrt_one_minus, sigmas = _tables(alphas_cumprod, timesteps, ctx.eta)
    if cfg_pp:
        model.cfg_scale_multiplier = 1 / 12.5
    s_in = x.new_ones(x.shape[0])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model(x, timesteps[index].item() * s_in)
        direction_eps = model.last_uncond if cfg_pp else e_t
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sigma_t = sigmas[index].item() * s_x
        sqrt_one_minus_at = sqrt_one_minus[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        dir_xt = (1. - a_prev - sigma_t ** 2).sqrt() * direction_eps
        noise = sigma_t * ctx.randn_like(x)
        x = a_prev.sqrt() * pred_x0 + dir_xt + noise
        ctx.report(i, x, pred_x0, 0.0)
    return x


def sample_ddim(ctx: SamplerContext, x: torch.Tensor, timesteps: torch.Tensor,
                alphas_cumprod: torch.Tensor) -> torch.Tensor:
    return _ddim_loop(ctx, x, timesteps, alphas_cumprod, cfg_pp=False)


def sample_ddim_cfgpp(ctx: SamplerContext, x: torch.Tensor, timesteps: torch.Tensor,
                      alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """CFG++: the CFG scale is divided by 12.5 and x_t is re-noised along the unconditional eps."""
    return _ddim_loop(ctx, x, timesteps, alphas_cumprod, cfg_pp=True)


def sample_plms(ctx: SamplerContext, x: torch.Tensor, timesteps: torch.Tensor,
                alphas_cumprod: torch.Tensor) -> torch.Tensor:
    alphas, alphas_prev, sqrt_one_minus, _ = _tables(alphas_cumprod, timesteps, 0.0)
    s_in = x.new_ones([x.shape[0]])
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    old_eps: list[torch.Tensor] = []

    def step(x: torch.Tensor, e_t: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sqrt_one_minus_at = sqrt_one_minus[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus_at * e_t) / a_t.sqrt()
        dir_xt = (1. - a_prev).sqrt() * e_t
        return a_prev.sqrt() * pred_x0 + dir_xt, pred_x0

    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        ts = timesteps[index].item() * s_in
        t_next = timesteps[max(index - 1, 0)].item() * s_in
        e_t = ctx.model(x, ts)
        if not old_eps:  # pseudo improved Euler (2nd order) to start
            x_prev, _ = step(x, e_t, index)
            e_t_next = ctx.model(x_prev, t_next)
            e_t_prime = (e_t + e_t_next) / 2
        elif len(old_eps) == 1:
            e_t_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_t_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_t_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x_prev, pred_x0 = step(x, e_t_prime, index)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        x = x_prev
        ctx.report(i, x, pred_x0, 0.0)
    return x
