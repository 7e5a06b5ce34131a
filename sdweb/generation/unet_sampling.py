"""The seam between generation and the sampling layer: :func:`sample_pass` is the one call txt2img, img2img,
inpainting, the hires pass and the refiner go through, for every engine.

It takes the model's noise table and network call from its engine (:mod:`sdweb.engines`), builds the per-image
noise (A1111's ImageRNG) and hands them to :func:`sdweb.samplers.run.sample`; previews, progress, script hooks
and interrupt/skip hang on the sampler's per-step callback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from sdweb.engines import engine_for
from sdweb.generation.latent_codec import encode_raw, from_vae_latents
from sdweb.generation.unet_model import UNetExtras, UNetStage
from sdweb.runtime.execution import execution_device
from sdweb.samplers.context import StepState
from sdweb.samplers.denoisers import MaskBlend
from sdweb.samplers.rng import DEFAULT_SOURCE, ImageRNG
from sdweb.samplers.run import SamplerSettings, SamplingOutcome, SamplingPlan, sample


@dataclass(frozen=True)
class NoiseSpec:
    """A batch's seeds and A1111's noise settings."""

    seeds: Sequence[int]
    subseeds: Sequence[int] = ()
    subseed_strength: float = 0.0
    seed_resize_from: tuple[int, int] | None = None
    eta_noise_seed_delta: int = 0
    source: str = DEFAULT_SOURCE

    def rng(self, shape: Sequence[int], device: Any) -> ImageRNG:
        return ImageRNG(shape, self.seeds, subseeds=self.subseeds, subseed_strength=self.subseed_strength,
                        seed_resize_from=self.seed_resize_from, eta_noise_seed_delta=self.eta_noise_seed_delta,
                        source=self.source, device=device)


@dataclass
class UNetPass:
    plan: SamplingPlan
    stages: list[UNetStage]
    extras: UNetExtras
    noise: NoiseSpec
    init_latent: torch.Tensor | None = None  # img2img / hires: the encoded (and filled) init images
    blend_mask: torch.Tensor | None = None  # inpainting: (N or 1, 1, h, w), 1 = sample here (A1111's nmask)
    switch_at: float | None = None  # refiner switch point (stages[1] takes over)
    on_step: Callable[[StepState], None] | None = None
    schedule: Any = None  # the engine's noise table (engine.noise_schedule); None = the model's default
    params: dict[str, Any] = field(default_factory=dict)  # infotext keys the sampler added (filled in)
    final_stage: int = 0  # the stage that ran last (1 after a refiner switch; filled in)


def sample_pass(job: UNetPass) -> SamplingOutcome:
    """Sample one batch of one pass; returns the final latents (inpainting: blended with the init latent)."""
    base = job.stages[0]
    engine = engine_for(base.model.family)
    device = execution_device(base.pipe)
    shape = engine.latent_shape(base.model.family, job.extras.width, job.extras.height)
    discrete = job.schedule if job.schedule is not None else engine.noise_schedule(
        base.model, {}, job.extras.width, job.extras.height, job.plan.steps)
    rng = job.noise.rng(shape, device)
    plan = job.plan
    if base.model.family.guidance.renorm:  # the family's own CFG rule (Qwen-Image's true CFG)
        plan = replace(plan, renorm_patch=base.model.family.latent.patch)
    model_call = engine.model_call(job.stages, job.extras, discrete.to(device), job.switch_at)
    init_latent = job.init_latent.to(device, torch.float32) if job.init_latent is not None else None
    blend = None
    if init_latent is not None and job.blend_mask is not None:
        nmask = job.blend_mask.to(device, torch.float32)
        blend = MaskBlend(init_latent=init_latent, mask=1.0 - nmask, nmask=nmask)
    try:
        outcome = sample(plan, model_call, discrete.to(device), rng, list(job.noise.seeds),
                         init_latent=init_latent, blend=blend, callback=job.on_step)
    finally:
        job.final_stage = model_call.stage_index
    if blend is not None:
        outcome.latents = blend.apply(outcome.latents)
    job.params.update(outcome.params)
    return outcome


def latent_mask(mask: Image.Image, width: int, height: int, round_mask: bool = True,
                downscale: int = 8) -> torch.Tensor:
    """A1111's latent mask (its p.nmask): the mask at latent size (bicubic), rounded; (1, 1, h, w), 1 = inpaint."""
    small = mask.convert("RGB").resize((width // downscale, height // downscale), Image.Resampling.BICUBIC)
    values = np.asarray(small, dtype=np.float32)[:, :, 0] / 255
    if round_mask:
        values = np.around(values)
    return torch.from_numpy(values)[None, None]


def encode_images(pipe: Any, images: Sequence[Image.Image], seeds: Sequence[int]) -> torch.Tensor:
    """VAE-encode init images to scaled latents."""
    return encode_tensor(pipe, pipe.image_processor.preprocess(list(images)), seeds)


def encode_tensor(pipe: Any, pixels: torch.Tensor, seeds: Sequence[int], mode: bool = False) -> torch.Tensor:
    """(N, 3, H, W) pixels in [-1, 1] to scaled latents, each image's latent sampled with a generator of its
    seed (A1111 samples the VAE's latent distribution too), or the distribution's mode (`mode`)."""
    vae = pipe.vae
    device = execution_device(pipe, vae)
    pixels = pixels.to(device, vae.dtype)
    latents = []
    with torch.no_grad():
        for index in range(pixels.shape[0]):
            seed = int(seeds[min(index, len(seeds) - 1)])
            generator = torch.Generator(device).manual_seed(seed)
            latents.append(from_vae_latents(vae, encode_raw(vae, pixels[index:index + 1], generator, mode)))
    return torch.cat(latents).float()


def inpainting_conditioning(pipe: Any, images: Sequence[Image.Image], mask: Image.Image | None,
                            seeds: Sequence[int], mask_weight: float = 1.0) -> torch.Tensor:
    """An inpainting model's extra UNet input, as A1111 builds it: the rounded mask at latent size and the
    latents of the image with the masked part blanked (by ``mask_weight``); (N, 5, h, w)."""
    width, height = images[0].size
    if mask is None:
        mask_tensor = torch.ones(1, 1, height, width)
    else:
        values = np.asarray(mask.convert("L").resize((width, height)), dtype=np.float32) / 255.0
        mask_tensor = torch.round(torch.from_numpy(values)[None, None])
    source = torch.stack([torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0)
                          .permute(2, 0, 1) for image in images])
    blanked = torch.lerp(source, source * (1.0 - mask_tensor), mask_weight)
    latents = encode_tensor(pipe, blanked, seeds)
    small = torch.nn.functional.interpolate(mask_tensor, size=latents.shape[-2:])
    return torch.cat([small.expand(latents.shape[0], -1, -1, -1), latents], dim=1)


def noise_spec(seeds: Sequence[int], subseeds: Sequence[int], subseed_strength: float,
               seed_resize_from: tuple[int, int] | None, settings: Mapping[str, Any]) -> NoiseSpec:
    return NoiseSpec(seeds=list(seeds), subseeds=list(subseeds), subseed_strength=subseed_strength,
                     seed_resize_from=seed_resize_from,
                     eta_noise_seed_delta=int(settings.get("eta_noise_seed_delta", 0) or 0),
                     source=str(settings.get("randn_source") or DEFAULT_SOURCE))


def sampler_settings(settings: Mapping[str, Any], s_min_uncond: float | None) -> SamplerSettings:
    """The sampler settings a job runs with. A request's ``s_min_uncond`` (NGMS) wins over the setting; its
    s_churn / s_tmin / s_tmax / s_noise do not: A1111 samples with the settings' values for those."""
    if s_min_uncond is None:
        return SamplerSettings.from_settings(settings)
    return SamplerSettings.from_settings({**settings, "s_min_uncond": s_min_uncond})
