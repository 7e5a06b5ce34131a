"""Per-step work during sampling (progress, previews, hooks, interrupt/skip) and the VAE decode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sdweb.generation.jobs import JobContext
from sdweb.generation.latent_codec import decode_raw, to_vae_latents
from sdweb.runtime.execution import execution_device
from sdweb.samplers.context import StepState


class BatchStopped(Exception):
    """Raised inside the sampling loop on interrupt or skip; `latents` holds the last step's latents."""

    def __init__(self, reason: str, latents: torch.Tensor | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.latents = latents


class StepTracker:
    """The sampler's per-step callback for one pass: progress, live previews (of the denoised prediction, as
    A1111's default "Prompt" preview), the scripts' on_step hook, and interrupt / skip (raised as
    BatchStopped; the last denoised latents are kept so the partial batch can still be decoded)."""

    def __init__(self, context: JobContext | None, *, total_steps: int, preview_every: int,
                 preview: Callable[[torch.Tensor], Any] | None = None,
                 on_step: Callable[[int, int, torch.Tensor], None] | None = None) -> None:
        self.context = context
        self.total_steps = max(1, total_steps)
        self.preview_every = preview_every
        self.preview = preview  # the engine's latent -> image for live previews
        self.on_step = on_step
        self.done = 0
        self.last_denoised: torch.Tensor | None = None

    def progress(self) -> tuple[int, int]:
        """(steps done, total): ControlNet's guidance start / end follow it."""
        return min(self.done, self.total_steps - 1), self.total_steps

    def __call__(self, state: StepState) -> None:
        self.last_denoised = state.denoised
        self.done = state.i + 1
        if self.on_step is not None:
            self.on_step(self.done, self.total_steps, state.x)
        if self.context is None:
            return
        if self.context.interrupted:
            raise BatchStopped("interrupted", state.denoised)
        if self.context.skipped:
            raise BatchStopped("skipped", state.denoised)
        preview = None
        if (self.preview is not None and self.preview_every > 0 and self.done % self.preview_every == 0
                and self.done < self.total_steps):
            preview = self.preview(state.denoised)
        self.context.show_step(min(self.done, self.total_steps), preview)


def decode_latents(pipe: Any, latents: torch.Tensor) -> list[Any]:
    """VAE-decode latents to PIL images, one at a time (as A1111 does, to bound VAE memory)."""
    vae = pipe.vae
    device = execution_device(pipe, vae)  # under offload the VAE waits on the CPU until its hook moves it
    dtype = vae.dtype
    images = []
    with torch.no_grad():
        for index in range(latents.shape[0]):
            latent = to_vae_latents(vae, latents[index:index + 1].to(device, dtype))
            decoded = decode_raw(vae, latent)
            images.extend(pipe.image_processor.postprocess(decoded.float(), output_type="pil"))
    return images


def has_nan_start(latents: torch.Tensor) -> bool:
    """A1111's cheap NaN test: the first element only."""
    return bool(torch.isnan(latents.reshape(-1)[0]).item())
