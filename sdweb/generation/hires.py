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
from sdweb.generation.composable import composable_guidance
from sdweb.generation.conditioning_plan import prompt_kwargs, swap_tensors
from sdweb.generation.img2img_steps import schedule_for
from sdweb.generation.jobs import JobContext
from sdweb.generation.prompting import PreparedPrompt, plan_conditioning
from sdweb.generation.sampling import StepSwaps, callback_tensor_names, decode_latents, make_step_callback
from sdweb.generation.seeds import step_generators
from sdweb.models.manager import LoadedModel
from sdweb.postprocess.upscalers import UpscalerRegistry
from sdweb.samplers.build import build_scheduler
from sdweb.samplers.resolve import require_available, resolve_sampler

# name -> (interpolate mode, antialias)
LATENT_MODES = {
    "Latent": ("bilinear", False), "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False), "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False), "Latent (nearest-exact)": ("nearest-exact", False),
}
PIXEL_RESAMPLERS = {"None": Image.Resampling.LANCZOS, "Lanczos": Image.Resampling.LANCZOS,
                    "Nearest": Image.Resampling.NEAREST}


def hires_size(request: Txt2ImgRequest) -> tuple[int, int]:
    width, height = request.hires_target_size()
    return width - width % 8, height - height % 8


def check_upscaler(name: str, upscalers: UpscalerRegistry | None = None) -> None:
    """A latent mode, a resampler, or a model upscaler of the registry; else UserError listing them."""
    if name in LATENT_MODES or name in PIXEL_RESAMPLERS:
        return
    if upscalers is not None:
        upscalers.find(name)  # NotFoundError (a UserError) naming it and listing the upscalers
        return
    valid = ", ".join([*LATENT_MODES, *PIXEL_RESAMPLERS])
    raise UserError(f"Hires upscaler {name!r} not found.", code="upscaler_not_found", hint=f"Use one of: {valid}.")


def _cover_then_crop(latents: torch.Tensor, width: int, height: int, mode: str, antialias: bool) -> torch.Tensor:
    """Scale to cover the target box (keeping aspect), then centre-crop the excess, in latent space."""
    target_h, target_w = height // 8, width // 8
    _, _, h, w = latents.shape
    scale = max(target_h / h, target_w / w)
    cover_h, cover_w = max(target_h, round(h * scale)), max(target_w, round(w * scale))
    kwargs = {"antialias": antialias} if mode in ("bilinear", "bicubic") else {}
    scaled = F.interpolate(latents.float(), size=(cover_h, cover_w), mode=mode, **kwargs).to(latents.dtype)
    top, left = (cover_h - target_h) // 2, (cover_w - target_w) // 2
    return scaled[:, :, top:top + target_h, left:left + target_w]


def upscale_first_pass(request: Txt2ImgRequest, pipe: Any, latents: torch.Tensor,
                       settings: Mapping[str, Any] | None = None, upscalers: UpscalerRegistry | None = None) -> Any:
    """The second pass's input: upscaled latents, or upscaled images for pixel upscalers (a model upscaler
    runs at its native scale, then the result is Lanczos-resized to the exact size)."""
    width, height = hires_size(request)
    if request.hr_upscaler in LATENT_MODES:
        mode, antialias = LATENT_MODES[request.hr_upscaler]
        return _cover_then_crop(latents, width, height, mode, antialias)
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


def second_pass(request: Txt2ImgRequest, model: LoadedModel, prepared: PreparedPrompt, seeds: list[int],
                first_latents: torch.Tensor, settings: Mapping[str, Any], context: JobContext | None,
                keep_latents: Any, upscalers: UpscalerRegistry | None = None) -> torch.Tensor:
    pipe = model.pipeline("img2img")
    hr_steps = request.hr_second_pass_steps or request.steps
    schedule_steps, strength = schedule_for(hr_steps, request.denoising_strength)
    resolution = resolve_sampler(request.hr_sampler_name or request.sampler_name,
                                 request.hr_scheduler or request.scheduler, strict=True)
    require_available(resolution.sampler)
    built = build_scheduler(dict(model.scheduler_config), resolution.sampler, resolution.scheduler,
                            steps=schedule_steps, eta=request.eta, is_sdxl=model.is_sdxl, seed=seeds[0])
    pipe.scheduler = built.scheduler
    with torch.no_grad():
        conditioning = plan_conditioning(model, pipe, _hires_prompt(prepared, request), hr_steps, settings,
                                         second_order=resolution.sampler.second_order, first_pass_steps=request.steps)
    batch = len(seeds)
    swaps = StepSwaps(swap_tensors(conditioning, batch, request.cfg_scale > 1.0, model.is_sdxl))
    kwargs: dict[str, Any] = {
        "image": upscale_first_pass(request, pipe, first_latents, settings, upscalers),
        "strength": strength,
        **prompt_kwargs(conditioning.first, batch, model.is_sdxl),
        "guidance_scale": request.cfg_scale,
        "generator": step_generators(seeds, 0),
        "output_type": "latent",
        "callback_on_step_end": make_step_callback(context, total_steps=hr_steps, preview_every=0,
                                                   is_sdxl=model.is_sdxl, swaps=swaps,
                                                   on_latents=keep_latents),
        "callback_on_step_end_tensor_inputs": callback_tensor_names(pipe, swaps),
        **built.call_kwargs,
    }
    if "timesteps" not in kwargs and "sigmas" not in kwargs:
        kwargs["num_inference_steps"] = schedule_steps
    if context is not None:
        context.start_batch(context.job.progress.job_no + 1, hr_steps, "Hires fix")
    with composable_guidance(pipe, conditioning, swaps):
        return pipe(**kwargs).images


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
