"""The SDXL refiner: the base model samples until `refiner_switch_at` of the schedule, the refiner checkpoint
finishes the same schedule from the base's latents (diffusers' `denoising_end` / `denoising_start`).

A1111 switches models inside one k-diffusion loop, for any pair of models; diffusers' split schedule needs
an SDXL-family base, so other bases get a clear error instead of a different algorithm.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from sdweb.core.errors import UserError
from sdweb.core.requests import GenerationRequest
from sdweb.generation.composable import composable_guidance
from sdweb.generation.conditioning_plan import loop_iteration, prompt_kwargs, swap_tensors
from sdweb.generation.jobs import JobContext
from sdweb.generation.prompting import PreparedPrompt, plan_conditioning
from sdweb.generation.sampling import StepSwaps, callback_tensor_names, make_step_callback
from sdweb.generation.seeds import step_generators
from sdweb.models.manager import LoadedModel
from sdweb.samplers.build import build_scheduler

NO_REFINER = ("", "None")


def refiner_switch(request: GenerationRequest) -> float | None:
    """The fraction of the schedule the base runs, or None when no refiner is asked for."""
    name = (request.refiner_checkpoint or "").strip()
    if name in NO_REFINER or request.refiner_switch_at is None:
        return None
    if not 0.0 < request.refiner_switch_at < 1.0:
        return None  # 1.0: the base runs everything; 0.0 would skip the base (A1111 ignores it too)
    return float(request.refiner_switch_at)


def check_refiner_pair(base: LoadedModel, refiner: LoadedModel) -> None:
    if base.family.base != "sdxl":
        raise UserError(f"The refiner needs an SDXL base model; {base.entry.name} is {base.family.label}.",
                        code="unsupported_refiner",
                        hint="Choose an SDXL checkpoint, or leave Refiner empty.")
    if refiner.family.base != "sdxl" or refiner.family.img2img_pipeline is None:
        raise UserError(f"{refiner.entry.name} ({refiner.family.label}) cannot be used as an SDXL refiner.",
                        code="unsupported_refiner",
                        hint="Use the SDXL refiner or another SDXL checkpoint.")


def refiner_infotext(refiner: LoadedModel, switch_at: float) -> dict[str, Any]:
    name = refiner.entry.name_for_extra
    shorthash = refiner.entry.shorthash
    return {"Refiner": f"{name} [{shorthash}]" if shorthash else name, "Refiner switch at": switch_at}


def refine(request: GenerationRequest, refiner: LoadedModel, prepared: PreparedPrompt, resolution: Any,
           seeds: list[int], base_latents: torch.Tensor, switch_at: float, settings: Mapping[str, Any],
           context: JobContext | None, keep_latents: Callable[[torch.Tensor], None]) -> torch.Tensor:
    """Finish the schedule with the refiner; returns its latents (decode them with the refiner's VAE)."""
    pipe = refiner.pipeline("img2img")
    built = build_scheduler(dict(refiner.scheduler_config), resolution.sampler, resolution.scheduler,
                            steps=request.steps, eta=request.eta, is_sdxl=True, seed=seeds[0])
    pipe.scheduler = built.scheduler
    second_order = resolution.sampler.second_order
    with torch.no_grad():
        conditioning = plan_conditioning(refiner, pipe, prepared, request.steps, settings, second_order=second_order)
    base_steps = int(request.steps * switch_at)
    # prompt editing and AND go on where the base stopped
    conditioning = conditioning.from_iteration(loop_iteration(base_steps, second_order, pipe.scheduler.order or 1))
    batch = len(seeds)
    remaining = request.steps - base_steps
    swaps = StepSwaps(swap_tensors(conditioning, batch, request.cfg_scale > 1.0, True))
    kwargs: dict[str, Any] = {
        "image": base_latents,
        "denoising_start": switch_at,
        **prompt_kwargs(conditioning.first, batch, is_sdxl=True),
        "guidance_scale": request.cfg_scale,
        "generator": step_generators(seeds, int(settings.get("eta_noise_seed_delta", 0))),
        "output_type": "latent",
        "callback_on_step_end": make_step_callback(context, total_steps=remaining, preview_every=0, is_sdxl=True,
                                                   swaps=swaps, on_latents=keep_latents),
        "callback_on_step_end_tensor_inputs": callback_tensor_names(pipe, swaps),
        **built.call_kwargs,
    }
    if "timesteps" not in kwargs and "sigmas" not in kwargs:
        kwargs["num_inference_steps"] = request.steps
    if getattr(pipe.config, "requires_aesthetics_score", False):
        kwargs["aesthetic_score"] = float(settings.get("sdxl_refiner_high_aesthetic_score", 6.0))
        kwargs["negative_aesthetic_score"] = float(settings.get("sdxl_refiner_low_aesthetic_score", 2.5))
    if context is not None:
        context.start_batch(context.job.progress.job_no, remaining, "Refiner")
    with composable_guidance(pipe, conditioning, swaps):
        return pipe(**kwargs).images
