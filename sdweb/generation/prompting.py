"""From the request's prompt text to per-step conditioning tensors for the pipeline (A1111 order:
styles -> extra-network tags -> AND -> prompt editing schedule -> emphasis/chunks -> encoder)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sdweb.core.requests import GenerationRequest
from sdweb.models.manager import LoadedModel
from sdweb.prompts.conditioning import Conditioning, EncoderSlot, encode_pair, encoder_slots
from sdweb.prompts.parser import (
    LoraCall,
    lora_calls,
    parse_extra_networks,
    prompt_schedules,
    split_composable,
)


@dataclass
class PreparedPrompt:
    prompt: str  # as recorded in infotext: styles applied, extra-network tags kept
    negative_prompt: str
    encode_text: str  # what the encoder sees: tags removed
    encode_negative: str
    loras: list[LoraCall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_params: dict[str, Any] = field(default_factory=dict)


def _strip_and(text: str, notes: list[str]) -> str:
    parts = split_composable(text)
    if len(parts) <= 1:
        return text
    notes.append("Composable diffusion (AND) is not supported yet: the sub-prompts were joined.")
    return ", ".join(part.strip() for part, _ in parts)


def prepare_prompt(request: GenerationRequest, model: LoadedModel, settings: Mapping[str, Any]) -> PreparedPrompt:
    prompt, negative = request.prompt, request.negative_prompt
    text, calls = parse_extra_networks(prompt)
    negative_text, negative_calls = parse_extra_networks(negative)
    notes: list[str] = []
    loras = [] if request.disable_extra_networks else lora_calls(calls)
    unsupported = sorted({call.kind for call in calls + negative_calls if call.kind not in ("lora", "lyco")})
    if unsupported:
        notes.append(f"Extra networks not supported and ignored: {', '.join(unsupported)}.")
    prepared = PreparedPrompt(prompt=prompt, negative_prompt=negative, encode_text=_strip_and(text, notes),
                              encode_negative=negative_text, loras=loras, notes=notes)
    emphasis = str(settings.get("emphasis", "Original"))
    if emphasis != "Original" and any(c in prompt + negative for c in "(["):
        prepared.extra_params["Emphasis"] = emphasis
    return prepared


def model_slots(model: LoadedModel, pipeline: Any) -> list[EncoderSlot]:
    return encoder_slots(pipeline, model.family.base, model.family.pad_token_ids)


@dataclass
class ConditioningPlan:
    """The conditioning at step 0, and the changes prompt editing makes later (step -> cond, uncond)."""

    first: tuple[Conditioning, Conditioning]
    changes: dict[int, tuple[Conditioning, Conditioning]]


def plan_conditioning(model: LoadedModel, pipeline: Any, prepared: PreparedPrompt, steps: int,
                      settings: Mapping[str, Any], second_order: bool = False) -> ConditioningPlan:
    """Encode each distinct prompt of the editing schedule once; record where it changes."""
    schedule_steps = steps * 2 if second_order else steps
    old = bool(settings.get("use_old_scheduling", False))
    cond_schedule = prompt_schedules(prepared.encode_text, schedule_steps, use_old_scheduling=old)
    uncond_schedule = prompt_schedules(prepared.encode_negative, schedule_steps, use_old_scheduling=old)
    slots = model_slots(model, pipeline)
    clip_skip = int(settings.get("CLIP_stop_at_last_layers", 1))
    emphasis = str(settings.get("emphasis", "Original"))
    backtrack = int(settings.get("comma_padding_backtrack", 20))
    cache: dict[tuple[str, str], tuple[Conditioning, Conditioning]] = {}

    def at(step: int) -> tuple[Conditioning, Conditioning]:
        key = (_text_at(cond_schedule, step), _text_at(uncond_schedule, step))
        if key not in cache:
            cache[key] = encode_pair(slots, key[0], key[1], clip_skip=clip_skip, emphasis=emphasis,
                                     comma_backtrack=backtrack)
        return cache[key]

    boundaries = sorted({end for end, _ in cond_schedule[:-1]} | {end for end, _ in uncond_schedule[:-1]})
    changes = {}
    for boundary in boundaries:
        # A1111 uses a text while the 0-based step index is <= its end step, so the next text starts at end+1
        first_step = boundary + 1
        pipeline_step = first_step // 2 if second_order else first_step
        if 0 < pipeline_step < steps:
            changes[pipeline_step] = at(first_step)
    return ConditioningPlan(first=at(0), changes=changes)


def _text_at(schedule: list[tuple[int, str]], step: int) -> str:
    for end, text in schedule:
        if step <= end:
            return text
    return schedule[-1][1]

