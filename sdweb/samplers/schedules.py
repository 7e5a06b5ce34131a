"""A1111's "Schedule type" sigma schedules as pure functions of the model's discrete sigmas.

``model_sigmas`` is the model's training-noise table, ``sqrt((1 - alphas_cumprod) / alphas_cumprod)``,
indexed by training timestep (ascending). Every function returns the sigmas a k-diffusion sampler
walks through for ``n`` steps: ``n`` values from high to low, then a final 0 (KL Optimal ends at
sigma_min instead, as A1111's does). Written from the published formulas (Karras et al. 2022,
k-diffusion's discrete schedules, NVIDIA's Align Your Steps tables, Lee et al. 2024 for Beta).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# NVIDIA's published AYS tables end at this sigma; diffusers' AysSchedules store 0.0 in its place.
AYS_SIGMA_MIN = 0.029
BETA_DIST_ALPHA = 0.6
BETA_DIST_BETA = 0.6


def model_sigmas_from_alphas_cumprod(alphas_cumprod: Sequence[float] | np.ndarray) -> np.ndarray:
    """sigma(t) for every training timestep t; a zero-terminal-SNR last entry is clamped like diffusers."""
    ac = np.clip(np.asarray(alphas_cumprod, dtype=np.float64), 2.0**-24, 1.0)
    return np.sqrt((1.0 - ac) / ac)


def t_to_sigma(model_sigmas: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Sigma at (fractional) timesteps, interpolating log sigma between neighbouring integers."""
    log_sigmas = np.log(model_sigmas)
    return np.exp(np.interp(t, np.arange(len(model_sigmas)), log_sigmas))


def sigma_to_t(model_sigmas: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Inverse of :func:`t_to_sigma` (fractional timesteps), clamped to the training range."""
    log_sigmas = np.log(model_sigmas)
    log_sigma = np.log(np.maximum(np.asarray(sigma, dtype=np.float64), 1e-10))
    return np.interp(log_sigma, log_sigmas, np.arange(len(model_sigmas), dtype=np.float64))


def _append_zero(sigmas: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(sigmas, dtype=np.float64), [0.0]])


def uniform(model_sigmas: np.ndarray, n: int) -> np.ndarray:
    """The model's own schedule: n timesteps evenly spaced from the last to the first."""
    t = np.linspace(len(model_sigmas) - 1, 0, n)
    return _append_zero(t_to_sigma(model_sigmas, t))


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, n)
    min_inv, max_inv = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return _append_zero((max_inv + ramp * (min_inv - max_inv)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> np.ndarray:
    return _append_zero(np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), n)))


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> np.ndarray:
    ramp = np.linspace(1.0, 0.0, n) ** rho
    log_min, log_max = math.log(sigma_min), math.log(sigma_max)
    return _append_zero(np.exp(ramp * (log_max - log_min) + log_min))


def sgm_uniform(model_sigmas: np.ndarray, n: int) -> np.ndarray:
    """n + 1 evenly spaced timesteps from sigma_max to sigma_min, the last one dropped."""
    start, end = sigma_to_t(model_sigmas, np.array([model_sigmas[-1], model_sigmas[0]]))
    t = np.linspace(start, end, n + 1)[:-1]
    return _append_zero(t_to_sigma(model_sigmas, t))


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> np.ndarray:
    """tan of a linear ramp in arctan(sigma); n + 1 values ending at sigma_min (no appended zero)."""
    frac = np.arange(n + 1, dtype=np.float64) / n
    return np.tan(frac * math.atan(sigma_min) + (1.0 - frac) * math.atan(sigma_max))


def _loglinear_interp(values: np.ndarray, count: int) -> np.ndarray:
    ascending = np.log(np.asarray(values, dtype=np.float64)[::-1])
    xs = np.linspace(0.0, 1.0, len(ascending))
    return np.exp(np.interp(np.linspace(0.0, 1.0, count), xs, ascending))[::-1].copy()


