"""Which conditioning the sampler sees at each step (a1111.md §6.5, §6.6).

The prompt is split on ``AND`` into weighted sub-prompts; each sub-prompt and the negative prompt follow
their own prompt-editing schedule. Every distinct text is encoded once per job (``PromptEncoder`` keeps the
cache in the job's PreparedPrompt); at each step the texts in use are padded with empty chunks to one chunk
count, so cond and uncond (and all sub-prompts) go through the UNet in one batch (A1111's "pad conds").

Step numbers are A1111's: the CFG denoiser counts model evaluations, and for second-order samplers the
schedules run over 2 x steps, so a plan's keys are evaluation indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sdweb.core.errors import LimitError
from sdweb.core.limits import MAX_JOB_PROMPT_CHUNKS, MAX_PROMPT_CHUNKS
from sdweb.prompts.conditioning import (
    CHUNK_LENGTH,
    Conditioning,
    EncoderSlot,
    chunk_count,
    encode_prompt,
    used_embeddings,
)
from sdweb.prompts.parser import prompt_schedules, split_composable

Schedule = list[tuple[int, str]]


class PromptEncoder:
    """Encodes texts for one model and one job's settings, each distinct text once.

    ``cache`` is the job's dict (shared by its batches and passes); keys include the encoders' identity and
    the settings, so a refiner or another model never sees a wrong entry.
    """

    def __init__(self, slots: Sequence[EncoderSlot], cache: dict, *, clip_skip: int = 1,
                 emphasis: str = "Original", comma_backtrack: int = 20) -> None:
        self.slots = list(slots)
        self.cache = cache
        self.clip_skip = clip_skip
        self.emphasis = emphasis
        self.comma_backtrack = comma_backtrack
        self._prefix = (tuple(id(slot.encoder) for slot in self.slots), clip_skip, emphasis, comma_backtrack)
        self.used: list[str] = []  # embeddings used by the texts encoded through this encoder, in order
        self.encoded_chunks = 0  # chunks of the distinct texts this encoder encoded (MAX_JOB_PROMPT_CHUNKS)
        self.chunk_cache: dict = {}  # tokenized texts and encoded chunks, each once (texts share most chunks)

    def encode(self, text: str) -> Conditioning:
        """The text's own conditioning (as many chunks as it needs)."""
        key = (*self._prefix, text)
        cached = self.cache.get(key)
        if cached is None:
            chunks = chunk_count(self.slots, text, self.comma_backtrack, self.emphasis, self.chunk_cache)
            self._count_chunks(chunks)
            cached = (encode_prompt(self.slots, text, clip_skip=self.clip_skip, emphasis=self.emphasis,
                                    comma_backtrack=self.comma_backtrack, min_chunks=chunks,
                                    chunk_cache=self.chunk_cache),
                      used_embeddings(self.slots[0], text, emphasis=self.emphasis,
                                      comma_backtrack=self.comma_backtrack, chunk_cache=self.chunk_cache)
                      if self.slots else [])
            self.cache[key] = cached
        for name in cached[1]:
            if name not in self.used:
                self.used.append(name)
        return cached[0]

    def _count_chunks(self, chunks: int) -> None:
        if chunks > MAX_PROMPT_CHUNKS:
            raise LimitError(f"A prompt needs {chunks} chunks of 75 tokens; the limit is {MAX_PROMPT_CHUNKS} "
                             "(MAX_PROMPT_CHUNKS).", code="prompt_too_long",
                             hint="Shorten the prompt or the negative prompt, or use fewer BREAKs.")
        self.encoded_chunks += chunks
        if self.encoded_chunks > MAX_JOB_PROMPT_CHUNKS:
            raise LimitError(f"Prompt editing, alternation and AND make this job encode more than "
                             f"{MAX_JOB_PROMPT_CHUNKS} chunks of 75 tokens (MAX_JOB_PROMPT_CHUNKS).",
                             code="prompt_too_complex",
                             hint="Use fewer [a:b:when] / [a|b] groups that change at different steps, or a "
                                  "shorter prompt.")

    def chunks(self, text: str) -> int:
        return chunks_of(self.encode(text))

    def padded(self, text: str, chunks: int) -> Conditioning:
        """The text's conditioning padded with empty chunks to ``chunks`` chunks (the pooled output comes from
        the first chunk, so padding leaves it alone). Made once per text and length: every step state that
        pads the same negative prompt shares it."""
        own = self.encode(text)
        missing = chunks - chunks_of(own)
        if missing <= 0:
            return own
        key = ("padded", text, chunks)
        if key not in self.chunk_cache:
            empty = self.encode("").embeds
            self.chunk_cache[key] = Conditioning(embeds=torch.cat([own.embeds, *[empty] * missing], dim=1),
                                                 pooled=own.pooled)
        return self.chunk_cache[key]


