"""UniPC (Zhao et al. 2023, arXiv:2302.04867) as A1111 runs it: multistep predictor-corrector on the data
prediction, continuous VP time t in (1/N, 1] ("time_uniform": steps + 1 points evenly spaced), the discrete
model queried at the fractional timestep (t - 1/N) * N, settings ``uni_pc_variant`` (bh1 / bh2),
``uni_pc_order`` and ``uni_pc_lower_order_final``."""

from __future__ import annotations

import torch

from sdweb.core.errors import UserError
from sdweb.samplers.context import SamplerContext


class NoiseScheduleVP:
    """The discrete DDPM schedule as a continuous-time VP schedule: log alpha(t) interpolated linearly."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.log_alpha_array = 0.5 * torch.log(alphas_cumprod.float().cpu())
        self.total_n = len(self.log_alpha_array)
        self.t_array = torch.linspace(0.0, 1.0, self.total_n + 1)[1:]

    def log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        xp, yp = self.t_array.to(t.device), self.log_alpha_array.to(t.device)
        index = torch.searchsorted(xp, t.reshape(-1).contiguous()).clamp(1, len(xp) - 1)
        x0, x1, y0, y1 = xp[index - 1], xp[index], yp[index - 1], yp[index]
        return (y0 + (t.reshape(-1) - x0) * (y1 - y0) / (x1 - x0)).reshape(t.shape)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_mean_coeff(t))

    def std(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1.0 - torch.exp(2.0 * self.log_mean_coeff(t)))

    def lambda_(self, t: torch.Tensor) -> torch.Tensor:
        log_mean = self.log_mean_coeff(t)
        return log_mean - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_mean))


class _UniPC:
    def __init__(self, ctx: SamplerContext, schedule: NoiseScheduleVP, variant: str) -> None:
        if variant not in ("bh1", "bh2"):
            raise UserError(f"UniPC variant {variant!r} is not supported yet.", code="unsupported_sampler_option",
                            hint="Settings > Sampler parameters: set 'UniPC variant' to bh1 or bh2.")
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
        ns = self.ns
        model_prev_0, t_prev_0 = model_prev[-1], t_prev[-1]
        lambda_prev_0, lambda_t = ns.lambda_(t_prev_0), ns.lambda_(t)
        sigma_prev_0, sigma_t = ns.std(t_prev_0), ns.std(t)
        alpha_t = torch.exp(ns.log_mean_coeff(t))
        h = lambda_t - lambda_prev_0
        rks, d1s = [], []
        for i in range(1, order):
            lambda_prev_i = ns.lambda_(t_prev[-(i + 1)])
            rk = ((lambda_prev_i - lambda_prev_0) / h)[0]
            rks.append(rk)
            d1s.append((model_prev[-(i + 1)] - model_prev_0) / rk)
        rks.append(1.0)
        rks_t = torch.tensor(rks, device=x.device)
        hh = -h[0]
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        factorial = 1
        b_h = hh if self.variant == "bh1" else torch.expm1(hh)
        rows, b = [], []
        for i in range(1, order + 1):
            rows.append(torch.pow(rks_t, i - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        r_matrix = torch.stack(rows)
        b_t = torch.tensor(b, device=x.device)
        d1s_t = torch.stack(d1s, dim=1) if d1s else None
        rhos_p = None
        if d1s_t is not None:
            rhos_p = torch.tensor([0.5], device=x.device) if order == 2 else \
                torch.linalg.solve(r_matrix[:-1, :-1], b_t[:-1])
        rhos_c = None
        if use_corrector:
            rhos_c = torch.tensor([0.5], device=x.device) if order == 1 else torch.linalg.solve(r_matrix, b_t)
        scale = (sigma_t / sigma_prev_0)[:, None, None, None]
        a_t = alpha_t[:, None, None, None]
        x_t_ = scale * x - a_t * h_phi_1 * model_prev_0
        pred_res = torch.einsum("k,bkchw->bchw", rhos_p, d1s_t) if rhos_p is not None else 0
        x_t = x_t_ - a_t * b_h * pred_res
        model_t = None
        if rhos_c is not None:
            model_t = self.data_prediction(x_t, t)
            corr_res = torch.einsum("k,bkchw->bchw", rhos_c[:-1], d1s_t) if d1s_t is not None else 0
            x_t = x_t_ - a_t * b_h * (corr_res + rhos_c[-1] * (model_t - model_prev_0))
        return x_t, model_t


def sample_unipc(ctx: SamplerContext, x: torch.Tensor, steps: int, alphas_cumprod: torch.Tensor, *,
                 t_start: float | None = None, order: int = 3, variant: str = "bh1",
                 lower_order_final: bool = True) -> torch.Tensor:
    schedule = NoiseScheduleVP(alphas_cumprod)
    solver = _UniPC(ctx, schedule, variant)
    order = max(1, min(order, steps))
    t_0, t_T = 1.0 / schedule.total_n, 1.0 if t_start is None else float(t_start)
    timesteps = torch.linspace(t_T, t_0, steps + 1, device=x.device)
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
