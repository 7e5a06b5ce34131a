"""Run one batch of a job: inputs, conditioning, the sampling pass (sdweb.generation.unet_sampling), hires, decode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from sdweb.core.errors import UserError
from sdweb.core.requests import GenerationRequest, Img2ImgRequest, Txt2ImgRequest
from sdweb.engines import engine_for
from sdweb.generation.batch_plan import BatchPlan
from sdweb.generation.conditioning_plan import ConditioningPlan
from sdweb.generation.control import control_notes
from sdweb.generation.hires import second_pass
from sdweb.generation.hooks import NO_HOOKS, JobHooks, Processing, SamplingCall, StepInfo
from sdweb.generation.img2img_inputs import Img2ImgInputs, prepare_img2img_inputs
from sdweb.generation.jobs import JobContext
from sdweb.generation.prompting import PreparedPrompt, plan_conditioning
from sdweb.generation.sampling import BatchStopped, StepTracker, has_nan_start
from sdweb.generation.tiling import seamless_tiling
from sdweb.generation.unet_model import UNetExtras, UNetStage
from sdweb.generation.unet_sampling import (
    NoiseSpec,
    UNetPass,
    encode_images,
    encode_tensor,
    inpainting_conditioning,
    latent_mask,
    noise_spec,
    sample_pass,
    sampler_settings,
)
from sdweb.generation.vae_decode import decode_checked
from sdweb.models.families import capabilities_of
from sdweb.models.manager import LoadedModel
from sdweb.postprocess.upscalers import UpscalerRegistry
from sdweb.runtime.execution import execution_device
from sdweb.runtime.policy import RuntimePlan
from sdweb.samplers.run import SamplingPlan, img2img_steps

NAN_MESSAGE = ("A tensor with NaNs was produced in Unet. This could be either because there's not enough "
               "precision to represent the picture, or because your video card does not support half type.")


@dataclass
class BatchOutcome:
    images: list[Image.Image] = field(default_factory=list)
    stopped: str | None = None  # "interrupted" / "skipped"
    notes: list[str] = field(default_factory=list)


def _pipeline_mode(mode: str, request: GenerationRequest, model: LoadedModel) -> str:
    if mode == "img2img" and isinstance(request, Img2ImgRequest) and request.mask is not None:
        return "inpaint"
    return mode


def sampling_plan(request: GenerationRequest, resolution: Any, model: LoadedModel, settings: Mapping[str, Any],
                  strength: float | None = None) -> SamplingPlan:
    """The first pass's sampling plan (img2img: with the init images' strength and noise multiplier)."""
    multiplier = float(settings.get("initial_noise_multiplier", 1.0)) if strength is not None else 1.0
    return SamplingPlan(sampler=resolution.sampler, schedule=resolution.scheduler, steps=request.steps,
                        cfg_scale=request.cfg_scale, eta=request.eta, denoising_strength=strength,
                        is_sdxl=model.family.scheduling.sdxl_tables, v_prediction=model.prediction_type == "v_prediction",
                        flow=model.family.scheduling.kind == "flow",
                        settings=sampler_settings(settings, request.s_min_uncond), noise_multiplier=multiplier)


def _stages(model: LoadedModel, pipe: Any, prepared: PreparedPrompt, request: GenerationRequest,
            resolution: Any, settings: Mapping[str, Any], refiner: tuple[LoadedModel, float] | None,
            edited: Image.Image | None = None) -> tuple[list[UNetStage], float | None]:
    """The base (and the refiner, which takes over inside the same sampling loop, as in A1111). `edited`: the
    image an editing model edits (the first init image), which its text encoder may read with the prompt."""
    second_order = resolution.sampler.second_order
    with torch.no_grad():
        stages = [UNetStage(model, pipe, plan_conditioning(model, pipe, prepared, request.steps, settings,
                                                           second_order=second_order, reference_image=edited))]
        if refiner is None:
            return stages, None
        refiner_model, switch_at = refiner
        refiner_pipe = refiner_model.pipeline("img2img")
        conditioning: ConditioningPlan = plan_conditioning(refiner_model, refiner_pipe, prepared, request.steps,
                                                           settings, second_order=second_order)
    scores = (float(settings.get("sdxl_refiner_high_aesthetic_score", 6.0)),
              float(settings.get("sdxl_refiner_low_aesthetic_score", 2.5)))
    stages.append(UNetStage(refiner_model, refiner_pipe, conditioning, scores))
    return stages, switch_at


def _init_latents(mode: str, inputs: Img2ImgInputs, pipe: Any, seeds: Sequence[int]) -> torch.Tensor | None:
    images = inputs.call_kwargs.get("image")
    if mode == "txt2img" or images is None:
        return None
    images = images if isinstance(images, list | tuple) else [images] * len(seeds)
    latents = encode_images(pipe, images, seeds)
    return inputs.latent_fill(latents) if inputs.latent_fill is not None else latents


def _image_conditioning(inputs: Img2ImgInputs, model: LoadedModel, pipe: Any, seeds: Sequence[int],
                        settings: Mapping[str, Any]) -> torch.Tensor | None:
    if not model.family.is_inpaint:
        return None
    images = inputs.call_kwargs["image"]
    images = list(images) if isinstance(images, list | tuple) else [images] * len(seeds)
    return inpainting_conditioning(pipe, images, inputs.call_kwargs.get("mask_image"), seeds,
                                   float(settings.get("inpainting_mask_weight", 1.0)))


def _reference_latents(inputs: Img2ImgInputs, model: LoadedModel, pipe: Any, seeds: Sequence[int]) -> torch.Tensor | None:
    """An editing model's reference: each init image's latents, the distribution's mode (as diffusers' Kontext)."""
    images = inputs.call_kwargs.get("image")
    if not model.family.features.edit or images is None:
        return None
    images = list(images) if isinstance(images, list | tuple) else [images] * len(seeds)
    return encode_tensor(pipe, pipe.image_processor.preprocess(images), seeds, mode=True)


def _step_hook(extras: BatchExtras) -> Any:
    if extras.p is None:
        return None

    def on_step(done: int, total: int, latents: torch.Tensor) -> None:
        extras.hooks.on_step(extras.p, StepInfo(step=done, total=total, latents=latents))

    return on_step


@dataclass
class BatchExtras:
    """What a batch needs beyond the request: the refiner, and the job's script hooks."""

    refiner: tuple[LoadedModel, float] | None = None
    hooks: JobHooks = NO_HOOKS
    p: Processing | None = None
    upscalers: UpscalerRegistry | None = None  # model upscalers for the hires fix