def chunks_of(conditioning: Conditioning) -> int:
    return conditioning.embeds.shape[1] // (CHUNK_LENGTH + 2)


@dataclass
class StepConditioning:
    """The conditioning in use from one step on: the negative prompt and each AND sub-prompt."""

    uncond: Conditioning
    conds: list[Conditioning]


@dataclass
class ConditioningPlan:
    """The conditioning from each model evaluation on: ``steps`` maps the first evaluation index of each
    stretch to what is in effect from it (evaluation 0 always present); ``weights`` are the AND weights."""

    steps: dict[int, StepConditioning]
    weights: list[float] = field(default_factory=lambda: [1.0])

    @property
    def composable(self) -> bool:
        return self.weights != [1.0]

    @property
    def first(self) -> StepConditioning:
        return self.steps[0]

    def at(self, step: int) -> StepConditioning:
        """What the model evaluation ``step`` (0-based) uses."""
        return self.steps[max(start for start in self.steps if start <= step)]


def text_at(schedule: Schedule, step: int) -> str:
    """A1111 uses an entry while the 0-based step index is <= its end step."""
    for end, text in schedule:
        if step <= end:
            return text
    return schedule[-1][1]


@dataclass(frozen=True)
class ScheduleOptions:
    steps: int  # the pass's own step count (the hires steps for a hires pass)
    second_order: bool = False  # A1111 counts two model evaluations per step
    first_pass_steps: int | None = None  # set for a hires-fix pass: schedules use A1111 1.10's hires offsets
    old_scheduling: bool = False  # setting `use_old_scheduling`


def _schedules(texts: Sequence[str], options: ScheduleOptions) -> list[Schedule]:
    multiplier = 2 if options.second_order else 1
    if options.first_pass_steps is None:
        return [prompt_schedules(text, options.steps * multiplier, use_old_scheduling=options.old_scheduling)
                for text in texts]
    return [prompt_schedules(text, options.first_pass_steps * multiplier, hires_steps=options.steps * multiplier,
                             use_old_scheduling=options.old_scheduling) for text in texts]


def build_plan(encoder: PromptEncoder, prompt: str, negative: str, options: ScheduleOptions) -> ConditioningPlan:
    """Encode what each step needs, once per distinct set of texts, and record where it changes."""
    subprompts = split_composable(prompt)
    weights = [weight for _, weight in subprompts]
    *cond_schedules, uncond_schedule = _schedules([text for text, _ in subprompts] + [negative], options)
    states: dict[tuple[str, ...], StepConditioning] = {}

    def state_at(step: int) -> StepConditioning:
        texts = (text_at(uncond_schedule, step), *(text_at(s, step) for s in cond_schedules))
        if texts not in states:
            chunks = max(encoder.chunks(text) for text in texts)
            uncond, *conds = (encoder.padded(text, chunks) for text in texts)
            states[texts] = StepConditioning(uncond, conds)
        return states[texts]

    boundaries = sorted({end for schedule in (*cond_schedules, uncond_schedule) for end, _ in schedule[:-1]})
    steps = {0: state_at(0)}
    for boundary in boundaries:
        steps[boundary + 1] = state_at(boundary + 1)  # the next text starts after its predecessor's end step
    return ConditioningPlan(steps=steps, weights=weights)
