"""DPM fast and DPM adaptive: DPM-Solver (Lu et al. 2022, arXiv:2206.00927) in k-diffusion's formulation
(MIT licence, Copyright (c) 2022 Katherine Crowson), with ancestral noise when eta > 0 (A1111 passes its
"Eta for k-diffusion samplers", 1.0 by default). They integrate in t = -log(sigma) between two noise levels
and ignore the schedule type; the number of model evaluations is ``ctx.steps`` (fast) or found by a PID
step-size controller (adaptive)."""

from __future__ import annotations

import math

import torch

from sdweb.samplers.context import SamplerContext
from sdweb.samplers.kdiffusion import ancestral_step


class _PIDStepSizeController:
    def __init__(self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float,
                 accept_safety: float, eps: float = 1e-8) -> None:
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.errs: list[float] = []

    def propose_step(self, error: torch.Tensor) -> bool:
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2] = self.errs[1]
            self.errs[1] = self.errs[0]
        self.h *= factor
        return accept


class _DPMSolver:
    def __init__(self, ctx: SamplerContext) -> None:
        self.ctx = ctx
        self.step = 0

    @staticmethod
    def t(sigma: torch.Tensor) -> torch.Tensor:
        return -sigma.log()

    @staticmethod
    def sigma(t: torch.Tensor) -> torch.Tensor:
        return t.neg().exp()

    def eps(self, cache: dict, key: str, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if key in cache:
            return cache[key], cache
        sigma = self.sigma(t) * x.new_ones([x.shape[0]])
        eps = (x - self.ctx.model(x, sigma)) / self.sigma(t)
        return eps, {key: eps, **cache}

    def step_1(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cache: dict) -> tuple:
        h = t_next - t
        eps, cache = self.eps(cache, "eps", x, t)
        return x - self.sigma(t_next) * h.expm1() * eps, cache

    def step_2(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cache: dict, r1: float = 1 / 2) -> tuple:
        h = t_next - t
        eps, cache = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1, cache = self.eps(cache, "eps_r1", u1, s1)
        x_2 = x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)
        return x_2, cache

    def step_3(self, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cache: dict,
               r1: float = 1 / 3, r2: float = 2 / 3) -> tuple:
        h = t_next - t
        eps, cache = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        s2 = t + r2 * h
        u1 = x - self.sigma(s1) * (r1 * h).expm1() * eps
        eps_r1, cache = self.eps(cache, "eps_r1", u1, s1)
        u2 = x - self.sigma(s2) * (r2 * h).expm1() * eps - self.sigma(s2) * (r2 / r1) * (
            (r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        eps_r2, cache = self.eps(cache, "eps_r2", u2, s2)
        x_3 = x - self.sigma(t_next) * h.expm1() * eps - self.sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)
        return x_3, cache

    def noisy_target(self, t: torch.Tensor, t_next: torch.Tensor, t_end: torch.Tensor) -> tuple:
        """Where the deterministic part lands and the noise added back (eta > 0), as k-diffusion does."""
        if not self.ctx.eta:
            return t_next, 0.0
        sd, _ = ancestral_step(self.sigma(t), self.sigma(t_next), self.ctx.eta)
        landing = torch.minimum(t_end, self.t(sd))
        return landing, (self.sigma(t_next) ** 2 - self.sigma(landing) ** 2) ** 0.5


def _range(ctx: SamplerContext) -> tuple[torch.Tensor, torch.Tensor]:
    if ctx.sigma_range is None:
        raise ValueError("DPM fast / adaptive need ctx.sigma_range")
    sigma_min, sigma_max = ctx.sigma_range
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    return _DPMSolver.t(torch.tensor(sigma_max)), _DPMSolver.t(torch.tensor(sigma_min))


def sample_dpm_fast(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Fixed steps: ``ctx.steps`` model evaluations in third-order steps (the last ones lower order)."""
    solver = _DPMSolver(ctx)
    t_start, t_end = _range(ctx)
    noise = ctx.noise(x)
    nfe = ctx.steps
    m = math.floor(nfe / 3) + 1
    ts = torch.linspace(t_start, t_end, m + 1, device=x.device)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    steppers = {1: solver.step_1, 2: solver.step_2, 3: solver.step_3}
    for i, order in enumerate(orders):
        t, t_next = ts[i], ts[i + 1]
        landing, noise_up = solver.noisy_target(t, t_next, t_end)
        eps, cache = solver.eps({}, "eps", x, t)
        ctx.report(i, x, x - solver.sigma(t) * eps, solver.sigma(t))
        x, cache = steppers[order](x, t, landing, cache)
        x = x + noise_up * ctx.s_noise * noise(solver.sigma(t), solver.sigma(t_next))
    return x


def sample_dpm_adaptive(ctx: SamplerContext, x: torch.Tensor, sigmas: torch.Tensor, order: int = 3,
                        rtol: float = 0.05, atol: float = 0.0078, h_init: float = 0.05) -> torch.Tensor:
    """Adaptive step size (embedded orders 2 and 3, PID control with k-diffusion's defaults)."""
    solver = _DPMSolver(ctx)
    t_start, t_end = _range(ctx)
    noise = ctx.noise(x)
    forward = t_end > t_start
    h_init = abs(h_init) * (1 if forward else -1)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    s = t_start
    x_prev = x
    pid = _PIDStepSizeController(h_init, 0.0, 1.0, 0.0, 1.5 if ctx.eta else order, 0.81)
    steps = 0
    while s < t_end - 1e-5 if forward else s > t_end + 1e-5:
        t = torch.minimum(t_end, s + pid.h) if forward else torch.maximum(t_end, s + pid.h)
        landing, noise_up = solver.noisy_target(s, t, t_end)
        eps, cache = solver.eps({}, "eps", x, s)
        denoised = x - solver.sigma(s) * eps
        if order == 2:
            x_low, cache = solver.step_1(x, s, landing, cache)
            x_high, cache = solver.step_2(x, s, landing, cache)
        else:
            x_low, cache = solver.step_2(x, s, landing, cache, r1=1 / 3)
            x_high, cache = solver.step_3(x, s, landing, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if pid.propose_step(error):
            x_prev = x_low
            x = x_high + noise_up * ctx.s_noise * noise(solver.sigma(s), solver.sigma(t))
            s = t
        steps += 1
        ctx.report(steps - 1, x, denoised, solver.sigma(s))
    return x
