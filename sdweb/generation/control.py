"""ControlNet units on a sampling call: the ControlNet variant of the model's pipeline (diffusers), sharing
its weights, with A1111/sd-webui-controlnet's weight, guidance start/end and control modes.

Control modes, as sd-webui-controlnet defines them:
- Balanced: residuals x weight, on both halves of the CFG batch (diffusers' default).
- ControlNet is more important: soft injection (layer i scaled by 0.825^(12-i), which is exactly diffusers'
  guess-mode logspace(-1, 0)) and control on the conditional half only: diffusers' `guess_mode=True`.
- My prompt is more important: the same soft injection on both halves; done with a ControlNet subclass that
  always applies the guess-mode scales, sharing the loaded weights.
diffusers' guess mode is one switch per call, so when units mix "ControlNet is more important" with other
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

_PIPELINES = {
    ("sd", "txt2img"): "StableDiffusionControlNetPipeline",
    ("sd", "img2img"): "StableDiffusionControlNetImg2ImgPipeline",
    ("sd", "inpaint"): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl", "txt2img"): "StableDiffusionXLControlNetPipeline",
    ("sdxl", "img2img"): "StableDiffusionXLControlNetImg2ImgPipeline",
    ("sdxl", "inpaint"): "StableDiffusionXLControlNetInpaintPipeline",
}


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


def pipeline_class_name(family: str, mode: str) -> str:
    return _PIPELINES[("sdxl" if family == "sdxl" else "sd", mode)]


def with_controlnets(pipe: Any, mode: str, family: str, units: list[ControlUnit], kwargs: dict[str, Any],
                     notes: list[str]) -> Any:
    """The ControlNet pipeline for `pipe` (same components) and the call arguments for `units`."""
    import diffusers

    modes = {unit.control_mode for unit in units}
    guess_mode = CONTROL_MORE in modes
    if guess_mode and len(modes) > 1:
        notes.append("ControlNet units mix 'ControlNet is more important' with other control modes: all units "
                     "were applied to the conditional half only.")
    models = [soft_injection(unit.model) if unit.control_mode == PROMPT_MORE and not guess_mode else unit.model
              for unit in units]
    controlnet = models[0] if len(models) == 1 else diffusers.MultiControlNetModel(models)
    cls = getattr(diffusers, pipeline_class_name(family, mode))
    control_pipe = cls.from_pipe(pipe, controlnet=controlnet)
    images = [unit.image for unit in units]
    image_arg = "image" if mode == "txt2img" else "control_image"
    kwargs[image_arg] = images[0] if len(units) == 1 else images
    one = len(units) == 1
    kwargs["controlnet_conditioning_scale"] = units[0].weight if one else [unit.weight for unit in units]
    kwargs["control_guidance_start"] = units[0].guidance_start if one else [u.guidance_start for u in units]
    kwargs["control_guidance_end"] = units[0].guidance_end if one else [u.guidance_end for u in units]
    kwargs["guess_mode"] = guess_mode
    return control_pipe
