"""Masked content "latent noise" / "latent nothing" on diffusers' inpainting pipelines.

The pipelines encode the init image inside `prepare_latents` and both start sampling from those latents and
blend them back outside the mask at every step. Changing what that one encode returns (for one pipeline call)
gives A1111's semantics: the masked part of the init latents replaced before the noise is added. The mask's
own encode (`prepare_mask_latents`, 9-channel models) is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def filled_init_latents(pipe: Any, fill: Callable[[torch.Tensor], torch.Tensor] | None) -> Iterator[None]:
    if fill is None or not hasattr(pipe, "_encode_vae_image") or not hasattr(pipe, "prepare_latents"):
        yield
        return
    encode, prepare = pipe._encode_vae_image, pipe.prepare_latents
    inside = [False]

    def prepare_latents(*args: Any, **kwargs: Any) -> Any:
        inside[0] = True
        try:
            return prepare(*args, **kwargs)
        finally:
            inside[0] = False

    def encode_vae_image(*args: Any, **kwargs: Any) -> torch.Tensor:
        latents = encode(*args, **kwargs)
        return fill(latents) if inside[0] else latents

    pipe.__dict__["prepare_latents"] = prepare_latents
    pipe.__dict__["_encode_vae_image"] = encode_vae_image
    try:
        yield
    finally:
        pipe.__dict__.pop("prepare_latents", None)
        pipe.__dict__.pop("_encode_vae_image", None)
