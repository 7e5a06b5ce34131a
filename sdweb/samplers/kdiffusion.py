"""The k-diffusion samplers A1111 runs, written for sdweb: same algorithms, same arithmetic order (so the same
floating-point results), with the noise source and the callback passed explicitly (:class:`SamplerContext`).

The algorithms are those of Katherine Crowson's k-diffusion (MIT licence, Copyright (c) 2022 Katherine
Crowson), which A1111 pins: Karras et al. 2022 (Euler, Heun, churn), DPM-Solver (Lu et al. 2022) and
DPM-Solver++ (Lu et al. 2022), linear multistep, ancestral steps, Brownian-tree SDE noise. Each function
takes ``(ctx, x, sigmas)`` and returns the final x; ``ctx.model(x, sigma)`` is the CFG denoiser returning x0.
"""

from __future__ import annotations

import torch
import torchsde
from scipy import integrate

from sdweb.samplers.context import SamplerContext


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The Karras ODE derivative (A1111 divides by sigma as given; for a scalar sigma that is k-diffusion's)."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0) -> tuple:
    """(sigma_down, sigma_up): where a deterministic step lands and how much fresh noise is added back."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5
    # min() of two GPU tensors would wait for the GPU; torch.minimum gives the same value without waiting
    sigma_up = torch.minimum(sigma_to, sigma_up) if isinstance(sigma_up, torch.Tensor) else min(sigma_to, sigma_up)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


class BrownianTreeNoiseSampler:
    """Unit-variance increments of one Brownian tree per image (torchsde), seeded with the image seeds, so
    the SDE samplers' noise does not depend on the batch (A1111's per-image trees)."""

    def __init__(self, x: torch.Tensor, sigma_min: torch.Tensor, sigma_max: torch.Tensor, seeds: list[int]) -> None:
        t0, t1 = torch.as_tensor(sigma_min), torch.as_tensor(sigma_max)
        self.t0, self.t1, self.sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        if len(seeds) != x.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for a batch of {x.shape[0]}")
        w0 = torch.zeros_like(x)[0]
        self.trees = [torchsde.BrownianTree(self.t0, w0, self.t1, entropy=seed) for seed in seeds]

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        low, high, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        w = torch.stack([tree(low, high) for tree in self.trees]) * (self.sign * sign)
        return w / (t1 - t0).abs().sqrt()


def _churn(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Karras' stochastic churn before a step (x, sigma_hat); draws noise every step, as k-diffusion does."""
    gamma = 0.0
    if ctx.s_churn and ctx.s_tmin <= sigmas[i] <= ctx.s_tmax:  # (no churn: no comparison, which would sync)
        gamma = min(ctx.s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1)
    eps = ctx.randn_like(x) * ctx.s_noise
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat ** 2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


