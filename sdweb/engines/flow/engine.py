"""The flow-matching transformer engine (Flux.1 dev / schnell and fine-tunes, Chroma, SD 3 / 3.5): prompts
through the record's encoders (CLIP pooled / sequences, T5 with Forge's emphasis and BREAK), a shifted flow
noise table, the transformer called through its adapter with distilled guidance or CFG, previews from the
record's latent colours. What the record says a family cannot do is refused by name."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from sdweb.core.errors import UserError
from sdweb.core.requests import GenerationRequest, Txt2ImgRequest
from sdweb.engines.flow.model_call import FlowModelCall
from sdweb.engines.flow.text import FlowTextEncoder, TextOptions
from sdweb.engines.flow.transformers import FlowConditioning
from sdweb.generation.conditioning_plan import ConditioningPlan, build_plan
from sdweb.generation.previews import latent_preview
from sdweb.generation.prompting import PreparedPrompt, schedule_options
from sdweb.generation.refiner import refiner_switch
from sdweb.generation.sampling import decode_latents
from sdweb.generation.unet_model import UNetExtras, UNetStage
from sdweb.models.families import Family
from sdweb.models.flow_loader import image_processor_for
from sdweb.models.manager import LoadedModel
from sdweb.prompts.qwen import vision_input
from sdweb.samplers.flow import (
    FLOW_SAMPLER_FUNCTIONS,
    FLOW_SCHEDULES,
    FlowSchedule,
    dynamic_shift,
    empirical_mu,
)
from sdweb.samplers.resolve import Resolution, effective_schedule
from sdweb.samplers.table import SAMPLERS, SCHEDULERS


class FlowPromptEncoder:
    """The prompt-plan encoder for flow models: one conditioning per text (T5 sequences are not chunked, so
    there is nothing to pad: rows of different lengths go through the transformer separately)."""

    def __init__(self, text_encoder: FlowTextEncoder) -> None:
        self.text_encoder = text_encoder

    def encode(self, text: str) -> FlowConditioning:
        return self.text_encoder.encode(text)

    def chunks(self, text: str) -> int:
        return 1

    def padded(self, text: str, chunks: int) -> FlowConditioning:
        return self.encode(text)


def flow_samplers() -> list[str]:
    return [info.name for info in SAMPLERS if info.function in FLOW_SAMPLER_FUNCTIONS]


def flow_schedules() -> list[str]:
    return [info.label for info in SCHEDULERS if info.name in FLOW_SCHEDULES or info.name == "automatic"]


def _refuse(what: str, family: Family, field: str, valid: Sequence[str]) -> UserError:
    return UserError(f"{what} does not apply to {family.label} (a flow-matching model).", code="unsupported_for_model",
                     hint=f"{field}: use one of {', '.join(valid)}.")


def shift_for(family: Family, settings: Mapping[str, Any], width: int = 0, height: int = 0, steps: int = 0) -> float:
    """The setting `flow_shift` (Forge's Shift) when set, else the family's: a dynamic one from the image's token
    count (Qwen-Image) and, for Flux.2, the step count, or its static shift."""
    chosen = float(settings.get("flow_shift") or 0.0)
    scheduling = family.scheduling
    tokens_side = family.latent.downscale * family.latent.patch
    if not chosen and scheduling.empirical_mu:
        return math.exp(empirical_mu((height // tokens_side) * (width // tokens_side), max(1, steps)))
    if chosen or not scheduling.dynamic_shift:
        return chosen or scheduling.shift
    return dynamic_shift((height // tokens_side) * (width // tokens_side), scheduling.base_shift,
                         scheduling.max_shift, scheduling.base_seq_len, scheduling.max_seq_len)


class FlowEngine:
    kind = "flow"

    def check_request(self, model: LoadedModel, request: GenerationRequest, resolution: Resolution,
                      settings: Mapping[str, Any]) -> list[str]:
        """UserError for what the family cannot do; notes for what it ignores."""
        family = model.family
        if family.is_inpaint:
            raise UserError(f"{family.label} checkpoints (the inpainting / outpainting transformer) cannot generate "
                            "here yet.", code="unsupported_model",
                            hint="Inpaint with Flux.1 dev or schnell: sdweb blends the masked latents as A1111 does.")
        samplers = [resolution.sampler]
        if isinstance(request, Txt2ImgRequest) and request.enable_hr:
            from sdweb.samplers.resolve import resolve_sampler

            samplers.append(resolve_sampler(request.hr_sampler_name or request.sampler_name,
                                            request.hr_scheduler or request.scheduler, strict=True).sampler)
        for sampler in samplers:
            if sampler.function not in FLOW_SAMPLER_FUNCTIONS:
                raise _refuse(f"The sampler {sampler.name!r}", family, "sampler_name", flow_samplers())
        used = effective_schedule(resolution.sampler, resolution.scheduler)
        if used is not None and used.name not in FLOW_SCHEDULES:
            raise _refuse(f"The schedule type {used.label!r}", family, "scheduler", flow_schedules())
        multiple = family.size_multiple
        for field, value in (("width", request.width), ("height", request.height)):
            if value % multiple:
                raise UserError(f"{field} {value} is not a multiple of {multiple}, which {family.label} needs.",
                                code="invalid_size", hint=f"Use {value - value % multiple} or "
                                                          f"{value - value % multiple + multiple}.")
        if refiner_switch(request) is not None:
            raise UserError(f"A refiner does not apply to {family.label}.", code="unsupported_for_model",
                            hint="Leave refiner_checkpoint empty.")
        if request.tiling:
            raise UserError(f"Tiling does not apply to {family.label}.", code="unsupported_for_model",
                            hint="Turn tiling off.")
        notes = []
        if request.negative_prompt.strip() and request.cfg_scale == 1.0:
            notes.append(f"The negative prompt is not used: {family.label} uses it only with CFG scale above 1 "
                         "(as Forge).")
        if int(settings.get("CLIP_stop_at_last_layers", 1)) > 1 and not family.features.clip_skip:
            notes.append(f"Clip skip does not apply to {family.label} and was not used.")
        return notes

    def denoiser(self, pipe: Any) -> torch.nn.Module:
        return pipe.transformer

    def noise_schedule(self, model: LoadedModel, settings: Mapping[str, Any], width: int, height: int,
                       steps: int = 0) -> FlowSchedule:
        family = model.family
        return FlowSchedule(shift_for(family, settings, width, height, steps), terminal=family.scheduling.shift_terminal)

    def latent_shape(self, family: Family, width: int, height: int) -> tuple[int, int, int]:
        down = family.latent.downscale
        return family.latent.channels, height // down, width // down

    def plan_conditioning(self, model: LoadedModel, pipe: Any, prepared: PreparedPrompt, steps: int,
                          settings: Mapping[str, Any], second_order: bool = False,
                          first_pass_steps: int | None = None,
                          reference_image: Image.Image | None = None) -> ConditioningPlan:
        options = TextOptions(emphasis=str(settings.get("emphasis", "Original")),
                              comma_backtrack=int(settings.get("comma_padding_backtrack", 20)))
        image = None
        if reference_image is not None and any(spec.vision for spec in model.family.text_encoders):
            image = vision_input(image_processor_for(model.family), reference_image.convert("RGB"))
        encoder = FlowPromptEncoder(FlowTextEncoder(pipe, model.family.text_encoders, options, prepared.encoded,
                                                    image))
        return build_plan(encoder, prepared.encode_text, prepared.encode_negative,
                          schedule_options(steps, settings, second_order, first_pass_steps))

    def model_call(self, stages: Sequence[UNetStage], extras: UNetExtras, schedule: Any,
                   switch_at: float | None) -> FlowModelCall:
        return FlowModelCall(stages, extras)

    def preview(self, family: Family, pipe: Any, latents: torch.Tensor) -> Image.Image:
        if family.latent.preview_rgb:
            return latent_preview(latents, family.latent.preview_rgb, downscale=family.latent.downscale)
        return decode_latents(pipe, latents[:1])[0]

    def infotext(self, model: LoadedModel, request: GenerationRequest, settings: Mapping[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if model.family.guidance.distilled:
            params["Distilled CFG Scale"] = request.distilled_cfg_scale
        if float(settings.get("flow_shift") or 0.0):
            params["Shift"] = float(settings["flow_shift"])
        for number, name in enumerate(model.modules, start=1):
            params[f"Module {number}"] = name
        return params


FLOW_ENGINE = FlowEngine()
