"""Live previews without extra weights: a linear latent -> RGB map ("Approx cheap" in A1111), with the
family record's coefficients (LatentFormat.preview_rgb)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def latent_preview(latents: torch.Tensor, coefficients: Sequence[Sequence[float]], *, index: int = 0,
                   downscale: int = 8) -> Image.Image:
    """An RGB preview of one image of a (N, C, h, w) latent batch, at latent resolution x downscale (nearest)."""
    factors = torch.tensor(coefficients, dtype=torch.float32)
    latent = latents[index, :factors.shape[0]].detach().to("cpu", torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latent, factors)
    pixels = ((rgb + 1.0) / 2.0).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    return image.resize((image.width * downscale, image.height * downscale), Image.Resampling.NEAREST)
