"""UniPC (Zhao et al. 2023, arXiv:2302.04867) as A1111 runs it: multistep predictor-corrector on the data
prediction over a continuous VP time t in (1/N, 1], the discrete model queried at the fractional timestep
(t - 1/N) * N. Settings: ``uni_pc_variant`` (bh1 / bh2: the B(h) = h / e^h - 1 solvers of the paper's section
3.2; vary_coeff: the varying-coefficient solver of its appendix), ``uni_pc_skip_type`` (time_uniform,
time_quadratic, logSNR: how the steps + 1 times are spread), ``uni_pc_order`` and ``uni_pc_lower_order_final``.
"""

from __future__ import annotations

import math

import torch

from sdweb.config.options import UNIPC_SKIP_TYPES, UNIPC_VARIANTS
from sdweb.core.errors import UserError
from sdweb.samplers.context import SamplerContext

VARIANTS, SKIP_TYPES = UNIPC_VARIANTS, UNIPC_SKIP_TYPES


def _interpolate(x: torch.Tensor, xp: torch.Tensor, yp: torch.Tensor) -> torch.Tensor:
    """Piecewise linear y(x) through (xp, yp) (xp ascending); beyond the ends the outermost segment continues."""
    xp, yp = xp.to(x.device), yp.to(x.device)
    flat = x.reshape(-1).contiguous()
    index = torch.searchsorted(xp, flat).clamp(1, len(xp) - 1)
    x0, x1, y0, y1 = xp[index - 1], xp[index], yp[index - 1], yp[index]
    return (y0 + (flat - x0) * (y1 - y0) / (x1 - x0)).reshape(x.shape)


