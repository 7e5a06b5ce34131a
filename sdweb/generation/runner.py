"""Run one batch of a job through the model's diffusers pipeline, with our noise, conditioning and sampler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from sdweb.core.errors import UserError
from sdweb.core.requests import GenerationRequest, Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.composable import composable_guidance
from sdweb.generation.conditioning_plan import prompt_kwargs, swap_tensors
from sdweb.generation.control import with_controlnets
from sdweb.generation.hires import second_pass
from sdweb.generation.hooks import NO_HOOKS, JobHooks, Processing, SamplingCall, StepInfo
from sdweb.generation.img2img_inputs import Img2ImgInputs, prepare_img2img_inputs
from sdweb.generation.img2img_steps import img2img_schedule
from sdweb.generation.jobs import JobContext
from sdweb.generation.latent_fill import filled_init_latents
from sdweb.generation.prompting import PreparedPrompt, plan_conditioning
from sdweb.generation.refiner import refine
from sdweb.generation.sampling import (
    BatchStopped,
    StepSwaps,
    callback_tensor_names,
    has_nan_start,
    make_step_callback,
)
from sdweb.generation.seeds import batch_noise, step_generators
from sdweb.generation.tiling import seamless_tiling
from sdweb.generation.vae_decode import decode_checked
from sdweb.models.manager import LoadedModel
from sdweb.postprocess.upscalers import UpscalerRegistry
from sdweb.runtime.policy import RuntimePlan
from sdweb.samplers.build import build_scheduler

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


def _noise_device(plan: RuntimePlan, settings: Mapping[str, Any]) -> str:
    if settings.get("randn_source") == "GPU" and plan.device.startswith("cuda"):
        return plan.device
    return "cpu"


def run_batch(mode: str, request: GenerationRequest, model: LoadedModel, prepared: PreparedPrompt,
              resolution: Any, seeds: list[int], subseeds: list[int], settings: Mapping[str, Any],
              plan: RuntimePlan, context: JobContext | None,
              extras: BatchExtras | None = None) -> BatchOutcome:
    extras = extras or BatchExtras()
    refiner = extras.refiner
    pipe_mode = _pipeline_mode(mode, request, model)
    pipe = model.pipeline(pipe_mode)
    batch = len(seeds)
    inputs = _image_inputs(mode, pipe_mode, request, model, seeds, subseeds, settings, plan)
    schedule_steps = request.steps
    if "strength" in inputs.call_kwargs:  # img2img: the schedule that runs the wanted number of steps
        schedule_steps, inputs.call_kwargs["strength"] = img2img_schedule(
            request.steps, inputs.call_kwargs["strength"], bool(settings.get("img2img_fix_steps", False)))
    built = build_scheduler(dict(model.scheduler_config), resolution.sampler, resolution.scheduler,
                            steps=schedule_steps, eta=request.eta, is_sdxl=model.is_sdxl, seed=seeds[0])
    pipe.scheduler = built.scheduler
    with torch.no_grad():
        conditioning = plan_conditioning(model, pipe, prepared, request.steps, settings,
                                         second_order=resolution.sampler.second_order)
    use_cfg = request.cfg_scale > 1.0
    swaps = StepSwaps(swap_tensors(conditioning, batch, use_cfg, model.is_sdxl))
    last_latents: list[torch.Tensor] = []
    callback = make_step_callback(context, total_steps=request.steps,
                                  preview_every=_preview_period(settings), is_sdxl=model.is_sdxl, swaps=swaps,
                                  on_latents=_step_watcher(extras, request.steps, last_latents))
    kwargs: dict[str, Any] = {
        **prompt_kwargs(conditioning.first, batch, model.is_sdxl),
        "guidance_scale": request.cfg_scale,
        "generator": step_generators(seeds, int(settings.get("eta_noise_seed_delta", 0))),
        "output_type": "latent",
        "callback_on_step_end": callback,
        "callback_on_step_end_tensor_inputs": callback_tensor_names(pipe, swaps),
        **built.call_kwargs,
    }
    if "timesteps" not in kwargs and "sigmas" not in kwargs:
        kwargs["num_inference_steps"] = schedule_steps
    kwargs.update(inputs.call_kwargs)
    call = SamplingCall(mode=pipe_mode, family=model.family.base, width=request.width, height=request.height,
                        batch_size=batch, steps=request.steps, init_images=_as_list(kwargs.get("image")),
                        mask=kwargs.get("mask_image"), device=str(pipe.unet.device), dtype=pipe.unet.dtype)
    if extras.p is not None:
        extras.hooks.before_sampling(extras.p, call)
    if call.controlnets:
        pipe = with_controlnets(pipe, pipe_mode, model.family.base, call.controlnets, kwargs, built.notes)
    if model.is_sdxl:
        kwargs["crops_coords_top_left"] = (int(settings.get("sdxl_crop_top", 0)),
                                           int(settings.get("sdxl_crop_left", 0)))
    if refiner is not None:
        kwargs["denoising_end"] = refiner[1]
    outcome = BatchOutcome(notes=list(built.notes))
    with seamless_tiling(pipe, request.tiling), plan.autocast_context(), plan.sdpa_context():
        try:
            with composable_guidance(pipe, conditioning, swaps), filled_init_latents(pipe, inputs.latent_fill):
                latents = pipe(**kwargs).images
        except BatchStopped as stop:
            outcome.stopped = stop.reason
            latents = last_latents[0] if last_latents else None
        if latents is None:
            return outcome
        if refiner is not None and outcome.stopped is None:
            try:
                latents = refine(request, refiner[0], prepared, resolution, seeds, latents, refiner[1], settings,
                                 context, lambda step_latents: _keep(last_latents, step_latents))
            except BatchStopped as stop:
                outcome.stopped = stop.reason
                latents = last_latents[0]
            pipe = refiner[0].pipeline("img2img")  # decode with the refiner's VAE
        if _wants_hires(request) and outcome.stopped is None:
            try:
                latents = second_pass(request, model, prepared, seeds, latents, settings, context,
                                      lambda step_latents: _keep(last_latents, step_latents), extras.upscalers)
            except BatchStopped as stop:
                outcome.stopped = stop.reason
                latents = last_latents[0]
        if plan.nan_check and has_nan_start(latents):
            raise UserError(NAN_MESSAGE, code="nan_output",
                            hint="Try 'Upcast cross attention layer to float32' or --no-half; "
                                 "--disable-nan-check disables this check.")
        images = decode_checked(pipe, latents, refiner[0] if refiner is not None else model, plan, settings,
                                outcome.notes)
    outcome.images = inputs.finish(images)
    return outcome


@dataclass
class BatchExtras:
    """What a batch needs beyond the request: the refiner, and the job's script hooks."""

    refiner: tuple[LoadedModel, float] | None = None
    hooks: JobHooks = NO_HOOKS
    p: Processing | None = None
    upscalers: UpscalerRegistry | None = None  # model upscalers for the hires fix


