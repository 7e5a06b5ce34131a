"""BatchPlan: one batch of a job, fixed before it runs, passed whole to the runner, the hires pass and the saver."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sdweb.core.requests import GenerationRequest
from sdweb.generation.prompting import PreparedPrompt
from sdweb.models.manager import LoadedModel
from sdweb.samplers.resolve import Resolution


@dataclass(frozen=True)
class BatchPlan:
    """What one batch makes and how: the request and its mode, the loaded checkpoint, the prepared prompt, the
    resolved sampler and schedule, this batch's seeds and subseeds, and the job's settings snapshot (the
    request's override_settings merged in). Its fields are not rebound while the batch runs; the sampling pass
    adds its infotext entries to ``prepared.extra_params``."""

    mode: str  # "txt2img" or "img2img"
    request: GenerationRequest
    model: LoadedModel
    prepared: PreparedPrompt
    resolution: Resolution
    seeds: tuple[int, ...]
    subseeds: tuple[int, ...]
    settings: Mapping[str, Any]
