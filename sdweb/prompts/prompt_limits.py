"""The prompt-syntax limits of core/limits.py (pure; a LimitError names the field and the limit).

Checked before a job is queued, so a prompt that could never run does not wait its turn to fail. The length is
checked by the request schemas (core/requests.py, the API's wire schemas); the chunk limits need the model's
tokenizer and are checked where the prompt is encoded (generation/conditioning_plan.py).
"""

from __future__ import annotations

import re

from sdweb.core.errors import LimitError
from sdweb.core.limits import (
    MAX_PROMPT_AND_PARTS,
    MAX_PROMPT_BREAKS,
    MAX_PROMPT_SCHEDULED_PARTS,
)
from sdweb.prompts.parser import scheduled_parts, split_composable

_BREAK_WORD = re.compile(r"\bBREAK\b")
PROMPT_FIELDS = (("prompt", True), ("negative_prompt", False), ("hr_prompt", True), ("hr_negative_prompt", False))


def check_prompt(text: str, field: str, composable: bool = True) -> None:
    """LimitError when ``text`` is over a prompt limit. ``composable``: AND splits it (not so in negative
    prompts, where A1111 reads AND as a word)."""
    breaks = len(_BREAK_WORD.findall(text)) if "BREAK" in text else 0
    if breaks > MAX_PROMPT_BREAKS:
        raise LimitError(f"{field}: {breaks} BREAKs; the limit is {MAX_PROMPT_BREAKS} (each starts a chunk of 75 "
                         "tokens).", code="prompt_too_complex", hint="Use fewer BREAKs.")
    parts = len(split_composable(text)) if composable and "AND" in text else 1
    if parts > MAX_PROMPT_AND_PARTS:
        raise LimitError(f"{field}: {parts} sub-prompts joined with AND; the limit is {MAX_PROMPT_AND_PARTS} (each "
                         "is another UNet pass at every step).", code="prompt_too_complex",
                         hint="Join fewer sub-prompts with AND.")
    groups = scheduled_parts(text)
    if groups > MAX_PROMPT_SCHEDULED_PARTS:
        raise LimitError(f"{field}: {groups} prompt-editing [a:b:when] / alternation [a|b] groups; the limit is "
                         f"{MAX_PROMPT_SCHEDULED_PARTS}.", code="prompt_too_complex",
                         hint="Use fewer [a:b:when] and [a|b] groups.")


def check_request_prompts(request: object) -> None:
    """Every prompt field a generation request has (txt2img's hires prompts too)."""
    for field, composable in PROMPT_FIELDS:
        text = getattr(request, field, None)
        if isinstance(text, str) and text:
            check_prompt(text, field, composable)