def run_batch(batch: BatchPlan, plan: RuntimePlan, context: JobContext | None,
              extras: BatchExtras | None = None) -> BatchOutcome:
    """Sample, (hires,) decode one batch on this worker's runtime plan; progress and previews go to `context`."""
    extras = extras or BatchExtras()
    mode, request, model, prepared = batch.mode, batch.request, batch.model, batch.prepared
    resolution, seeds, subseeds, settings = batch.resolution, batch.seeds, batch.subseeds, batch.settings
    engine = engine_for(model.family)
    pipe_mode = _pipeline_mode(mode, request, model)
    pipe = model.pipeline(pipe_mode)
    noise = noise_spec(seeds, subseeds, request.subseed_strength, _resize_from(request), settings)
    inputs = _image_inputs(mode, pipe_mode, request, model, noise, settings)
    strength = inputs.call_kwargs.get("strength") if mode != "txt2img" else None
    sampling = sampling_plan(request, resolution, model, settings, strength)
    edited = _as_list(inputs.call_kwargs.get("image"))[:1] if model.family.features.edit else []
    stages, switch_at = _stages(model, pipe, prepared, request, resolution, settings, extras.refiner,
                                edited[0] if edited else None)
    call = SamplingCall(mode=pipe_mode, capabilities=capabilities_of(model.family, model.prediction_type),
                        width=request.width, height=request.height,
                        batch_size=len(seeds), steps=request.steps, init_images=_as_list(inputs.call_kwargs.get("image")),
                        mask=inputs.call_kwargs.get("mask_image"), device=str(execution_device(pipe)),
                        dtype=engine.denoiser(pipe).dtype)
    if extras.p is not None:
        extras.hooks.before_sampling(extras.p, call)
    if call.controlnets and not model.family.features.controlnet:
        raise UserError(f"ControlNet does not apply to {model.family.label} models yet.",
                        code="unsupported_for_model", hint="Turn the ControlNet units off for this checkpoint.")
    outcome = BatchOutcome(notes=list(inputs.notes) + control_notes(call.controlnets))
    total = img2img_steps(sampling)[1] + 1 if strength is not None else request.steps
    tracker = StepTracker(context, total_steps=total, preview_every=_preview_period(settings),
                          preview=lambda latents: engine.preview(model.family, pipe, latents),
                          on_step=_step_hook(extras))
    with seamless_tiling(pipe, request.tiling), plan.autocast_context(), plan.sdpa_context(), torch.no_grad():
        init_latent = _init_latents(mode, inputs, pipe, seeds)
        unet_extras = UNetExtras(width=request.width, height=request.height, batch=len(seeds),
                                 crop_top_left=(int(settings.get("sdxl_crop_top", 0)),
                                                int(settings.get("sdxl_crop_left", 0))),
                                 image_conditioning=_image_conditioning(inputs, model, pipe, seeds, settings),
                                 controlnets=call.controlnets, sampling_fraction=tracker.progress,
                                 distilled_guidance=request.distilled_cfg_scale,
                                 reference_latents=_reference_latents(inputs, model, pipe, seeds))
        mask = inputs.call_kwargs.get("mask_image") if pipe_mode == "inpaint" else None
        job = UNetPass(plan=sampling, stages=stages, extras=unet_extras, noise=noise, init_latent=init_latent,
                       blend_mask=latent_mask(mask, request.width, request.height, request.mask_round,
                                              model.family.latent.downscale)
                       if mask is not None and init_latent is not None else None,
                       switch_at=switch_at, on_step=tracker,
                       schedule=engine.noise_schedule(model, settings, request.width, request.height,
                                                                request.steps))
        try:
            latents = sample_pass(job).latents
        except BatchStopped as stop:
            outcome.stopped, latents = stop.reason, stop.latents
        prepared.extra_params.update(job.params)
        if latents is None:
            return outcome
        decoder = stages[job.final_stage]  # after a refiner switch: decode with the refiner's VAE
        if _wants_hires(request) and outcome.stopped is None:
            try:
                latents = second_pass(batch, noise, latents, context, extras.upscalers, _step_hook(extras))
            except BatchStopped as stop:
                outcome.stopped, latents = stop.reason, stop.latents
        if plan.nan_check and has_nan_start(latents):
            raise UserError(NAN_MESSAGE, code="nan_output",
                            hint="Try 'Upcast cross attention layer to float32' or --no-half; "
                                 "--disable-nan-check disables this check.")
        images = decode_checked(decoder.pipe, latents, decoder.model, plan, settings, outcome.notes)
    outcome.images = inputs.finish(images)
    return outcome


