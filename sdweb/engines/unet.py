"""The SD-style UNet engine (SD 1.x, SD 2.x eps / v, SDXL base, refiner and inpainting): CLIP prompts with
A1111's chunks, emphasis, embeddings and clip skip; LDM's discrete noise table; the UNet call with SDXL's
added conditions, an inpainting model's image conditioning, ControlNets and the refiner switch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from sdweb.core.requests import GenerationRequest
from sdweb.generation.conditioning_plan import ConditioningPlan
from sdweb.generation.previews import latent_preview
from sdweb.generation.prompting import PreparedPrompt, plan_clip_conditioning
from sdweb.generation.sampling import decode_latents
from sdweb.generation.unet_model import UNetExtras, UNetModelCall, UNetStage
from sdweb.models.families import Family
from sdweb.models.manager import LoadedModel
from sdweb.samplers.discrete import DiscreteSchedule, ldm_alphas_cumprod
from sdweb.samplers.resolve import Resolution


class UNetEngine:
    kind = "unet"

    def check_request(self, model: LoadedModel, request: GenerationRequest, resolution: Resolution,
                      settings: Mapping[str, Any]) -> list[str]:
        return []  # every sampler, schedule and feature applies

    def denoiser(self, pipe: Any) -> torch.nn.Module:
        return pipe.unet

    def noise_schedule(self, model: LoadedModel, settings: Mapping[str, Any], width: int = 0,
                       height: int = 0, steps: int = 0) -> DiscreteSchedule:
        zero_snr = settings.get("sd_noise_schedule") == "Zero Terminal SNR"
        return DiscreteSchedule(ldm_alphas_cumprod(model.scheduler_config, zero_snr))

    def latent_shape(self, family: Family, width: int, height: int) -> tuple[int, int, int]:
        down = family.latent.downscale
        return family.latent.channels, height // down, width // down

    def plan_conditioning(self, model: LoadedModel, pipe: Any, prepared: PreparedPrompt, steps: int,
                          settings: Mapping[str, Any], second_order: bool = False,
                          first_pass_steps: int | None = None,
                          reference_image: Image.Image | None = None) -> ConditioningPlan:
        return plan_clip_conditioning(model, pipe, prepared, steps, settings, second_order, first_pass_steps)

    def model_call(self, stages: Sequence[UNetStage], extras: UNetExtras, schedule: Any,
                   switch_at: float | None) -> UNetModelCall:
        return UNetModelCall(list(stages), extras, schedule, switch_at)

    def preview(self, family: Family, pipe: Any, latents: torch.Tensor) -> Image.Image:
        if family.latent.preview_rgb:
            return latent_preview(latents, family.latent.preview_rgb, downscale=family.latent.downscale)
        return decode_latents(pipe, latents[:1])[0]

    def infotext(self, model: LoadedModel, request: GenerationRequest, settings: Mapping[str, Any]) -> dict[str, Any]:
        return {}


UNET_ENGINE = UNetEngine()
