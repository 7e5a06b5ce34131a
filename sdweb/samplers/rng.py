"""A1111's noise rules (a1111.md §10): one generator per image, seeded with the image's seed.

- The first draw of each image's generator is its initial noise (blended by slerp with the first draw of a
  fresh generator seeded with the variation seed; drawn at the "resize seed from" size and pasted centred).
- Every later draw (ancestral noise, DDIM eta noise, restarts) continues the same per-image generators, so
  image k of a batch equals a single-image run with seed + k. With an eta noise seed delta (ENSD) the
  generators are re-seeded with seed + ENSD after the initial noise.
- Sources: "GPU" draws on the CUDA device when there is one (else the CPU generator, as A1111 does), "CPU"
  draws with the CPU generator and moves the noise to the device, "NV" draws CUDA's numbers with the CPU port
  of Philox4x32 (:mod:`sdweb.samplers.philox`) on any device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sdweb.samplers import philox

SOURCES = ("GPU", "CPU", "NV")
DEFAULT_SOURCE = "GPU"


def generator_device(source: str, device: torch.device | str) -> torch.device:
    """Where torch generators of this source live: the CUDA device for "GPU" on CUDA, else the CPU."""
    device = torch.device(device)
    return device if source == "GPU" and device.type == "cuda" else torch.device("cpu")


def recorded_source(source: str, device: torch.device | str) -> str | None:
    """The infotext's RNG value for noise drawn with `source` on `device`: A1111 writes nothing for its "GPU"
    default; where "GPU" ran on the CPU generator (no CUDA) "CPU" is written, so pasting the infotext (which
    reads a missing RNG as NVIDIA's GPU noise) gives the same picture back."""
    if source != "GPU":
        return source
    return None if torch.device(device).type == "cuda" else "CPU"


def create_generator(seed: int, source: str, device: torch.device | str) -> Any:
    if source == "NV":
        return philox.Generator(seed)
    return torch.Generator(generator_device(source, device)).manual_seed(int(seed))


def draw(generator: Any, shape: Sequence[int], device: torch.device | str) -> torch.Tensor:
    """The generator's next standard-normal tensor of ``shape`` (float32), on ``device``."""
    if isinstance(generator, philox.Generator):
        return torch.from_numpy(generator.randn(shape)).to(device)
    return torch.randn(tuple(shape), generator=generator, device=generator.device).to(device)


def randn(seed: int, shape: Sequence[int], source: str, device: torch.device | str) -> torch.Tensor:
    """The first draw of a fresh generator seeded with ``seed``."""
    return draw(create_generator(seed, source, device), shape, device)


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


def paste_centered(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Put ``source`` (C, h, w) in the middle of ``target`` (C, H, W), cropping whichever is larger."""
    _, height, width = target.shape
    _, src_h, src_w = source.shape
    dx, dy = (width - src_w) // 2, (height - src_h) // 2
    w = src_w if dx >= 0 else src_w + 2 * dx
    h = src_h if dy >= 0 else src_h + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    result = target.clone()
    result[:, ty:ty + h, tx:tx + w] = source[:, sy:sy + h, sx:sx + w]
    return result


class ImageRNG:
    """Per-image generators for one batch: ``next()`` gives the initial noise first, then sampler noise."""

    def __init__(self, shape: Sequence[int], seeds: Sequence[int], *, subseeds: Sequence[int] = (),
                 subseed_strength: float = 0.0, seed_resize_from: tuple[int, int] | None = None,
                 eta_noise_seed_delta: int = 0, source: str = DEFAULT_SOURCE,
                 device: torch.device | str = "cpu") -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown noise source {source!r}; use one of {', '.join(SOURCES)}")
        self.shape = tuple(shape)
        self.seeds = [int(seed) for seed in seeds]
        self.subseeds = [int(seed) for seed in subseeds]
        self.subseed_strength = float(subseed_strength)
        self.seed_resize_from = seed_resize_from  # (width, height) in pixels, or None
        self.eta_noise_seed_delta = int(eta_noise_seed_delta or 0)
        self.source = source
        self.device = torch.device(device)
        self.generators = [create_generator(seed, source, device) for seed in self.seeds]
        self.is_first = True

    def _noise_shape(self) -> tuple[int, ...]:
        if self.seed_resize_from is None:
            return self.shape
        width, height = self.seed_resize_from
        return (self.shape[0], height // 8, width // 8)

    def first(self) -> torch.Tensor:
        noise_shape = self._noise_shape()
        images = []
        for index, (seed, generator) in enumerate(zip(self.seeds, self.generators, strict=True)):
            subnoise = None
            if self.subseed_strength != 0 and self.subseeds:
                subseed = self.subseeds[index] if index < len(self.subseeds) else 0
                subnoise = randn(subseed, noise_shape, self.source, self.device)
            if noise_shape != self.shape:
                noise = randn(seed, noise_shape, self.source, self.device)
            else:
                noise = draw(generator, self.shape, self.device)
            if subnoise is not None:
                noise = slerp(self.subseed_strength, noise, subnoise)
            if noise_shape != self.shape:
                noise = paste_centered(draw(generator, self.shape, self.device), noise)
            images.append(noise)
        if self.eta_noise_seed_delta:
            self.generators = [create_generator(seed + self.eta_noise_seed_delta, self.source, self.device)
                               for seed in self.seeds]
        return torch.stack(images)

    def next(self) -> torch.Tensor:
        """(N, C, H, W) noise: the initial noise on the first call, each generator's next draw after that."""
        if self.is_first:
            self.is_first = False
            return self.first()
        return torch.stack([draw(generator, self.shape, self.device) for generator in self.generators])
