"""ControlNet control modes for the UNet model call (sdweb.generation.unet_model), with
A1111/sd-webui-controlnet's weight, guidance start/end and control modes.

Control modes, as sd-webui-controlnet defines them:
- Balanced: residuals x weight, on both halves of the CFG batch (diffusers' default).
- ControlNet is more important: soft injection (layer i scaled by 0.825^(12-i), which is exactly diffusers'
  guess-mode logspace(-1, 0)) and control on the conditional half only: diffusers' `guess_mode=True`.
- My prompt is more important: the same soft injection on both halves; done with a ControlNet subclass that
  always applies the guess-mode scales, sharing the loaded weights.
Guess mode is one switch per call (as in diffusers), so when units mix "ControlNet is more important" with other
modes, all units get the conditional-half-only behaviour and a note says so.
"""

from __future__ import annotations

from typing import Any

import torch

from sdweb.generation.hooks import ControlUnit

BALANCED = "Balanced"
PROMPT_MORE = "My prompt is more important"
CONTROL_MORE = "ControlNet is more important"
CONTROL_MODES = (BALANCED, PROMPT_MORE, CONTROL_MORE)

def _soft_injection_class() -> type:
    from diffusers import ControlNetModel

    class SoftInjectionControlNet(ControlNetModel):
        """Always the guess-mode (soft injection) layer scales; the pipeline still runs both CFG halves."""

        def forward(self, *args: Any, guess_mode: bool = False, **options: Any) -> Any:  # noqa: ARG002
            return super().forward(*args, guess_mode=True, **options)

    return SoftInjectionControlNet


_SOFT_CLASS: list[type] = []


def soft_injection(controlnet: Any) -> Any:
    """A soft-injection twin of a loaded ControlNet that shares its parameters (no copy of the weights)."""
    if not _SOFT_CLASS:
        _SOFT_CLASS.append(_soft_injection_class())
    cls = _SOFT_CLASS[0]
    if isinstance(controlnet, cls):
        return controlnet
    with torch.device("meta"):
        twin = cls.from_config(controlnet.config)
    twin.load_state_dict(controlnet.state_dict(), assign=True)
    return twin.to(device=controlnet.device, dtype=controlnet.dtype).eval()


def control_notes(units: list[ControlUnit]) -> list[str]:
    modes = {unit.control_mode for unit in units}
    if CONTROL_MORE in modes and len(modes) > 1:
        return ["ControlNet units mix 'ControlNet is more important' with other control modes: all units "
                "were applied to the conditional half only."]
    return []
