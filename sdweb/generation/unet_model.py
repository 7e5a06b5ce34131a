"""The SD-style UNet as the samplers see it: one :class:`UNetModelCall` per pass turns the CFG denoiser's rows
into a diffusers UNet call (prompt-editing and AND conditioning, SDXL's added conditions, an inpainting
model's image conditioning, ControlNet residuals) and switches to the refiner where A1111 does.

Rows follow A1111: for each image its AND sub-prompts, then the negative prompt once per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from sdweb.generation.conditioning_plan import ConditioningPlan, StepConditioning
from sdweb.generation.control import CONTROL_MORE, PROMPT_MORE, soft_injection
from sdweb.generation.hooks import ControlUnit
from sdweb.models.manager import LoadedModel
from sdweb.samplers.denoisers import ModelInput
from sdweb.samplers.discrete import DiscreteSchedule

REFINER_HIGH_AESTHETIC = 6.0
REFINER_LOW_AESTHETIC = 2.5


@dataclass
class UNetStage:
    """One model of a pass with its conditioning (the base, or the refiner after the switch)."""

    model: LoadedModel
    pipe: Any
    conditioning: ConditioningPlan
    aesthetic_scores: tuple[float, float] = (REFINER_HIGH_AESTHETIC, REFINER_LOW_AESTHETIC)


@dataclass
class UNetExtras:
    """What the rows need besides text: image size for SDXL, inpainting-model conditioning, ControlNets."""

    width: int
    height: int
    batch: int
    crop_top_left: tuple[int, int] = (0, 0)
    image_conditioning: torch.Tensor | None = None  # (N, 5, h, w): mask + masked-image latents
    controlnets: list[ControlUnit] = field(default_factory=list)
    sampling_fraction: Callable[[], tuple[int, int]] = lambda: (0, 1)  # (steps done, total) for ControlNet
    distilled_guidance: float | None = None  # flow models with guidance distilled in (Flux dev)
    reference_latents: torch.Tensor | None = None  # (N, C, h, w): the image an editing model edits (Kontext)


def _control_image(image: Image.Image, width: int, height: int) -> torch.Tensor:
    image = image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


class UNetModelCall:
    """A :class:`sdweb.samplers.denoisers.ModelCall` over diffusers UNets."""

    def __init__(self, stages: list[UNetStage], extras: UNetExtras, discrete: DiscreteSchedule,
                 switch_at: float | None = None) -> None:
        self.stages = stages
        self.extras = extras
        self.discrete = discrete
        self.switch_at = switch_at
        self.stage_index = 0
        self._control_images: dict[int, torch.Tensor] = {}
        self._dtypes: dict[int, torch.dtype] = {}
        # the last step's conditioning rows and SDXL time ids on the device: steps that share them (most do)
        # reuse them instead of copying from the host again
        self._rows_cache: tuple[Any, ...] | None = None
        self._time_ids_cache: dict[tuple[Any, ...], torch.Tensor] = {}

    def _unet_dtype(self) -> torch.dtype:
        """The UNet's dtype, looked up once per stage (diffusers' ``dtype`` walks every module: 4 ms a step)."""
        if self.stage_index not in self._dtypes:
            self._dtypes[self.stage_index] = self.stage.pipe.unet.dtype
        return self._dtypes[self.stage_index]

    @property
    def stage(self) -> UNetStage:
        return self.stages[self.stage_index]

    def weights(self, step: int) -> list[float]:
        return list(self.stage.conditioning.weights)

    def _maybe_switch(self, inputs: ModelInput) -> None:
        """A1111's refiner switch: once (999 - nearest timestep) / 1000 reaches the switch point."""
        if self.switch_at is None or self.stage_index + 1 >= len(self.stages):
            return
        if inputs.sigma is not None:
            sigmas = self.discrete.sigmas.to(inputs.sigma.device)
            timestep = int(torch.argmin(torch.abs(sigmas - torch.max(inputs.sigma))))
        else:
            timestep = int(torch.max(inputs.t).to(dtype=torch.int))
        if (999 - timestep) / 1000 >= self.switch_at:
            self.stage_index += 1

    def _rows(self, state: StepConditioning, with_uncond: bool, device: Any, dtype: Any) -> tuple:
        cached = self._rows_cache
        if cached is not None and cached[0] is state and cached[1:4] == (with_uncond, device, dtype):
            return cached[4]
        rows = self._new_rows(state, with_uncond, device, dtype)
        self._rows_cache = (state, with_uncond, device, dtype, rows)
        return rows

    def _new_rows(self, state: StepConditioning, with_uncond: bool, device: Any, dtype: Any) -> tuple:
        batch = self.extras.batch
        conds = [cond for _ in range(batch) for cond in state.conds]
        uncond_rows = [state.uncond] * batch if with_uncond else []
        rows = conds + uncond_rows
        embeds = torch.cat([row.embeds for row in rows]).to(device, dtype)
        pooled = None
        if state.uncond.pooled is not None:
            pooled = torch.cat([row.pooled for row in rows]).to(device, dtype)
        return embeds, pooled, len(conds)

    def _time_ids(self, stage: UNetStage, cond_rows: int, total_rows: int, device: Any, dtype: Any) -> torch.Tensor:
        key = (self.stage_index, cond_rows, total_rows, device, dtype)
        if key not in self._time_ids_cache:
            self._time_ids_cache[key] = self._new_time_ids(stage, cond_rows, total_rows, device, dtype)
        return self._time_ids_cache[key]

    def _new_time_ids(self, stage: UNetStage, cond_rows: int, total_rows: int, device: Any,
                      dtype: Any) -> torch.Tensor:
        height, width = self.extras.height, self.extras.width
        top, left = self.extras.crop_top_left
        if getattr(stage.pipe.config, "requires_aesthetics_score", False):
            high, low = stage.aesthetic_scores
            rows = [[height, width, top, left, high]] * cond_rows + [[height, width, top, left, low]] * (
                total_rows - cond_rows)
        else:
            rows = [[height, width, top, left, height, width]] * total_rows
        return torch.tensor(rows, device=device, dtype=dtype)

    def __call__(self, inputs: ModelInput) -> torch.Tensor:
        self._maybe_switch(inputs)
        stage = self.stage
        unet = stage.pipe.unet
        device, dtype = inputs.x.device, self._unet_dtype()
        state = stage.conditioning.at(inputs.step)
        embeds, pooled, cond_rows = self._rows(state, inputs.with_uncond, device, dtype)
        sample = inputs.x.to(dtype)
        if self.extras.image_conditioning is not None:
            per_row = self._per_row(self.extras.image_conditioning, len(state.conds), inputs.with_uncond)
            sample = torch.cat([sample, per_row.to(device, dtype)], dim=1)
        added = None
        if pooled is not None:
            added = {"text_embeds": pooled, "time_ids": self._time_ids(stage, cond_rows, len(embeds), device, dtype)}
        t = inputs.t.to(device)
        residuals = self._control(inputs.x.to(dtype), t, embeds, added, cond_rows)
        output = unet(sample, t, encoder_hidden_states=embeds, added_cond_kwargs=added,
                      down_block_additional_residuals=residuals[0] if residuals else None,
                      mid_block_additional_residual=residuals[1] if residuals else None, return_dict=False)[0]
        return output.float()

    def _per_row(self, per_image: torch.Tensor, count: int, with_uncond: bool) -> torch.Tensor:
        rows = [per_image[i] for i in range(self.extras.batch) for _ in range(count)]
        if with_uncond:
            rows += [per_image[i] for i in range(self.extras.batch)]
        return torch.stack(rows)

    def _control(self, x: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor, added: dict | None,
                 cond_rows: int) -> tuple | None:
        """Summed ControlNet residuals of the active units (diffusers' MultiControlNet sums them too)."""
        units = self.extras.controlnets
        if not units:
            return None
        done, total = self.extras.sampling_fraction()
        guess_mode = any(unit.control_mode == CONTROL_MORE for unit in units)
        down_sum, mid_sum = None, None
        for index, unit in enumerate(units):
            if done / total < unit.guidance_start or (done + 1) / total > unit.guidance_end:
                continue
            model = soft_injection(unit.model) if unit.control_mode == PROMPT_MORE and not guess_mode else unit.model
            rows = cond_rows if guess_mode else len(x)
            image = self._control_images.get(index)
            if image is None:
                image = self._control_images[index] = _control_image(unit.image, self.extras.width,
                                                                     self.extras.height)
            cond_image = image.to(x.device, model.dtype).expand(rows, -1, -1, -1)
            unit_added = {key: value[:rows] for key, value in added.items()} if added else None
            down, mid = model(x[:rows].to(model.dtype), t[:rows], encoder_hidden_states=embeds[:rows].to(model.dtype),
                              controlnet_cond=cond_image, conditioning_scale=unit.weight, guess_mode=guess_mode,
                              added_cond_kwargs=unit_added, return_dict=False)
            if rows < len(x):
                down = [torch.cat([d, torch.zeros((len(x) - rows, *d.shape[1:]), dtype=d.dtype, device=d.device)])
                        for d in down]
                mid = torch.cat([mid, torch.zeros((len(x) - rows, *mid.shape[1:]), dtype=mid.dtype, device=mid.device)])
            down_sum = list(down) if down_sum is None else [a + b for a, b in zip(down_sum, down, strict=True)]
            mid_sum = mid if mid_sum is None else mid_sum + mid
        return (down_sum, mid_sum) if down_sum is not None else None
