"""Hires. fix: upscale the first pass (in latent space or with a pixel upscaler), then an img2img second pass
that runs exactly the hires step count (a1111.md §11)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from sdweb.core.errors import UserError
from sdweb.core.requests import Txt2ImgRequest
from sdweb.engines import engine_for
from sdweb.generation.batch_plan import BatchPlan
from sdweb.generation.jobs import JobContext
from sdweb.generation.prompting import PreparedPrompt, plan_conditioning
from sdweb.generation.sampling import StepTracker, decode_latents
from sdweb.generation.unet_model import UNetExtras, UNetStage
from sdweb.generation.unet_sampling import NoiseSpec, UNetPass, encode_images, sample_pass, sampler_settings
from sdweb.postprocess.upscalers import UpscalerRegistry
from sdweb.samplers.resolve import resolve_sampler
from sdweb.samplers.run import SamplingPlan

MIN_STRENGTH = 1e-3  # a denoising strength of 0 would give a schedule of no steps

# name -> (interpolate mode, antialias)
LATENT_MODES = {
    "Latent": ("bilinear", False), "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False), "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False), "Latent (nearest-exact)": ("nearest-exact", False),
}
PIXEL_RESAMPLERS = {"None": Image.Resampling.LANCZOS, "Lanczos": Image.Resampling.LANCZOS,
                    "Nearest": Image.Resampling.NEAREST}


def hires_size(request: Txt2ImgRequest, multiple: int = 8) -> tuple[int, int]:
    width, height = request.hires_target_size()
    return width - width % multiple, height - height % multiple


def check_upscaler(name: str, upscalers: UpscalerRegistry | None = None) -> None:
    """A latent mode, a resampler, or a model upscaler of the registry; else UserError listing them."""
    if name in LATENT_MODES or name in PIXEL_RESAMPLERS:
        return
    if upscalers is not None:
        upscalers.find(name)  # NotFoundError (a UserError) naming it and listing the upscalers
        return
    valid = ", ".join([*LATENT_MODES, *PIXEL_RESAMPLERS])
    raise UserError(f"Hires upscaler {name!r} not found.", code="upscaler_not_found", hint=f"Use one of: {valid}.")


def _cover_then_crop(latents: torch.Tensor, width: int, height: int, mode: str, antialias: bool,
                     downscale: int = 8) -> torch.Tensor:
    """Scale to cover the target box (keeping aspect), then centre-crop the excess, in latent space (`downscale`
    image pixels per latent pixel: 16 for Flux.2's patch latents)."""
    target_h, target_w = height // downscale, width // downscale
    _, _, h, w = latents.shape
    scale = max(target_h / h, target_w / w)
    cover_h, cover_w = max(target_h, round(h * scale)), max(target_w, round(w * scale))
    kwargs = {"antialias": antialias} if mode in ("bilinear", "bicubic") else {}
    scaled = F.interpolate(latents.float(), size=(cover_h, cover_w), mode=mode, **kwargs).to(latents.dtype)
    top, left = (cover_h - target_h) // 2, (cover_w - target_w) // 2
    return scaled[:, :, top:top + target_h, left:left + target_w]


def upscale_first_pass(request: Txt2ImgRequest, pipe: Any, latents: torch.Tensor,
                       settings: Mapping[str, Any] | None = None, upscalers: UpscalerRegistry | None = None,
                       multiple: int = 8, downscale: int = 8) -> Any:
    """The second pass's input: upscaled latents, or upscaled images for pixel upscalers (a model upscaler
    runs at its native scale, then the result is Lanczos-resized to the exact size)."""
    width, height = hires_size(request, multiple)
    if request.hr_upscaler in LATENT_MODES:
        mode, antialias = LATENT_MODES[request.hr_upscaler]
        return _cover_then_crop(latents, width, height, mode, antialias, downscale)
    images = decode_latents(pipe, latents)
    if request.hr_upscaler not in PIXEL_RESAMPLERS and upscalers is not None:
        return [upscalers.upscale_to(image, request.hr_upscaler, width, height, settings or {}) for image in images]
    resample = PIXEL_RESAMPLERS[request.hr_upscaler]
    return [image.resize((width, height), resample) for image in images]


def _hires_prompt(prepared: PreparedPrompt, request: Txt2ImgRequest) -> PreparedPrompt:
    text = prepared.hr_encode_text if request.hr_prompt and prepared.hr_encode_text is not None \
        else prepared.encode_text
    negative = prepared.hr_encode_negative if request.hr_negative_prompt and prepared.hr_encode_negative \
        is not None else prepared.encode_negative
    return replace(prepared, encode_text=text, encode_negative=negative)


def second_pass(batch: BatchPlan, noise: NoiseSpec, first_latents: torch.Tensor, context: JobContext | None,
                upscalers: UpscalerRegistry | None = None, on_step: Any = None) -> torch.Tensor:
    """A1111's hires pass: img2img of the upscaled first pass with fresh noise from the same seeds at the new
    size, running exactly the hires step count. Its infotext entries go to the batch's prompt's extra_params."""
    request, model, prepared, settings = batch.request, batch.model, batch.prepared, batch.settings
    if not isinstance(request, Txt2ImgRequest):
        raise TypeError(f"the hires pass runs for txt2img requests, not {type(request).__name__}")
    pipe = model.pipeline("img2img")
    hr_steps = request.hr_second_pass_steps or request.steps
    resolution = resolve_sampler(request.hr_sampler_name or request.sampler_name,
                                 request.hr_scheduler or request.scheduler, strict=True)
    multiple = model.family.size_multiple
    width, height = hires_size(request, multiple)
    with torch.no_grad():
        conditioning = plan_conditioning(model, pipe, _hires_prompt(prepared, request), hr_steps, settings,
                                         second_order=resolution.sampler.second_order, first_pass_steps=request.steps)
        upscaled = upscale_first_pass(request, pipe, first_latents, settings, upscalers, multiple,
                                      model.family.latent.downscale)
        init_latent = upscaled if isinstance(upscaled, torch.Tensor) else encode_images(pipe, upscaled, noise.seeds)
    plan = SamplingPlan(sampler=resolution.sampler, schedule=resolution.scheduler, steps=hr_steps,
                        cfg_scale=request.cfg_scale, eta=request.eta,
                        denoising_strength=max(float(request.denoising_strength), MIN_STRENGTH), exact_steps=True,
                        is_sdxl=model.family.scheduling.sdxl_tables, v_prediction=model.prediction_type == "v_prediction",
                        flow=model.family.scheduling.kind == "flow",
                        settings=sampler_settings(settings, request.s_min_uncond))
    tracker = StepTracker(context, total_steps=hr_steps, preview_every=0, on_step=on_step)
    if context is not None:
        context.start_batch(context.job.progress.job_no + 1, hr_steps, "Hires fix")
    extras = UNetExtras(width=width, height=height, batch=len(noise.seeds),
                        crop_top_left=(int(settings.get("sdxl_crop_top", 0)), int(settings.get("sdxl_crop_left", 0))),
                        sampling_fraction=tracker.progress, distilled_guidance=request.distilled_cfg_scale)
    job = UNetPass(plan=plan, stages=[UNetStage(model, pipe, conditioning)], extras=extras, noise=noise,
                   init_latent=init_latent, on_step=tracker,
                   schedule=engine_for(model.family).noise_schedule(model, settings, width, height, hr_steps))
    latents = sample_pass(job).latents
    params = prepared.extra_params
    params.update({key: value for key, value in job.params.items() if key not in params})
    return latents


def hires_infotext(request: Txt2ImgRequest) -> dict[str, Any]:
    params: dict[str, Any] = {"Denoising strength": request.denoising_strength}
    if request.hr_resize_x == 0 and request.hr_resize_y == 0:
        params["Hires upscale"] = request.hr_scale
    else:
        params["Hires resize"] = "{}x{}".format(*hires_size(request))
    if request.hr_second_pass_steps:
        params["Hires steps"] = request.hr_second_pass_steps
    params["Hires upscaler"] = request.hr_upscaler
    if request.hr_sampler_name and request.hr_sampler_name != request.sampler_name:
        params["Hires sampler"] = request.hr_sampler_name
    if request.hr_prompt and request.hr_prompt != request.prompt:
        params["Hires prompt"] = request.hr_prompt
    if request.hr_negative_prompt and request.hr_negative_prompt != request.negative_prompt:
        params["Hires negative prompt"] = request.hr_negative_prompt
    return params
