"""A line of "Prompts from file or textbox": plain prompt text, or A1111's command-line style options
(`--prompt "a cat" --negative_prompt "blurry" --steps 30 --seed 1 --sampler_name "Euler a"`). Pure.

A prompt or negative prompt runs until the next `--option` (unquoted words are joined by spaces), as A1111.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any


class PromptLineError(ValueError):
    """A line that looks like options but cannot be read as them (A1111 then uses it as the prompt)."""


def _text(value: str) -> str:
    return value


def _flag(value: str) -> bool:
    return value == "true"  # A1111: only the word true is true


def _styles(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


# A1111's prompt_tags: option -> how its value is read
OPTIONS: dict[str, Callable[[str], Any]] = {
    "sd_model": _text, "outpath_samples": _text, "outpath_grids": _text, "prompt_for_display": _text,
    "prompt": _text, "negative_prompt": _text, "styles": _styles, "seed": int, "subseed_strength": float,
    "subseed": int, "seed_resize_from_h": int, "seed_resize_from_w": int, "sampler_index": int,
    "sampler_name": _text, "scheduler": _text, "batch_size": int, "n_iter": int, "steps": int, "cfg_scale": float,
    "width": int, "height": int, "restore_faces": _flag, "tiling": _flag, "do_not_save_samples": _flag,
    "do_not_save_grid": _flag,
}
PROMPT_OPTIONS = ("prompt", "negative_prompt")


def is_option_line(line: str) -> bool:
    return "--" in line


def parse_line(line: str) -> dict[str, Any]:
    """A line's options, values converted; raises PromptLineError naming what is wrong."""
    try:
        words = shlex.split(line)
    except ValueError as error:
        raise PromptLineError(f"cannot split the line: {error}") from None
    found: dict[str, Any] = {}
    position = 0
    while position < len(words):
        word = words[position]
        if not word.startswith("--"):
            raise PromptLineError(f"expected an --option, found {word!r}")
        name = word[2:]
        if name not in OPTIONS:
            raise PromptLineError(f"unknown option {word}")
        if position + 1 >= len(words):
            raise PromptLineError(f"{word} has no value")
        if name in PROMPT_OPTIONS:
            end = position + 1
            while end + 1 < len(words) and not words[end + 1].startswith("--"):
                end += 1
            found[name] = " ".join(words[position + 1:end + 1])
            position = end + 1
            continue
        try:
            found[name] = OPTIONS[name](words[position + 1])
        except ValueError:
            raise PromptLineError(f"{word}: {words[position + 1]!r} is not a valid value") from None
        position += 2
    return found


def read_lines(text: str) -> list[tuple[dict[str, Any], str | None]]:
    """Every non-empty line as (options, problem): a line that cannot be read as options is the prompt, with
    the problem said (as A1111 does after printing the error)."""
    jobs = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        if not is_option_line(line):
            jobs.append(({"prompt": line}, None))
            continue
        try:
            jobs.append((parse_line(line), None))
        except PromptLineError as error:
            jobs.append(({"prompt": line}, f"line {line[:60]!r} was used as the prompt: {error}"))
    return jobs
