"""From the request's prompt text to per-step conditioning tensors for the pipeline (A1111 order:
styles -> extra-network tags -> AND -> prompt editing schedule -> emphasis/chunks -> encoder)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sdweb.core.errors import InvalidModelFileError
from sdweb.core.requests import GenerationRequest
from sdweb.generation.conditioning_plan import ConditioningPlan, PromptEncoder, ScheduleOptions, build_plan
from sdweb.models.clip_slots import clip_slots
from sdweb.models.manager import LoadedModel
from sdweb.prompts.conditioning import EncoderSlot
from sdweb.prompts.embeddings import TextualInversion, bind_embeddings
from sdweb.prompts.parser import LoraCall, lora_calls, parse_extra_networks
from sdweb.prompts.styles import StyleDatabase

__all__ = ["ConditioningPlan", "PreparedPrompt", "model_slots", "plan_conditioning", "prepare_prompt"]


@dataclass
class PreparedPrompt:
    prompt: str  # as recorded in infotext: styles applied, extra-network tags kept
    negative_prompt: str
    encode_text: str  # what the encoder sees: tags removed
    encode_negative: str
    loras: list[LoraCall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_params: dict[str, Any] = field(default_factory=dict)
    embeddings: list[TextualInversion] = field(default_factory=list)  # the embeddings folder, loaded
    encoded: dict = field(default_factory=dict)  # the job's conditioning cache (see PromptEncoder)
    hr_encode_text: str | None = None  # the hires pass's own prompts (styles applied, tags removed)
    hr_encode_negative: str | None = None


def prepare_prompt(request: GenerationRequest, model: LoadedModel, settings: Mapping[str, Any],
                   styles: StyleDatabase | None = None, embeddings: Sequence[TextualInversion] = (),
                   unreadable_embeddings: Mapping[str, str] | None = None) -> PreparedPrompt:
    """The job's prompts ready to encode. An embedding file that could not be read is ignored unless the
    prompt names it: then InvalidModelFileError (HTTP 422) names the file."""
    prompt, negative = request.prompt, request.negative_prompt
    style_notes: list[str] = []
    if request.styles and styles is not None:
        prompt, negative, missing = styles.apply(prompt, negative, request.styles)
        if missing:
            style_notes.append(f"Styles not found and ignored: {', '.join(missing)}.")
    text, calls = parse_extra_networks(prompt)
    negative_text, negative_calls = parse_extra_networks(negative)
    notes: list[str] = style_notes
    loras = [] if request.disable_extra_networks else lora_calls(calls)
    unsupported = sorted({call.kind for call in calls + negative_calls if call.kind not in ("lora", "lyco")})
    if unsupported:
        notes.append(f"Extra networks not supported and ignored: {', '.join(unsupported)}.")
    prepared = PreparedPrompt(prompt=prompt, negative_prompt=negative, encode_text=text,
                              encode_negative=negative_text, loras=loras, notes=notes, embeddings=list(embeddings))
    hr_prompt, hr_negative = getattr(request, "hr_prompt", ""), getattr(request, "hr_negative_prompt", "")
    if hr_prompt or hr_negative:  # A1111 applies the job's styles to the hires prompts too
        if request.styles and styles is not None:
            hr_prompt, hr_negative, _ = styles.apply(hr_prompt or request.prompt,
                                                     hr_negative or request.negative_prompt, request.styles)
        prepared.hr_encode_text = parse_extra_networks(hr_prompt)[0] if hr_prompt else None
        prepared.hr_encode_negative = parse_extra_networks(hr_negative)[0] if hr_negative else None
    _refuse_unreadable(prepared, unreadable_embeddings or {})
    emphasis = str(settings.get("emphasis", "Original"))
    if emphasis != "Original" and any(c in prompt + negative for c in "(["):
        prepared.extra_params["Emphasis"] = emphasis
    return prepared


def model_slots(model: LoadedModel, pipeline: Any, prepared: PreparedPrompt | None = None) -> list[EncoderSlot]:
    """The pipeline's text encoders, knowing the job's textual-inversion embeddings (bound once per job)."""
    slots = clip_slots(pipeline, model.family)
    if prepared is None or not prepared.embeddings:
        return slots
    key = ("embeddings", *(id(slot.encoder) for slot in slots))
    bound = prepared.encoded.get(key)
    if bound is None:
        bound = prepared.encoded[key] = bind_embeddings(slots, prepared.embeddings)
        _note_skipped(prepared, bound.skipped)
    return bound.slots


def _names_used(prepared: PreparedPrompt, names: Sequence[str]) -> list[str]:
    """The embedding names that the job's prompts (hires ones included) contain as words (CLIP lowercases)."""
    texts = "\n".join(text for text in (prepared.encode_text, prepared.encode_negative, prepared.hr_encode_text,
                                        prepared.hr_encode_negative) if text).lower()
    return [name for name in names if re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", texts)]


def _refuse_unreadable(prepared: PreparedPrompt, unreadable: Mapping[str, str]) -> None:
    used = _names_used(prepared, list(unreadable))
    if used:
        name = used[0]
        raise InvalidModelFileError(
            f"The prompt uses the textual inversion embedding {name!r}, whose file cannot be read: "
            f"{unreadable[name]}.", code="unreadable_embedding",
            hint="Download the embedding again (an interrupted download leaves a truncated file) or remove it "
                 f"from the embeddings folder, or take {name!r} out of the prompt.")


def _note_skipped(prepared: PreparedPrompt, skipped: Mapping[str, str]) -> None:
    """A1111 lists embeddings for another model as skipped; say so when the prompt names one."""
    for name in _names_used(prepared, list(skipped)):
        note = f"Textual inversion embedding {name!r} was skipped: {skipped[name]}."
        if note not in prepared.notes:
            prepared.notes.append(note)


def plan_conditioning(model: LoadedModel, pipeline: Any, prepared: PreparedPrompt, steps: int,
                      settings: Mapping[str, Any], second_order: bool = False,
                      first_pass_steps: int | None = None, reference_image: Any = None) -> ConditioningPlan:
    """Encode each distinct text of the AND sub-prompts' and the negative prompt's editing schedules once per
    job, with the model's engine; record where they change. ``first_pass_steps`` marks a hires-fix pass of
    ``steps`` steps; ``reference_image`` is the image an editing model edits (its text encoder may read it)."""
    from sdweb.engines import engine_for

    return engine_for(model.family).plan_conditioning(model, pipeline, prepared, steps, settings, second_order,
                                                      first_pass_steps, reference_image)


def schedule_options(steps: int, settings: Mapping[str, Any], second_order: bool = False,
                     first_pass_steps: int | None = None) -> ScheduleOptions:
    return ScheduleOptions(steps=steps, second_order=second_order, first_pass_steps=first_pass_steps,
                           old_scheduling=bool(settings.get("use_old_scheduling", False)))


def plan_clip_conditioning(model: LoadedModel, pipeline: Any, prepared: PreparedPrompt, steps: int,
                           settings: Mapping[str, Any], second_order: bool = False,
                           first_pass_steps: int | None = None) -> ConditioningPlan:
    """plan_conditioning for CLIP-conditioned UNets (A1111's chunks, embeddings, clip skip)."""
    encoder = PromptEncoder(model_slots(model, pipeline, prepared), prepared.encoded,
                            clip_skip=int(settings.get("CLIP_stop_at_last_layers", 1)),
                            emphasis=str(settings.get("emphasis", "Original")),
                            comma_backtrack=int(settings.get("comma_padding_backtrack", 20)))
    options = schedule_options(steps, settings, second_order, first_pass_steps)
    plan = build_plan(encoder, prepared.encode_text, prepared.encode_negative, options)
    if encoder.used and settings.get("textual_inversion_add_hashes_to_infotext", True):
        _record_ti_hashes(prepared, encoder.used)
    return plan


def _record_ti_hashes(prepared: PreparedPrompt, used: Sequence[str]) -> None:
    """Infotext ``TI hashes: "name: 12-hex sha256, ..."`` for the embeddings the job's prompts used."""
    by_name = {embedding.name: embedding for embedding in prepared.embeddings}
    listed = prepared.extra_params.get("TI hashes", "")
    entries = [entry for entry in listed.split(", ") if entry]
    known = {entry.split(": ")[0] for entry in entries}
    entries += [f"{name}: {by_name[name].shorthash}" for name in used if name not in known and name in by_name]
    prepared.extra_params["TI hashes"] = ", ".join(entries)
