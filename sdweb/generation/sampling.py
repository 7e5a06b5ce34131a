"""One diffusers pipeline call for one batch, with progress, previews, prompt-editing swaps, interrupt/skip.

Interrupt and skip are raised from diffusers' `callback_on_step_end`; the last latents seen are kept so
the partial batch can still be decoded (A1111 shows the partial image after an interrupt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from sdweb.generation.jobs import JobContext
from sdweb.generation.previews import latent_preview


class BatchStopped(Exception):
    """Raised inside the sampling loop on interrupt or skip; `latents` holds the last step's latents."""

    def __init__(self, reason: str, latents: torch.Tensor | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.latents = latents


@dataclass
class StepSwaps:
    """Conditioning to switch to after given steps (prompt editing): {step index: tensors by callback name}."""

    at_step: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    # told the index of the loop iteration about to run (the composable-diffusion hook follows the steps)
    listeners: list[Callable[[int], None]] = field(default_factory=list)

    def names(self) -> set[str]:
        return {name for tensors in self.at_step.values() for name in tensors}


def make_step_callback(context: JobContext | None, *, total_steps: int, preview_every: int, is_sdxl: bool,
                       swaps: StepSwaps, on_latents: Callable[[torch.Tensor], None]) -> Callable[..., dict]:
    """A diffusers `callback_on_step_end` doing our per-step work."""

    def callback(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        latents = tensors.get("latents")
        if latents is not None:
            on_latents(latents)
        for name, value in swaps.at_step.get(step + 1, {}).items():
            tensors[name] = value
        for listener in swaps.listeners:
            listener(step + 1)
        if context is None:
            return tensors
        preview = None
        done = step + 1
        if latents is not None and preview_every > 0 and done % preview_every == 0 and done < total_steps:
            preview = latent_preview(latents, is_sdxl=is_sdxl)
        if context.interrupted:
            raise BatchStopped("interrupted", latents)
        if context.skipped:
            raise BatchStopped("skipped", latents)
        context.job.progress.sampling_step = done
        if preview is not None:
            context.job.progress.preview = preview
            context.job.progress.preview_id += 1
        return tensors

    return callback


def callback_tensor_names(pipe: Any, swaps: StepSwaps) -> list[str]:
    """The tensors our callback needs from the pipeline: latents, plus whatever prompt editing swaps."""
    allowed = set(getattr(pipe, "_callback_tensor_inputs", ["latents"]))
    wanted = {"latents"} | swaps.names()
    missing = wanted - allowed
    if missing:
        raise ValueError(f"{type(pipe).__name__} cannot swap {sorted(missing)} during sampling")
    return sorted(wanted)


def decode_latents(pipe: Any, latents: torch.Tensor) -> list[Any]:
    """VAE-decode latents to PIL images, one at a time (as A1111 does, to bound VAE memory)."""
    vae = pipe.vae
    scaling = vae.config.scaling_factor
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    images = []
    with torch.no_grad():
        for index in range(latents.shape[0]):
            latent = latents[index:index + 1].to(vae.device, vae.dtype) / scaling + shift
            decoded = vae.decode(latent, return_dict=False)[0]
            images.extend(pipe.image_processor.postprocess(decoded.float(), output_type="pil"))
    return images


def has_nan_start(latents: torch.Tensor) -> bool:
    """A1111's cheap NaN test: the first element only."""
    return bool(torch.isnan(latents.reshape(-1)[0]).item())
