"""Live previews without extra weights: a linear latent -> RGB map ("Approx cheap" in A1111).

The coefficients are the well-known least-squares fits of the SD1.x/SD2.x and SDXL VAEs' latent spaces.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

_SD1_LATENT_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))
_SDXL_LATENT_RGB = ((0.3448, 0.4168, 0.4395), (-0.1953, -0.0290, 0.0250), (0.1074, 0.0886, -0.0163),
                    (-0.3730, -0.2499, -0.2088))


def latent_preview(latents: torch.Tensor, *, is_sdxl: bool, index: int = 0) -> Image.Image:
    """An RGB preview of one image of a (N, 4, h, w) latent batch, at latent resolution x 8 (nearest)."""
    coefficients = torch.tensor(_SDXL_LATENT_RGB if is_sdxl else _SD1_LATENT_RGB, dtype=torch.float32)
    latent = latents[index, :4].detach().to("cpu", torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latent, coefficients)
    pixels = ((rgb + 1.0) / 2.0).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    return image.resize((image.width * 8, image.height * 8), Image.Resampling.NEAREST)
