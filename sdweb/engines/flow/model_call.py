"""The flow transformer as the samplers see it: the CFG denoiser's rows (for each image its AND sub-prompts,
then one negative row per image) turned into transformer calls through the family's adapter, with the
prompt-editing step's conditioning, the distilled guidance value and, for an editing model, the latents of the
image it edits.

Rows whose text sequences have different lengths (T5 prompts are not padded to one length) go through the
transformer in separate calls; rows of one length share a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sdweb.engines.flow.transformers import FlowConditioning, adapter_for, cat_conditionings
from sdweb.generation.conditioning_plan import StepConditioning
from sdweb.generation.unet_model import UNetExtras, UNetStage
from sdweb.samplers.denoisers import ModelInput


class FlowModelCall:
    """A :class:`sdweb.samplers.denoisers.ModelCall` over a flow transformer (one stage: no refiner)."""

    def __init__(self, stages: Sequence[UNetStage], extras: UNetExtras) -> None:
        self.stage = stages[0]
        self.stage_index = 0
        self.extras = extras
        self.adapter = adapter_for(self.stage.pipe.transformer)
        self.distilled = self.stage.model.family.guidance.distilled
        self._plan_cache: tuple[Any, ...] | None = None  # the last step's row groups (most steps share them)

    def weights(self, step: int) -> list[float]:
        return list(self.stage.conditioning.weights)

    def _rows(self, state: StepConditioning, with_uncond: bool) -> list[FlowConditioning]:
        batch = self.extras.batch
        rows = [cond for _ in range(batch) for cond in state.conds]
        return rows + ([state.uncond] * batch if with_uncond else [])

    def _references(self, conds: int, with_uncond: bool) -> torch.Tensor | None:
        """The edited image's latents for each row (rows: each image's sub-prompts, then one negative each)."""
        per_image = self.extras.reference_latents
        if per_image is None:
            return None
        batch = self.extras.batch
        rows = [per_image[i] for i in range(batch) for _ in range(conds)]
        rows += [per_image[i] for i in range(batch)] if with_uncond else []
        return torch.stack(rows)

    def __call__(self, inputs: ModelInput) -> torch.Tensor:
        state = self.stage.conditioning.at(inputs.step)
        rows = self._rows(state, inputs.with_uncond)
        guidance = None
        if self.distilled:
            guidance = torch.full((len(rows),), float(self.extras.distilled_guidance or 0.0),
                                  device=inputs.x.device)
        references = self._references(len(state.conds), inputs.with_uncond)
        groups = self._groups(state, inputs.with_uncond, rows, inputs.x.device)
        if len(groups) == 1 and groups[0][0] is None:  # one call over all rows in order: no gather / scatter
            cond = groups[0][2]
            return self.adapter.velocity(inputs.x, inputs.sigma, cond, guidance, references).float()
        output = torch.empty_like(inputs.x, dtype=torch.float32)
        for picked, indexes, cond in groups:
            velocity = self.adapter.velocity(inputs.x[picked], inputs.sigma[picked], cond,
                                             None if guidance is None else guidance[picked],
                                             None if references is None else references[indexes])
            output[picked] = velocity.float()
        return output

    def _groups(self, state: StepConditioning, with_uncond: bool, rows: list[FlowConditioning],
                device: Any) -> list[tuple[torch.Tensor | None, list[int], FlowConditioning]]:
        """(index tensor or None for all rows in order, indexes, stacked conditioning) per group of rows with
        one text length, built once per conditioning: a host-to-device index copy every step would make the
        host wait for the GPU."""
        cached = self._plan_cache
        if cached is not None and cached[0] is state and cached[1:3] == (with_uncond, device):
            return cached[3]
        groups = []
        for indexes in _same_length_groups(rows):
            in_order = indexes == list(range(len(rows)))
            picked = None if in_order else torch.tensor(indexes, device=device)
            groups.append((picked, indexes, cat_conditionings([rows[i] for i in indexes]).to(device)))
        self._plan_cache = (state, with_uncond, device, groups)
        return groups


def _same_length_groups(rows: Sequence[FlowConditioning]) -> list[list[int]]:
    groups: dict[tuple[int, Any], list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault((row.length, row.mask is None), []).append(index)
    return list(groups.values())
