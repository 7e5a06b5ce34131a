"""The discrete noise table of an SD-style (DDPM) model, as LDM / A1111 build it.

``alphas_cumprod`` comes from the model's beta schedule computed in float64 and stored in float32 (LDM's
``register_schedule``, SGM's ``LegacyDDPMDiscretization``); the sigmas ``sqrt((1 - a) / a)`` are then taken in
float32. diffusers builds its table in float32 from the start, which moves sigma_max in the 7th digit
(14.6146469 instead of LDM's 14.6146431) and with it every Brownian-tree query: this module is the one place
that builds the table the samplers use.

``sigma_to_t`` / ``t_to_sigma`` interpolate log sigma linearly between neighbouring integer timesteps, the
convention of k-diffusion's DiscreteSchedule, so the UNet is given fractional timesteps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

ZERO_SNR_LAST_ALPHA_CUMPROD = 4.8973451890853435e-08  # what A1111 puts in place of 0 (sigma would be infinite)


def ldm_alphas_cumprod(config: Mapping[str, Any], zero_terminal_snr: bool = False) -> torch.Tensor:
    """float32 alphas_cumprod from a diffusers scheduler config (beta_start/end/schedule, train timesteps)."""
    steps = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    kind = config.get("beta_schedule", "scaled_linear")
    if kind == "scaled_linear":
        betas = torch.linspace(start ** 0.5, end ** 0.5, steps, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, steps, dtype=torch.float64)
    else:
        raise ValueError(f"unsupported beta_schedule {kind!r} for an SD-style sampler")
    alphas_cumprod = np.cumprod(1.0 - betas.numpy(), axis=0)
    if zero_terminal_snr or config.get("rescale_betas_zero_snr"):
        alphas_cumprod = _rescale_zero_terminal_snr(alphas_cumprod)
    return torch.tensor(alphas_cumprod, dtype=torch.float32)


def _rescale_zero_terminal_snr(alphas_cumprod: np.ndarray) -> np.ndarray:
    """Lin et al. 2023: shift and scale sqrt(alphas_cumprod) so the last step has zero SNR."""
    root = np.sqrt(alphas_cumprod)
    first, last = root[0], root[-1]
    root = (root - last) * first / (first - last)
    rescaled = root ** 2
    rescaled[-1] = ZERO_SNR_LAST_ALPHA_CUMPROD
    return rescaled


class DiscreteSchedule:
    """Sigmas of the training timesteps (ascending), and the maps between sigma and fractional timestep."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.alphas_cumprod = alphas_cumprod
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    def to(self, device: torch.device | str) -> DiscreteSchedule:
        moved = DiscreteSchedule.__new__(DiscreteSchedule)
        moved.alphas_cumprod = self.alphas_cumprod.to(device)
        moved.sigmas = self.sigmas.to(device)
        moved.log_sigmas = self.log_sigmas.to(device)
        return moved

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    def get_sigmas(self, n: int) -> torch.Tensor:
        """The model's own schedule: n timesteps evenly spaced from the last to the first, then 0."""
        t = torch.linspace(len(self.sigmas) - 1, 0, n, device=self.sigmas.device)
        return append_zero(self.t_to_sigma(t))

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        return ((1 - w) * low_idx + w * high_idx).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]).exp()


def append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])
