"""What generation asks of an engine (see sdweb.engines)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch
from PIL import Image

if TYPE_CHECKING:
    from sdweb.core.requests import GenerationRequest
    from sdweb.generation.conditioning_plan import ConditioningPlan
    from sdweb.generation.prompting import PreparedPrompt
    from sdweb.generation.unet_model import UNetExtras, UNetStage
    from sdweb.models.families import Family
    from sdweb.models.manager import LoadedModel
    from sdweb.samplers.denoisers import ModelCall
    from sdweb.samplers.resolve import Resolution


class Engine(Protocol):
    kind: str

    def check_request(self, model: LoadedModel, request: GenerationRequest, resolution: Resolution,
                      settings: Mapping[str, Any]) -> list[str]:
        """UserError (4xx) naming what the request asks that this model cannot do; notes for what it ignores."""

    def denoiser(self, pipe: Any) -> torch.nn.Module:
        """The pipeline's denoising network (UNet or transformer)."""

    def noise_schedule(self, model: LoadedModel, settings: Mapping[str, Any], width: int, height: int,
                       steps: int = 0) -> Any:
        """The sigma table the schedules and samplers walk (DiscreteSchedule or FlowSchedule) for an image of this
        size (flow models with a dynamic shift: it depends on the image's token count; Flux.2's also on `steps`)."""

    def latent_shape(self, family: Family, width: int, height: int) -> tuple[int, int, int]: ...

    def plan_conditioning(self, model: LoadedModel, pipe: Any, prepared: PreparedPrompt, steps: int,
                          settings: Mapping[str, Any], second_order: bool = False,
                          first_pass_steps: int | None = None,
                          reference_image: Image.Image | None = None) -> ConditioningPlan:
        """`reference_image`: the image an editing model edits, for encoders that read it with the prompt."""

    def model_call(self, stages: Sequence[UNetStage], extras: UNetExtras, schedule: Any,
                   switch_at: float | None) -> ModelCall: ...

    def preview(self, family: Family, pipe: Any, latents: torch.Tensor) -> Image.Image: ...

    def infotext(self, model: LoadedModel, request: GenerationRequest, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The infotext keys this engine adds (Distilled CFG Scale, Shift, Module 1..N)."""
