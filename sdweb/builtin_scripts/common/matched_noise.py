"""Noise that looks like an image, to fill the area outpainting adds before it is repainted ("Outpainting
mk2"): a texture with the known part's spatial frequencies (its Fourier magnitudes, with random phases) and
its colours (each channel's histogram matched to the known part's). Pure numpy.

`falloff` (A1111's "fall-off exponent", lower = more detail) raises the magnitudes to that power;
`color_variation` blends the starting noise from grey (0) to fully coloured (1).
"""

from __future__ import annotations

import numpy as np

KNOWN_BELOW = 1e-3  # mask values under this are the known image
PAINTED_ABOVE = 1e-6


def _match_histogram(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`values` (N,) mapped so their distribution is `reference`'s (quantile to quantile)."""
    order = np.argsort(values, kind="stable")
    quantiles = np.empty(len(values))
    quantiles[order] = (np.arange(len(values)) + 0.5) / len(values)
    reference_sorted = np.sort(reference)
    reference_quantiles = (np.arange(len(reference_sorted)) + 0.5) / len(reference_sorted)
    return np.interp(quantiles, reference_quantiles, reference_sorted)


def matched_noise(image: np.ndarray, mask: np.ndarray, falloff: float = 1.0, color_variation: float = 0.05,
                  seed: int = 0) -> np.ndarray:
    """`image` (H, W, 3) in 0..1 with the area where `mask` (H, W) is 1 replaced by matched noise; between 0
    and 1 the two are blended. Deterministic for a seed (A1111 uses a fixed one)."""
    height, width, channels = image.shape
    known = mask < KNOWN_BELOW
    painted = mask > PAINTED_ABOVE
    rng = np.random.default_rng(seed)
    if not known.any() or not painted.any():
        return image.copy() if not painted.any() else rng.random(image.shape)
    mean = image[known].mean(axis=0)
    windowed = image * (1 - mask[..., None]) + mean * mask[..., None]
    magnitudes = np.abs(np.fft.fft2(windowed - windowed.mean(axis=(0, 1)), axes=(0, 1)))
    noise = rng.random((height, width, channels))
    grey = noise.mean(axis=2, keepdims=True)
    noise = color_variation * noise + (1 - color_variation) * grey
    phases = np.angle(np.fft.fft2(noise - noise.mean(axis=(0, 1)), axes=(0, 1)))
    texture = np.real(np.fft.ifft2(magnitudes ** max(0.0, falloff) * np.exp(1j * phases), axes=(0, 1)))
    filled = image.copy()
    for channel in range(channels):
        filled[..., channel][painted] = _match_histogram(texture[..., channel][painted],
                                                         image[..., channel][known])
    blend = mask[..., None]
    return np.clip(image * (1 - blend) + filled * blend, 0.0, 1.0)