def sample_euler(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(ctx, x, sigmas, i)
        denoised = ctx.model(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        ctx.report(i, x, denoised, sigmas[i])
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


def sample_euler_ancestral(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    noise = ctx.noise(x)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta=ctx.eta)
        ctx.report(i, x, denoised, sigmas[i])
        d = to_d(x, sigmas[i], denoised)
        x = x + d * (sigma_down - sigmas[i])
        if host[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * ctx.s_noise * sigma_up
    return x


def sample_heun(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(ctx, x, sigmas, i)
        denoised = ctx.model(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        ctx.report(i, x, denoised, sigmas[i])
        dt = sigmas[i + 1] - sigma_hat
        if host[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = ctx.model(x_2, sigmas[i + 1] * s_in)
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            x = x + (d + d_2) / 2 * dt
    return x


def sample_dpm_2(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(ctx, x, sigmas, i)
        denoised = ctx.model(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        ctx.report(i, x, denoised, sigmas[i])
        if host[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            denoised_2 = ctx.model(x_2, sigma_mid * s_in)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


def sample_dpm_2_ancestral(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    noise = ctx.noise(x)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta=ctx.eta)
        ctx.report(i, x, denoised, sigmas[i])
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = ctx.model(x_2, sigma_mid * s_in)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigma_down - sigmas[i])
            x = x + noise(sigmas[i], sigmas[i + 1]) * ctx.s_noise * sigma_up
    return x


def _lms_coefficient(order: int, t: list[float], i: int, j: int) -> float:
    def basis(tau: float) -> float:
        product = 1.0
        for k in range(order):
            if j != k:
                product *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return product

    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


def sample_lms(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor, order: int = 4) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    sigmas_cpu = sigmas.detach().cpu().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        ctx.report(i, x, denoised, sigmas[i])
        current = min(i + 1, order)
        coefficients = [_lms_coefficient(current, sigmas_cpu, i, j) for j in range(current)]
        x = x + sum(c * d for c, d in zip(coefficients, reversed(ds), strict=False))
    return x


def _sigma_fn(t: torch.Tensor) -> torch.Tensor:
    return t.neg().exp()


def _t_fn(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.log().neg()


def sample_dpmpp_2s_ancestral(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    noise = ctx.noise(x)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta=ctx.eta)
        ctx.report(i, x, denoised, sigmas[i])
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = _t_fn(sigmas[i]), _t_fn(sigma_down)
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (_sigma_fn(s) / _sigma_fn(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = ctx.model(x_2, _sigma_fn(s) * s_in)
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised_2
        if host[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * ctx.s_noise * sigma_up
    return x


def sample_dpmpp_sde(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor, r: float = 1 / 2) -> torch.Tensor:
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    noise = ctx.noise(x)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        ctx.report(i, x, denoised, sigmas[i])
        if host[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        sd, su = ancestral_step(_sigma_fn(t), _sigma_fn(s), ctx.eta)
        s_ = _t_fn(sd)
        x_2 = (_sigma_fn(s_) / _sigma_fn(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise(_sigma_fn(t), _sigma_fn(s)) * ctx.s_noise * su
        denoised_2 = ctx.model(x_2, _sigma_fn(s) * s_in)
        sd, su = ancestral_step(_sigma_fn(t), _sigma_fn(t_next), ctx.eta)
        t_next_ = _t_fn(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (_sigma_fn(t_next_) / _sigma_fn(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise(_sigma_fn(t), _sigma_fn(t_next)) * ctx.s_noise * su
    return x


def sample_dpmpp_2m(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        ctx.report(i, x, denoised, sigmas[i])
        t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or host[i + 1] == 0:
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - _t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def sample_dpmpp_2m_sde(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    if ctx.solver_type not in ("heun", "midpoint"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    noise = ctx.noise(x)
    s_in = x.new_ones([x.shape[0]])
    old_denoised, h_last, h = None, None, None
    eta = ctx.eta
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        ctx.report(i, x, denoised, sigmas[i])
        if host[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if ctx.solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() \
                    * ctx.s_noise
        old_denoised = denoised
        h_last = h
    return x


def sample_dpmpp_3m_sde(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    noise = ctx.noise(x)
    s_in = x.new_ones([x.shape[0]])
    denoised_1, denoised_2 = None, None
    h, h_1, h_2 = None, None, None
    eta = ctx.eta
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        ctx.report(i, x, denoised, sigmas[i])
        if host[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                r = h_1 / h
                d = (denoised - denoised_1) / r
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * d
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() \
                    * ctx.s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


def sample_lcm(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """LCM (Luo et al. 2023): jump to the consistency model's x0, then re-noise to the next sigma."""
    host = sigmas.tolist()  # the comparisons below on host floats: one wait for the GPU, not one per step
    noise = ctx.noise(x)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = ctx.model(x, sigmas[i] * s_in)
        ctx.report(i, x, denoised, sigmas[i])
        x = denoised
        if host[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(sigmas[i], sigmas[i + 1])
    return x


def sigma_bounds(sigmas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The interval a Brownian tree must cover for these sigmas (the smallest non-zero and the largest)."""
    return sigmas[sigmas > 0].min(), sigmas.max()

