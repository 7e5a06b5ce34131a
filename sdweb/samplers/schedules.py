"""A1111's "Schedule type" sigma schedules (a1111.md §5.2), in float32 torch as A1111 computes them.

Every function returns the sigmas a sampler walks through for ``n`` steps: ``n`` values from high to low,
then 0 (KL Optimal ends at sigma_min instead, as A1111's does). Written from the published formulas
(Karras et al. 2022; k-diffusion's exponential / polyexponential and discrete schedules; NVIDIA's Align Your
Steps tables; Lee et al. 2024 for Beta). ``model`` is the model's :class:`DiscreteSchedule`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sdweb.samplers.discrete import DiscreteSchedule, append_zero

BETA_DIST_ALPHA = 0.6
BETA_DIST_BETA = 0.6
# NVIDIA's published Align Your Steps tables (10 steps, sigma_max .. sigma_min)
AYS_SD1 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


@dataclass(frozen=True)
class ScheduleOptions:
    """The settings A1111 reads for a schedule (0 = the model's own / the schedule's default)."""

    sigma_min: float = 0.0
    sigma_max: float = 0.0
    rho: float = 0.0
    beta_alpha: float = BETA_DIST_ALPHA
    beta_beta: float = BETA_DIST_BETA
    is_sdxl: bool = False


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    return append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    ramp = torch.linspace(1, 0, n) ** rho
    return append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def uniform(model: DiscreteSchedule, n: int) -> torch.Tensor:
    return model.get_sigmas(n)


def _timestep_range(model: DiscreteSchedule, sigma_min: float, sigma_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    return model.sigma_to_t(torch.tensor(sigma_max)), model.sigma_to_t(torch.tensor(sigma_min))


def sgm_uniform(model: DiscreteSchedule, n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """n + 1 evenly spaced timesteps from sigma_max's to sigma_min's, the last one dropped, then 0."""
    start, end = _timestep_range(model, sigma_min, sigma_max)
    sigmas = [model.t_to_sigma(t) for t in torch.linspace(start, end, n + 1)[:-1]]
    return torch.FloatTensor([*sigmas, 0.0])


def normal(model: DiscreteSchedule, n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    start, end = _timestep_range(model, sigma_min, sigma_max)
    sigmas = [model.t_to_sigma(t) for t in torch.linspace(start, end, n)]
    return torch.FloatTensor([*sigmas, 0.0])


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """tan of a linear ramp in arctan(sigma); n + 1 values ending at sigma_min (no appended zero)."""
    alpha_min = torch.arctan(torch.tensor(sigma_min))
    alpha_max = torch.arctan(torch.tensor(sigma_max))
    step = torch.arange(n + 1)
    return torch.tan(step / n * alpha_min + (1.0 - step / n) * alpha_max)


def _loglinear_interp(values: Sequence[float], count: int) -> np.ndarray:
    xs = np.linspace(0, 1, len(values))
    ys = np.log(np.asarray(values)[::-1])
    return np.exp(np.interp(np.linspace(0, 1, count), xs, ys))[::-1].copy()


def align_your_steps(n: int, is_sdxl: bool) -> torch.Tensor:
    table = AYS_SDXL if is_sdxl else AYS_SD1
    values = np.append(_loglinear_interp(table, n), [0.0]) if n != len(table) else [*table, 0.0]
    return torch.FloatTensor(values)


def simple(model: DiscreteSchedule, n: int) -> torch.Tensor:
    """Every (T / n)-th model sigma, counting down from the top."""
    stride = len(model.sigmas) / n
    return torch.FloatTensor([float(model.sigmas[-(1 + int(i * stride))]) for i in range(n)] + [0.0])


def ddim_uniform(model: DiscreteSchedule, n: int) -> torch.Tensor:
    """Every (T // n)-th model sigma from timestep 1 up (can give more than n steps, as A1111's does)."""
    stride = max(len(model.sigmas) // n, 1)
    picked = [float(model.sigmas[t]) for t in range(1, len(model.sigmas), stride)]
    return torch.FloatTensor([*picked[::-1], 0.0])


def beta(n: int, sigma_min: float, sigma_max: float, alpha: float, beta_: float) -> torch.Tensor:
    """Sigmas placed by the Beta(alpha, beta) quantile function between sigma_max and sigma_min."""
    from scipy import stats  # scipy comes with diffusers; only this schedule needs it

    quantiles = [stats.beta.ppf(x, alpha, beta_) for x in 1 - np.linspace(0, 1, n)]
    return torch.FloatTensor([sigma_min + q * (sigma_max - sigma_min) for q in quantiles] + [0.0])


def schedule_sigmas(name: str, model: DiscreteSchedule, n: int, options: ScheduleOptions = ScheduleOptions(),  # noqa: B008
                    ) -> torch.Tensor:
    """The schedule ``name`` (SchedulerInfo.name) for ``n`` steps over the model's noise range (on the CPU)."""
    model = model.to("cpu")
    sigma_min = options.sigma_min or float(model.sigma_min)
    sigma_max = options.sigma_max or float(model.sigma_max)
    if name == "uniform":
        return uniform(model, n)
    if name == "karras":
        return karras(n, sigma_min, sigma_max, options.rho or 7.0)
    if name == "exponential":
        return exponential(n, sigma_min, sigma_max)
    if name == "polyexponential":
        return polyexponential(n, sigma_min, sigma_max, options.rho or 1.0)
    if name == "sgm_uniform":
        return sgm_uniform(model, n, sigma_min, sigma_max)
    if name == "kl_optimal":
        return kl_optimal(n, sigma_min, sigma_max)
    if name == "align_your_steps":
        return align_your_steps(n, options.is_sdxl)
    if name == "simple":
        return simple(model, n)
    if name == "normal":
        return normal(model, n, sigma_min, sigma_max)
    if name == "ddim":
        return ddim_uniform(model, n)
    if name == "beta":
        return beta(n, sigma_min, sigma_max, options.beta_alpha, options.beta_beta)
    raise ValueError(f"unknown schedule {name!r}")


def discard_penultimate(sigmas: torch.Tensor) -> torch.Tensor:
    """Drop the next-to-last sigma (A1111 computes steps + 1 sigmas for these samplers)."""
    return torch.cat([sigmas[:-2], sigmas[-1:]])