def align_your_steps(n: int, table: Sequence[float]) -> np.ndarray:
    """AYS table (11 sigmas from sigma_max to 0.029) log-linearly resampled to n sigmas, then 0."""
    values = np.asarray(table, dtype=np.float64)
    if n == len(values):
        return _append_zero(values)
    return _append_zero(_loglinear_interp(values, n))


def simple(model_sigmas: np.ndarray, n: int) -> np.ndarray:
    """Every (T / n)-th model sigma, counting down from the top."""
    stride = len(model_sigmas) / n
    picked = [model_sigmas[-(1 + int(i * stride))] for i in range(n)]
    return _append_zero(np.array(picked))


def normal(model_sigmas: np.ndarray, n: int) -> np.ndarray:
    """n timesteps evenly spaced between sigma_max's and sigma_min's timestep (equals Uniform)."""
    start, end = sigma_to_t(model_sigmas, np.array([model_sigmas[-1], model_sigmas[0]]))
    return _append_zero(t_to_sigma(model_sigmas, np.linspace(start, end, n)))


def ddim_uniform(model_sigmas: np.ndarray, n: int) -> np.ndarray:
    """DDIM-style stride over model sigmas from timestep 1 up; can give more than n steps, as A1111's does."""
    stride = max(len(model_sigmas) // n, 1)
    picked = model_sigmas[1::stride]
    return _append_zero(picked[::-1])


def beta(
    n: int, sigma_min: float, sigma_max: float, alpha: float = BETA_DIST_ALPHA, beta_: float = BETA_DIST_BETA
) -> np.ndarray:
    """Sigmas placed by the Beta(alpha, beta) quantile function between sigma_max and sigma_min."""
    from scipy.stats import beta as beta_dist  # scipy is a diffusers dependency for this schedule only

    quantiles = beta_dist.ppf(1.0 - np.linspace(0.0, 1.0, n), alpha, beta_)
    return _append_zero(sigma_min + quantiles * (sigma_max - sigma_min))


def a1111_sigmas(name: str, model_sigmas: np.ndarray, n: int, ays_table: Sequence[float] | None = None) -> np.ndarray:
    """The schedule ``name`` (SchedulerInfo.name) for n steps; "automatic" is not a schedule here."""
    sigma_min, sigma_max = float(model_sigmas[0]), float(model_sigmas[-1])
    if name == "uniform":
        return uniform(model_sigmas, n)
    if name == "karras":
        return karras(n, sigma_min, sigma_max)
    if name == "exponential":
        return exponential(n, sigma_min, sigma_max)
    if name == "polyexponential":
        return polyexponential(n, sigma_min, sigma_max)
    if name == "sgm_uniform":
        return sgm_uniform(model_sigmas, n)
    if name == "kl_optimal":
        return kl_optimal(n, sigma_min, sigma_max)
    if name == "align_your_steps":
        if ays_table is None:
            raise ValueError("align_your_steps needs an AYS sigma table")
        return align_your_steps(n, ays_table)
    if name == "simple":
        return simple(model_sigmas, n)
    if name == "normal":
        return normal(model_sigmas, n)
    if name == "ddim":
        return ddim_uniform(model_sigmas, n)
    if name == "beta":
        return beta(n, sigma_min, sigma_max)
    raise ValueError(f"unknown schedule {name!r}")


def discard_penultimate(sigmas: np.ndarray) -> np.ndarray:
    """Drop the next-to-last sigma (A1111 computes steps + 1 sigmas for these samplers)."""
    return np.concatenate([sigmas[:-2], sigmas[-1:]])


def sigmas_to_timesteps(model_sigmas: np.ndarray, sigmas: np.ndarray, *, integer: bool) -> list[float]:
    """Timesteps for every sigma but the final target, strictly decreasing (duplicates after rounding dropped)."""
    t = sigma_to_t(model_sigmas, np.asarray(sigmas[:-1], dtype=np.float64))
    if integer:
        t = np.round(t)
    kept: list[float] = []
    for value in t.tolist():
        if not kept or value < kept[-1]:
            kept.append(int(value) if integer else float(value))
    return kept
