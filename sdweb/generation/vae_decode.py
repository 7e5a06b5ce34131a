"""VAE decode with A1111's NaN handling (a1111.md §17.3): when the decode gives NaNs and the setting
`auto_vae_precision` is on (default), the VAE is converted to fp32 for the rest of the session and the batch
decoded again, with a note; otherwise, or when fp32 gives NaNs too, a clear error. `--disable-nan-check`
skips the check (a NaN image comes out black)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from sdweb.core.errors import UserError
from sdweb.generation.sampling import decode_latents
from sdweb.models.manager import LoadedModel
from sdweb.runtime.policy import RuntimePlan, upcast_vae

log = logging.getLogger(__name__)

VAE_NAN_MESSAGE = "A tensor with NaNs was produced in VAE."
VAE_UPCAST_NOTE = ("A tensor with NaNs was produced in VAE. Web UI will now convert VAE into 32-bit float "
                   "and retry.")


class _VaeNan(Exception):
    """Raised by the decoder hook at the first NaN output: the rest of the batch need not be decoded."""


def _stop_at_nan(module: torch.nn.Module, inputs: Any, output: Any) -> None:
    tensor = output[0] if isinstance(output, tuple) else output
    if isinstance(tensor, torch.Tensor) and bool(torch.isnan(tensor).any().item()):
        raise _VaeNan


def _decode_watched(pipe: Any, latents: torch.Tensor) -> list[Any] | None:
    """The decoded images, or None when the decoder produced NaNs."""
    handle = pipe.vae.decoder.register_forward_hook(_stop_at_nan)
    try:
        return decode_latents(pipe, latents)
    except _VaeNan:
        return None
    finally:
        handle.remove()


def decode_checked(pipe: Any, latents: torch.Tensor, model: LoadedModel, plan: RuntimePlan,
                   settings: Mapping[str, Any], notes: list[str]) -> list[Any]:
    """decode_latents, with the NaN check and fp32 retry."""
    if not plan.nan_check:
        return decode_latents(pipe, latents)
    images = _decode_watched(pipe, latents)
    if images is not None:
        return images
    if settings.get("auto_vae_precision", True) and upcast_vae(pipe):
        model.vae_upcast = True
        log.warning(VAE_UPCAST_NOTE)
        notes.append(VAE_UPCAST_NOTE)
        images = _decode_watched(pipe, latents)
        if images is not None:
            return images
    raise UserError(VAE_NAN_MESSAGE, code="nan_output",
                    hint="Start with --no-half-vae, or use an fp16-fix VAE; --disable-nan-check disables "
                         "this check.")