def _as_list(images: Any) -> list[Image.Image]:
    if images is None:
        return []
    return list(images) if isinstance(images, list | tuple) else [images]


def _step_watcher(extras: BatchExtras, total: int, store: list[torch.Tensor]) -> Any:
    """Keeps the last latents (for interrupt) and tells the scripts' on_step hook."""
    counter = [0]

    def watch(latents: torch.Tensor) -> None:
        _keep(store, latents)
        counter[0] += 1
        if extras.p is not None:
            extras.hooks.on_step(extras.p, StepInfo(step=counter[0], total=total, latents=latents))

    return watch


def _wants_hires(request: GenerationRequest) -> bool:
    return isinstance(request, Txt2ImgRequest) and request.enable_hr


def _keep(store: list[torch.Tensor], latents: torch.Tensor) -> None:
    store[:] = [latents]


def _preview_period(settings: Mapping[str, Any]) -> int:
    if not settings.get("live_previews_enable", True):
        return 0
    return max(0, int(settings.get("show_progress_every_n_steps", 10)))


def _image_inputs(mode: str, pipe_mode: str, request: GenerationRequest, model: LoadedModel,
                  seeds: list[int], subseeds: list[int], settings: Mapping[str, Any],
                  plan: RuntimePlan) -> Img2ImgInputs:
    """Noise for txt2img; init image, mask and strength for img2img / inpaint (and txt2img on an inpainting
    model, which A1111 runs with an all-white mask over a grey image)."""
    shape = (model.family.latent_channels, request.height // 8, request.width // 8)
    resize_from = None
    if request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0:
        resize_from = (request.seed_resize_from_w, request.seed_resize_from_h)
    noise = batch_noise(shape, seeds, subseeds, request.subseed_strength, resize_from,
                        _noise_device(plan, settings), str(settings.get("randn_source", "CPU")))
    return prepare_img2img_inputs(mode, pipe_mode, request, model, noise, settings)