class NoiseScheduleVP:
    """The discrete DDPM schedule as a continuous-time VP schedule: log alpha(t) interpolated linearly."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.log_alpha_array = 0.5 * torch.log(alphas_cumprod.float().cpu())
        self.total_n = len(self.log_alpha_array)
        self.t_array = torch.linspace(0.0, 1.0, self.total_n + 1)[1:]

    def log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        return _interpolate(t, self.t_array, self.log_alpha_array)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_mean_coeff(t))

    def std(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1.0 - torch.exp(2.0 * self.log_mean_coeff(t)))

    def lambda_(self, t: torch.Tensor) -> torch.Tensor:
        log_mean = self.log_mean_coeff(t)
        return log_mean - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_mean))

    def inverse_lambda(self, lamb: torch.Tensor) -> torch.Tensor:
        """The time t whose half-logSNR is ``lamb``: log alpha = -log(1 + e^(-2 lambda)) / 2, then t(log alpha)."""
        log_alpha = -0.5 * torch.logaddexp(torch.zeros(1, device=lamb.device), -2.0 * lamb)
        return _interpolate(log_alpha, self.log_alpha_array.flip(0), self.t_array.flip(0))


def time_steps(schedule: NoiseScheduleVP, skip_type: str, t_start: float, t_end: float, steps: int) -> torch.Tensor:
    """steps + 1 times from t_start down to t_end: evenly spaced in t, in sqrt(t), or in half-logSNR."""
    if skip_type == "time_uniform":
        return torch.linspace(t_start, t_end, steps + 1)
    if skip_type == "time_quadratic":
        # a float32 start (img2img) is rooted in float32, 1.0 and 1/N in float64: as A1111 computes them
        root_start = float(torch.tensor(t_start) ** 0.5) if t_start != 1.0 else 1.0
        return torch.linspace(root_start, math.sqrt(t_end), steps + 1).pow(2)
    if skip_type == "logSNR":
        lambda_start = schedule.lambda_(torch.tensor(t_start)).item()
        lambda_end = schedule.lambda_(torch.tensor(t_end)).item()
        return schedule.inverse_lambda(torch.linspace(lambda_start, lambda_end, steps + 1))
    raise UserError(f"UniPC skip type {skip_type!r} is unknown.", code="unsupported_sampler_option",
                    hint=f"Settings > Sampler parameters: set 'UniPC skip type' to one of {', '.join(SKIP_TYPES)}.")


class _UniPC:
    def __init__(self, ctx: SamplerContext, schedule: NoiseScheduleVP, variant: str) -> None:
        if variant not in VARIANTS:
            raise UserError(f"UniPC variant {variant!r} is unknown.", code="unsupported_sampler_option",
                            hint=f"Settings > Sampler parameters: set 'UniPC variant' to one of {', '.join(VARIANTS)}.")
        self.ctx = ctx
        self.ns = schedule
        self.variant = variant

    def data_prediction(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_input = (t - 1.0 / self.ns.total_n) * 1000.0
        noise = self.ctx.model(x, t_input)
        alpha_t, sigma_t = self.ns.alpha(t), self.ns.std(t)
        return (x - sigma_t[:, None, None, None] * noise) / alpha_t[:, None, None, None]

    def update(self, x: torch.Tensor, model_prev: list[torch.Tensor], t_prev: list[torch.Tensor],
               t: torch.Tensor, order: int, use_corrector: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One multistep step from t_prev[-1] to t: (x at t, the data prediction at t when the corrector ran)."""
        ns = self.ns
        model_prev_0, t_prev_0 = model_prev[-1], t_prev[-1]
        lambda_prev_0, lambda_t = ns.lambda_(t_prev_0), ns.lambda_(t)
        h = lambda_t - lambda_prev_0
        rks, d1s = [], []
        for i in range(1, order):
            rk = ((ns.lambda_(t_prev[-(i + 1)]) - lambda_prev_0) / h)[0]
            rks.append(rk)
            d1s.append((model_prev[-(i + 1)] - model_prev_0) / rk)
        rks.append(1.0)
        rks_t = torch.tensor(rks, device=x.device)
        d1s_t = torch.stack(d1s, dim=1) if d1s else None
        hh = -h[0]
        scale = (ns.std(t) / ns.std(t_prev_0))[:, None, None, None]
        a_t = torch.exp(ns.log_mean_coeff(t))[:, None, None, None]
        x_t_ = scale * x - a_t * torch.expm1(hh) * model_prev_0
        step = self._vary_coeff if self.variant == "vary_coeff" else self._bh
        return step(x_t_, a_t, hh, rks_t, d1s_t, model_prev_0, t, use_corrector)

    def _bh(self, x_t_: torch.Tensor, a_t: torch.Tensor, hh: torch.Tensor, rks: torch.Tensor,
            d1s: torch.Tensor | None, model_prev_0: torch.Tensor, t: torch.Tensor,
            use_corrector: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Section 3.2: one linear system of the phi-function moments with B(h) = h (bh1) or e^h - 1 (bh2)."""
        order = len(rks)
        h_phi_k = torch.expm1(hh) / hh - 1
        factorial = 1
        b_h = hh if self.variant == "bh1" else torch.expm1(hh)
        rows, b = [], []
        for i in range(1, order + 1):
            rows.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        r_matrix = torch.stack(rows)
        b_t = torch.tensor(b, device=x_t_.device)
        rhos_p = None
        if d1s is not None:
            rhos_p = torch.tensor([0.5], device=x_t_.device) if order == 2 else \
                torch.linalg.solve(r_matrix[:-1, :-1], b_t[:-1])
        pred_res = torch.einsum("k,bkchw->bchw", rhos_p, d1s) if rhos_p is not None else 0
        x_t = x_t_ - a_t * b_h * pred_res
        if not use_corrector:
            return x_t, None
        rhos_c = torch.tensor([0.5], device=x_t_.device) if order == 1 else torch.linalg.solve(r_matrix, b_t)
        model_t = self.data_prediction(x_t, t)
        corr_res = torch.einsum("k,bkchw->bchw", rhos_c[:-1], d1s) if d1s is not None else 0
        return x_t_ - a_t * b_h * (corr_res + rhos_c[-1] * (model_t - model_prev_0)), model_t

    def _vary_coeff(self, x_t_: torch.Tensor, a_t: torch.Tensor, hh: torch.Tensor, rks: torch.Tensor,
                    d1s: torch.Tensor | None, model_prev_0: torch.Tensor, t: torch.Tensor,
                    use_corrector: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The appendix's varying coefficients: the Taylor matrix C[m][k] = r_m^k / (k + 1)! is inverted (its
        leading block for the predictor), and row k of the inverse weighs the differences for the k-th phi term.

        The corrector's new difference D_t is weighed once, by the last phi term with the inverse's entry of the
        next-to-last row (the first row at order 1): the UniPC code A1111 runs does so, and its pictures are the
        ones to match."""
        order = len(rks)
        columns, column = [], torch.ones_like(rks)
        for k in range(1, order + 1):
            columns.append(column)
            column = column * rks / (k + 1)
        taylor = torch.stack(columns, dim=1)
        h_phi = [torch.expm1(hh)]  # h_phi[k] = h * phi_(k+1)(h) with the 1/k! terms taken off
        factorial = 1
        for k in range(1, order + 1):
            h_phi.append(h_phi[-1] / hh - 1 / factorial)
            factorial *= k + 1
        x_t = x_t_
        if d1s is not None:
            weights = torch.linalg.inv(taylor[:-1, :-1])
            for k in range(order - 1):
                x_t = x_t - a_t * h_phi[k + 1] * torch.einsum("bkchw,k->bchw", d1s, weights[k])
        if not use_corrector:
            return x_t, None
        weights = torch.linalg.inv(taylor)
        model_t = self.data_prediction(x_t, t)
        x_t = x_t_
        for k in range(order - 1):
            x_t = x_t - a_t * h_phi[k + 1] * torch.einsum("bkchw,k->bchw", d1s, weights[k][:-1])
        last_row = max(order - 2, 0)
        return x_t - a_t * h_phi[order] * ((model_t - model_prev_0) * weights[last_row][-1]), model_t


def sample_unipc(ctx: SamplerContext, x: torch.Tensor, steps: int, alphas_cumprod: torch.Tensor, *,
                 t_start: float | None = None, order: int = 3, variant: str = "bh1", skip_type: str = "time_uniform",
                 lower_order_final: bool = True) -> torch.Tensor:
    schedule = NoiseScheduleVP(alphas_cumprod)
    solver = _UniPC(ctx, schedule, variant)
    # A1111 stops with "UniPC order must be < sampling steps"; a lower order runs instead
    order = max(1, min(order, steps))
    t_0, t_T = 1.0 / schedule.total_n, 1.0 if t_start is None else float(t_start)
    timesteps = time_steps(schedule, skip_type, t_T, t_0, steps).to(x.device)
    vec_t = timesteps[0].expand(x.shape[0])
    model_prev = [solver.data_prediction(x, vec_t)]
    t_prev = [vec_t]
    ctx.report(0, x, model_prev[0], 0.0)
    for init_order in range(1, order):
        vec_t = timesteps[init_order].expand(x.shape[0])
        x, model_x = solver.update(x, model_prev, t_prev, vec_t, init_order, use_corrector=True)
        if model_x is None:
            model_x = solver.data_prediction(x, vec_t)
        ctx.report(init_order, x, model_x, 0.0)
        model_prev.append(model_x)
        t_prev.append(vec_t)
    for step in range(order, steps + 1):
        vec_t = timesteps[step].expand(x.shape[0])
        step_order = min(order, steps + 1 - step) if lower_order_final else order
        x, model_x = solver.update(x, model_prev, t_prev, vec_t, step_order, use_corrector=step != steps)
        for i in range(order - 1):
            t_prev[i], model_prev[i] = t_prev[i + 1], model_prev[i + 1]
        t_prev[-1] = vec_t
        if step < steps:
            if model_x is None:
                model_x = solver.data_prediction(x, vec_t)
            model_prev[-1] = model_x
        ctx.report(step, x, model_x if model_x is not None else model_prev[-1], 0.0)
    return x
