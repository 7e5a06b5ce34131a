"""Restart sampling (Xu et al. 2023, "Restart Sampling for Improving Generative Processes", arXiv:2306.14878)
with A1111's automatic restart plan: Heun steps over a Karras schedule and, for 20 or more steps, a block of
steps around sigma 0.1 .. 2 run again after re-noising (once, twice for 36+ steps). The re-noising draws from
the per-image generators."""

from __future__ import annotations

import torch

from sdweb.samplers.context import SamplerContext
from sdweb.samplers.kdiffusion import to_d
from sdweb.samplers.schedules import karras

RESTART_AT_SIGMA = 0.1
RESTART_TO_SIGMA = 2.0


def restart_plan(sigmas: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The (possibly shortened) main schedule and the list of (sigma, sigma_next) steps, restarts included."""
    steps = sigmas.shape[0] - 1
    restarts: dict[float, tuple[int, int, float]] = {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item()).to(sigmas.device)
        restarts = {RESTART_AT_SIGMA: (restart_steps + 1, restart_times, RESTART_TO_SIGMA)}
    by_index = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restarts.items()}
    step_list = []
    for i in range(len(sigmas) - 1):
        step_list.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in by_index:
            restart_steps, restart_times, restart_max = by_index[i + 1]
            min_idx = i + 1
            max_idx = int(torch.argmin(abs(sigmas - restart_max), dim=0))
            if max_idx < min_idx:
                restart_sigmas = karras(restart_steps, sigmas[min_idx].item(), sigmas[max_idx].item()
                                        ).to(sigmas.device)[:-1]
                for _ in range(restart_times):
                    step_list.extend(zip(restart_sigmas[:-1], restart_sigmas[1:], strict=True))
    return sigmas, step_list


def sample_restart(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    _, step_list = restart_plan(sigmas)
    last_sigma = None
    for step_id, (old_sigma, new_sigma) in enumerate(step_list):
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            x = x + ctx.randn_like(x) * ctx.s_noise * (old_sigma ** 2 - last_sigma ** 2) ** 0.5
        denoised = ctx.model(x, old_sigma * s_in)
        d = to_d(x, old_sigma, denoised)
        ctx.report(step_id, x, denoised, old_sigma)
        dt = new_sigma - old_sigma
        if new_sigma == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = ctx.model(x_2, new_sigma * s_in)
            d_2 = to_d(x_2, new_sigma, denoised_2)
            x = x + (d + d_2) / 2 * dt
        last_sigma = new_sigma
    return x