def _resize_from(request: GenerationRequest) -> tuple[int, int] | None:
    if request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0:
        return request.seed_resize_from_w, request.seed_resize_from_h
    return None


def _as_list(images: Any) -> list[Image.Image]:
    if images is None:
        return []
    return list(images) if isinstance(images, list | tuple) else [images]


def _wants_hires(request: GenerationRequest) -> bool:
    return isinstance(request, Txt2ImgRequest) and request.enable_hr


def _preview_period(settings: Mapping[str, Any]) -> int:
    if not settings.get("live_previews_enable", True):
        return 0
    return max(0, int(settings.get("show_progress_every_n_steps", 10)))


def _image_inputs(mode: str, pipe_mode: str, request: GenerationRequest, model: LoadedModel, noise: NoiseSpec,
                  settings: Mapping[str, Any]) -> Img2ImgInputs:
    """Init image, mask and strength for img2img / inpaint (and txt2img on an inpainting model, which A1111
    runs with an all-white mask over a grey image). The seeds' first noise fills masked content "latent noise"."""
    shape = engine_for(model.family).latent_shape(model.family, request.width, request.height)
    first_noise = noise.rng(shape, execution_device(model.pipeline(pipe_mode))).next()
    return prepare_img2img_inputs(mode, pipe_mode, request, model, first_noise, settings)
