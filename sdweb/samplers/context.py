"""What every sampler function is given besides x and the sigmas (our explicit form of k-diffusion's
arguments; A1111 swaps k-diffusion's module-level ``torch.randn_like`` for its per-image generators, here the
noise source is an argument)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, sigma per image) -> denoised x0
NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (sigma, sigma_next) -> unit noise like x


@dataclass
class StepState:
    """What a sampler reports after each step's first model evaluation (k-diffusion's callback dict)."""

    i: int
    x: torch.Tensor
    denoised: torch.Tensor
    sigma: torch.Tensor | float  # kept as given: float() of a GPU tensor would wait for the GPU every step


@dataclass
class SamplerContext:
    model: Denoiser
    randn_like: Callable[[torch.Tensor], torch.Tensor]  # the next per-image noise, shaped like its argument
    callback: Callable[[StepState], None] | None = None
    noise_sampler: NoiseSampler | None = None  # a Brownian tree for the SDE samplers; else drawn from randn_like
    eta: float = 1.0
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0
    solver_type: str = "midpoint"  # DPM++ 2M SDE: "midpoint" or "heun"
    # DPM fast / adaptive integrate between two noise levels in ``steps`` evaluations instead of walking sigmas
    sigma_range: tuple[float, float] | None = None  # (sigma_min, sigma_max)
    steps: int = 0

    def report(self, i: int, x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor | float) -> None:
        if self.callback is not None:
            self.callback(StepState(i=i, x=x, denoised=denoised, sigma=sigma))

    def noise(self, x: torch.Tensor) -> NoiseSampler:
        if self.noise_sampler is not None:
            return self.noise_sampler
        return lambda sigma, sigma_next: self.randn_like(x)
