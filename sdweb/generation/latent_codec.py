"""Between pixels, a VAE's own latents and the latents the samplers work on.

2-D VAEs (SD, Flux, SD3: `AutoencoderKL`) give latents the samplers use as `(z - shift_factor) * scaling_factor`.
The Qwen-Image VAE (`AutoencoderKLQwenImage`, Wan-style) runs on videos of one frame and its latents are
normalised per channel, `(z - latents_mean) / latents_std`, as diffusers' Qwen-Image pipelines do. The Flux.2 VAE's
(`AutoencoderKLFlux2`, 32 channels) are taken as 2 x 2 patches (128 channels at half the size) normalised by its
batch-norm statistics, as diffusers' Flux2KleinPipeline does. They are told apart by their config, so generation
never asks for a family here.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["decode_raw", "encode_raw", "from_vae_latents", "patchify", "to_vae_latents", "unpatchify"]


def _is_video(vae: Any) -> bool:
    return "temperal_downsample" in vae.config


def _mean_std(vae: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(vae.config.latents_mean, device=like.device, dtype=like.dtype).view(1, -1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=like.device, dtype=like.dtype).view(1, -1, 1, 1)
    return mean, std


def _is_flux2(vae: Any) -> bool:
    return "batch_norm_eps" in vae.config


def _batch_norm(vae: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = vae.bn.running_mean.view(1, -1, 1, 1).to(like.device, like.dtype)
    std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(like.device, like.dtype)
    return mean, std


def patchify(latents: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, 4C, h/2, w/2): each 2 x 2 patch's values as channels (channel-major, as diffusers)."""
    n, c, h, w = latents.shape
    return latents.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, c * 4, h // 2, w // 2)


def unpatchify(latents: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`patchify`."""
    n, c, h, w = latents.shape
    return latents.reshape(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)


def from_vae_latents(vae: Any, raw: torch.Tensor) -> torch.Tensor:
    """The VAE's latents (N, C, h, w) as the samplers use them."""
    if _is_flux2(vae):
        patches = patchify(raw)
        mean, std = _batch_norm(vae, patches)
        return (patches - mean) / std
    if getattr(vae.config, "latents_mean", None) is not None:
        mean, std = _mean_std(vae, raw)
        return (raw - mean) / std
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (raw - shift) * vae.config.scaling_factor


def to_vae_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`from_vae_latents`."""
    if _is_flux2(vae):
        mean, std = _batch_norm(vae, latents)
        return unpatchify(latents * std + mean)
    if getattr(vae.config, "latents_mean", None) is not None:
        mean, std = _mean_std(vae, latents)
        return latents * std + mean
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return latents / vae.config.scaling_factor + shift


def encode_raw(vae: Any, pixels: torch.Tensor, generator: torch.Generator | None, mode: bool) -> torch.Tensor:
    """(N, 3, H, W) pixels in [-1, 1] -> the VAE's latents (N, C, h, w): a sample of its distribution, or the mode."""
    video = _is_video(vae)
    dist = vae.encode(pixels.unsqueeze(2) if video else pixels).latent_dist
    raw = dist.mode() if mode else dist.sample(generator=generator)
    return raw[:, :, 0] if video else raw


def decode_raw(vae: Any, raw: torch.Tensor) -> torch.Tensor:
    """The VAE's latents (N, C, h, w) -> pixels (N, 3, H, W) in about [-1, 1]."""
    video = _is_video(vae)
    decoded = vae.decode(raw.unsqueeze(2) if video else raw, return_dict=False)[0]
    return decoded[:, :, 0] if video else decoded
