"""Seeds and initial noise with A1111's semantics (a1111.md §10).

Each image draws its noise from its own generator seeded with its own seed, so image k of a batch equals a
single-image run with seed+k. Variation seeds blend two noises by slerp; "resize seed from" draws the noise
at another size and pastes it centred. The CPU source (default here) gives the same noise on any device.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

MAX_RANDOM_SEED = 4294967294


def resolve_seed(seed: int | str | None) -> int:
    """-1, None, "" or a non-number become a random seed (A1111's range); anything else is kept."""
    try:
        value = int(seed) if seed not in (None, "") else -1
    except (TypeError, ValueError):
        value = -1
    return random.randrange(MAX_RANDOM_SEED) if value == -1 else value


@dataclass(frozen=True)
class SeedPlan:
    """Seeds for every image of a job: batch_size x n_iter, in order."""

    seeds: tuple[int, ...]
    subseeds: tuple[int, ...]
    subseed_strength: float

    def for_batch(self, index: int, batch_size: int) -> tuple[list[int], list[int]]:
        start = index * batch_size
        return list(self.seeds[start:start + batch_size]), list(self.subseeds[start:start + batch_size])


def plan_seeds(seed: int, subseed: int, subseed_strength: float, count: int) -> SeedPlan:
    """seed+i per image, unless a variation is on: then every image keeps the same seed."""
    base, sub = resolve_seed(seed), resolve_seed(subseed)
    seeds = tuple([base] * count if subseed_strength > 0 else (base + i for i in range(count)))
    return SeedPlan(seeds=seeds, subseeds=tuple(sub + i for i in range(count)), subseed_strength=subseed_strength)


def randn(seed: int, shape: Sequence[int], device: torch.device | str, source: str = "CPU") -> torch.Tensor:
    """Standard normal noise of `shape` from one seed. CPU: drawn on the CPU, then moved (device-independent)."""
    if source == "GPU" and torch.device(device).type == "cuda":
        generator = torch.Generator(device=device).manual_seed(int(seed))
        return torch.randn(tuple(shape), generator=generator, device=device)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, device="cpu").to(device)


def slerp(value: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation as A1111 applies it to one image's (C, H, W) noise: normalised over dim 1,
    falling back to a plain blend when the two are nearly parallel."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * value + high * (1 - value)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    low_part = (torch.sin((1.0 - value) * omega) / sin_omega).unsqueeze(1) * low
    high_part = (torch.sin(value * omega) / sin_omega).unsqueeze(1) * high
    return low_part + high_part


def _paste_centered(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Put `source` (C, h, w) in the middle of `target` (C, H, W), cropping whichever is larger."""
    _, height, width = target.shape
    _, src_h, src_w = source.shape
    dx, dy = (width - src_w) // 2, (height - src_h) // 2
    w, h = min(width, src_w), min(height, src_h)
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    result = target.clone()
    result[:, ty:ty + h, tx:tx + w] = source[:, sy:sy + h, sx:sx + w]
    return result


def image_noise(shape: Sequence[int], seed: int, subseed: int, subseed_strength: float,
                seed_resize_from: tuple[int, int] | None, device: torch.device | str,
                source: str = "CPU") -> torch.Tensor:
    """One image's initial latent noise, shape (C, H/8, W/8)."""
    channels, height, width = shape
    noise_shape = (channels, seed_resize_from[1] // 8, seed_resize_from[0] // 8) if seed_resize_from else tuple(shape)
    noise = randn(seed, noise_shape, device, source)
    if subseed_strength > 0:
        noise = slerp(subseed_strength, noise, randn(subseed, noise_shape, device, source))
    if noise_shape != tuple(shape):
        noise = _paste_centered(randn(seed, shape, device, source), noise)
    return noise


def batch_noise(shape: Sequence[int], seeds: Sequence[int], subseeds: Sequence[int], subseed_strength: float,
                seed_resize_from: tuple[int, int] | None, device: torch.device | str,
                source: str = "CPU") -> torch.Tensor:
    """Noise for a batch, (N, C, H/8, W/8), each image from its own seed."""
    return torch.stack([image_noise(shape, seed, subseed, subseed_strength, seed_resize_from, device, source)
                        for seed, subseed in zip(seeds, subseeds, strict=True)])


def step_generators(seeds: Sequence[int], eta_noise_seed_delta: int) -> list[torch.Generator]:
    """Per-image CPU generators for the noise samplers draw while sampling (ancestral, SDE), seeded with
    seed + ENSD as A1111 re-seeds them after the initial noise."""
    return [torch.Generator(device="cpu").manual_seed(int(seed) + int(eta_noise_seed_delta)) for seed in seeds]
