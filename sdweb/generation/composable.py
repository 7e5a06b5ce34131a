"""Composable diffusion (``AND``) through a diffusers model hook on the UNet (a1111.md §6.6).

A1111 computes ``denoised = uncond + cfg_scale * sum_i w_i * (cond_i - uncond)``. The pipeline's own
classifier-free guidance computes ``uncond + cfg_scale * (c - uncond)`` from the UNet's two halves, so the
hook evaluates the real UNet once, batched, on ``[uncond, cond_1, ..., cond_n]`` and hands back
``[uncond_eps, uncond_eps + sum_i w_i * (eps_i - uncond_eps)]``: the pipeline's formula then gives A1111's
exactly. Without CFG (cfg_scale <= 1, where diffusers skips the uncond half) the hook returns the whole
formula with the pipeline's guidance scale. The combination is linear, so combining noise (or v) predictions
equals combining A1111's denoised predictions.

The hook is registered with diffusers' ``HookRegistry`` (``ModelHook.new_forward``) for the one pipeline call
and removed afterwards; the pipeline, its components and the UNet's weights are not touched. Everything the
pipeline passes with a batch dimension (SDXL ``time_ids``, ControlNet residuals, masks, timesteps) is
repeated for the extra sub-prompts; ``encoder_hidden_states`` and SDXL's ``text_embeds`` come from the plan,
per sub-prompt, and follow prompt editing through the step callback (``StepSwaps.listeners``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from diffusers.hooks import HookRegistry, ModelHook

from sdweb.generation.conditioning_plan import ConditioningPlan, StepConditioning
from sdweb.generation.sampling import StepSwaps

HOOK_NAME = "sdweb_composable_diffusion"


def _grow(value: Any, batch: int, extra: int, cfg: bool) -> Any:
    """A UNet argument for ``1 + extra`` batch groups instead of the pipeline's (uncond, cond) or (cond)."""
    if isinstance(value, torch.Tensor):
        if value.ndim == 0:
            return value
        if cfg and value.shape[0] == 2 * batch:
            return torch.cat([value[:batch], *[value[batch:]] * extra])
        if not cfg and value.shape[0] == batch:
            return torch.cat([value] * (1 + extra))
        return value
    if isinstance(value, list | tuple):
        return type(value)(_grow(item, batch, extra, cfg) for item in value)
    if isinstance(value, dict):
        return {key: _grow(item, batch, extra, cfg) for key, item in value.items()}
    return value


class ComposableGuidance(ModelHook):
    """Evaluates every AND sub-prompt in one UNet call and folds them into the pipeline's cond half."""

    def __init__(self, pipe: Any, plan: ConditioningPlan) -> None:
        super().__init__()
        self.pipe = pipe
        self.weights = list(plan.weights)
        self.states = dict(plan.steps)
        self.current: StepConditioning = self.states[0]
        self._signature: inspect.Signature | None = None

    def set_step(self, step: int) -> None:
        """Called by the step callback with the index of the loop iteration about to run."""
        self.current = self.states.get(step, self.current)

    def _cfg(self) -> bool:
        flag = getattr(self.pipe, "do_classifier_free_guidance", None)
        return bool(flag) if flag is not None else float(self.pipe.guidance_scale) > 1.0

    def _arguments(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        if self._signature is None:
            self._signature = inspect.signature(self.fn_ref.original_forward)
        return dict(self._signature.bind(*args, **kwargs).arguments)

    def _embeds(self, reference: torch.Tensor, batch: int) -> torch.Tensor:
        state = self.current
        parts = [state.uncond.embeds, *(cond.embeds for cond in state.conds)]
        return torch.cat([part.expand(batch, -1, -1) for part in parts]).to(reference.device, reference.dtype)

    def _pooled(self, reference: torch.Tensor, batch: int) -> torch.Tensor:
        state = self.current
        parts = [state.uncond.pooled, *(cond.pooled for cond in state.conds)]
        return torch.cat([part.expand(batch, -1) for part in parts]).to(reference.device, reference.dtype)

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        # The UNet's own forward signature arrives here (diffusers' hook protocol), so it is passed on as is.
        arguments = self._arguments(args, kwargs)
        cfg = self._cfg()
        sample = arguments["sample"]
        batch = sample.shape[0] // 2 if cfg else sample.shape[0]
        extra = len(self.weights)
        grown = {name: _grow(value, batch, extra, cfg) for name, value in arguments.items()
                 if name != "encoder_hidden_states"}
        grown["encoder_hidden_states"] = self._embeds(arguments["encoder_hidden_states"], batch)
        added = grown.get("added_cond_kwargs")
        if added and "text_embeds" in added and self.current.uncond.pooled is not None:
            grown["added_cond_kwargs"] = {**added, "text_embeds": self._pooled(added["text_embeds"], batch)}
        output = self.fn_ref.original_forward(**grown)
        eps = output[0] if isinstance(output, tuple) else output.sample
        uncond = eps[:batch]
        delta = sum(weight * (eps[batch * (1 + i):batch * (2 + i)] - uncond) for i, weight in enumerate(self.weights))
        if cfg:
            result = torch.cat([uncond, uncond + delta])
        else:
            result = uncond + float(self.pipe.guidance_scale) * delta
        if isinstance(output, tuple):
            return (result, *output[1:])
        return type(output)(sample=result)


@contextmanager
def composable_guidance(pipe: Any, plan: ConditioningPlan, swaps: StepSwaps) -> Iterator[None]:
    """For one pipeline call: the composable hook on the pipeline's UNet when the plan needs it."""
    if not plan.composable:
        yield
        return
    hook = ComposableGuidance(pipe, plan)
    registry = HookRegistry.check_if_exists_or_initialize(pipe.unet)
    registry.register_hook(hook, HOOK_NAME)
    swaps.listeners.append(hook.set_step)
    try:
        yield
    finally:
        swaps.listeners.remove(hook.set_step)
        registry.remove_hook(HOOK_NAME, recurse=False)
