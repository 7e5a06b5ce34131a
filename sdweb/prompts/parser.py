"""A1111 prompt syntax as pure functions (no torch, stdlib only).

- ``parse_prompt_attention``: emphasis ``(x)``, ``[x]``, ``(x:1.2)``, escapes and ``BREAK``.
- ``prompt_schedules``: prompt editing ``[from:to:when]`` and alternation ``[a|b]`` per step.
- ``split_composable``: ``AND`` with optional ``:weight`` per sub-prompt.
- ``parse_extra_networks`` / ``lora_calls``: ``<kind:arg:...>`` tags and the Lora argument rules.

Every function accepts any string and never raises, except ``lora_calls`` which reports a bad
``<lora:...>`` tag with a ``ValueError`` naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "BREAK",
    "ExtraNetworkCall",
    "LoraCall",
    "lora_calls",
    "parse_extra_networks",
    "parse_prompt_attention",
    "prompt_schedules",
    "prompt_schedules_batch",
    "split_composable",
]

# ---------------------------------------------------------------------------------------------
# Emphasis
# ---------------------------------------------------------------------------------------------

BREAK: tuple[str, float] = ("BREAK", -1.0)

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1

# Token alternatives, tried in order at each position. The weight alternative only accepts
# numbers float() can read; A1111 accepts any run of digits and dots there and then fails on
# e.g. "(a:1.2.3)". Here such input falls through to ":" + text + ")", as if no weight was given.
_ATTENTION_TOKEN = re.compile(
    r"""
    (?P<escape>\\[()\[\]\\]?)
    | (?P<open>[(\[])
    | :\s*(?P<weight>[+-]?(?:\d+\.?\d*|\.\d+))\s*\)
    | (?P<close>[)\]])
    | (?P<text>[^\\()\[\]:]+ | :)
    """,
    re.VERBOSE,
)
_BREAK_SPLIT = re.compile(r"\s*\bBREAK\b\s*", re.S)


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into ``(text, weight)`` runs the way A1111 does.

    ``BREAK`` becomes the item ``("BREAK", -1.0)``. Like A1111, a BREAK inside brackets has
    its -1 multiplied too (so ``(a BREAK b)`` yields ``("BREAK", -1.1)``, which is then just
    text). Adjacent runs with equal weights are merged; empty input gives ``[("", 1.0)]``.
    """
    res: list[list] = []
    round_starts: list[int] = []
    square_starts: list[int] = []

    def multiply_from(start: int, multiplier: float) -> None:
        for item in res[start:]:
            item[1] *= multiplier

    for match in _ATTENTION_TOKEN.finditer(text):
        kind = match.lastgroup
        token = match.group(0)
        if kind == "escape":
            res.append([token[1:], 1.0])
        elif kind == "open":
            (round_starts if token == "(" else square_starts).append(len(res))
        elif kind == "weight" and round_starts:
            multiply_from(round_starts.pop(), float(match.group("weight")))
        elif token == ")" and round_starts:
            multiply_from(round_starts.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_starts:
            multiply_from(square_starts.pop(), SQUARE_MULTIPLIER)
        else:
            _append_text_with_breaks(res, token)

    for start in round_starts:
        multiply_from(start, ROUND_MULTIPLIER)
    for start in square_starts:
        multiply_from(start, SQUARE_MULTIPLIER)
    if not res:
        return [("", 1.0)]
    return _merge_equal_weights(res)


def _append_text_with_breaks(res: list[list], text: str) -> None:
    for index, part in enumerate(_BREAK_SPLIT.split(text)):
        if index > 0:
            res.append(list(BREAK))
        res.append([part, 1.0])


def _merge_equal_weights(res: list[list]) -> list[tuple[str, float]]:
    merged: list[tuple[str, float]] = []
    for text, weight in res:
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + text, merged[-1][1])
        else:
            merged.append((text, weight))
    return merged


# ---------------------------------------------------------------------------------------------
# Prompt editing and alternation
# ---------------------------------------------------------------------------------------------
#
# A1111 parses with a lark grammar. What it accepts, restated:
# - top level: text, plus any "[", "]", "(", ")", ":" that do not form a valid item stay literal;
# - a valid item is "(P)", "(P:P)", "[P]", "[P|P?|...]" (alternation), "[P:NUM]" or "[P:P:NUM]"
#   (editing; whitespace allowed around NUM), where every P holds only text and valid items;
# - "\" escapes the next character (not a newline) into text;
# - a "|" that is not a separator of a valid alternation, or a "\" at the end or before a
#   newline, makes the whole prompt unparseable: it is then used literally for all steps.
# Where both readings are possible, a bracket that forms a valid item is taken as that item.

_NUMBER = re.compile(r"\s*([+-]?(?:[0-9]+[eE][+-]?[0-9]+|(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+))\s*")
_STRUCTURAL = "[]():|"
_CLOSER_OF = {"[": "]", "(": ")"}


@dataclass
class _Scheduled:
    before: list | None
    after: list
    number: str
    when: int = 0


@dataclass
class _Alternate:
    options: list[list]


class _Unparseable(Exception):
    pass


@dataclass
class _Frame:
    opener: str
    segments: list[list]
    separators: list[str]


def _schedule_units(prompt: str) -> list[str]:
    """Split into structural characters and text runs (escapes kept with their backslash)."""
    units: list[str] = []
    text: list[str] = []
    i = 0
    while i < len(prompt):
        char = prompt[i]
        if char == "\\":
            if i + 1 >= len(prompt) or prompt[i + 1] == "\n":
                raise _Unparseable
            text.append(prompt[i : i + 2])
            i += 2
            continue
        if char in _STRUCTURAL:
            if text:
                units.append("".join(text))
                text = []
            units.append(char)
        else:
            text.append(char)
        i += 1
    if text:
        units.append("".join(text))
    return units


def _flush_literal(frames: list[_Frame], top: list) -> None:
    """Open brackets that cannot form items become literal top-level text, with their contents."""
    for frame in frames:
        top.append(frame.opener)
        for index, segment in enumerate(frame.segments):
            if index > 0:
                separator = frame.separators[index - 1]
                if separator == "|":
                    raise _Unparseable
                top.append(separator)
            top.extend(segment)
    frames.clear()


def _close_frame(frame: _Frame) -> list | None:
    """Nodes for a closed bracket, or None when its contents are not a valid item."""
    seps, segs = frame.separators, frame.segments
    if frame.opener == "(":
        if seps and (len(seps) > 1 or seps[0] != ":"):
            return None
        return ["(", *segs[0], *([":", *segs[1]] if seps else []), ")"]
    if not seps:
        return ["[", *segs[0], "]"]
    if all(sep == "|" for sep in seps):
        return [_Alternate(segs)]
    if len(seps) > 2 or "|" in seps or not all(isinstance(node, str) for node in segs[-1]):
        return None
    number = _NUMBER.fullmatch("".join(segs[-1]))
    if number is None:
        return None
    before = segs[0] if len(seps) == 2 else None
    return [_Scheduled(before, segs[-2], number.group(1))]


def _parse_schedule_tree(prompt: str) -> list:
    """Node list (str, _Scheduled, _Alternate); raises _Unparseable like lark's failure."""
    top: list = []
    frames: list[_Frame] = []
    for unit in _schedule_units(prompt):
        if unit in _CLOSER_OF:
            frames.append(_Frame(unit, [[]], []))
        elif unit in ("]", ")"):
            nodes = None
            if frames and _CLOSER_OF[frames[-1].opener] == unit:
                nodes = _close_frame(frames[-1])
            if nodes is None:
                _flush_literal(frames, top)
                top.append(unit)
                continue
            frames.pop()
            (frames[-1].segments[-1] if frames else top).extend(nodes)
        elif unit in (":", "|"):
            if frames:
                frames[-1].separators.append(unit)
                frames[-1].segments.append([])
            elif unit == "|":
                raise _Unparseable
            else:
                top.append(unit)
        else:
            (frames[-1].segments[-1] if frames else top).append(unit)
    _flush_literal(frames, top)
    return top


def _walk(nodes: list) -> Iterable[_Scheduled | _Alternate]:
    pending = [nodes]
    while pending:
        for node in pending.pop():
            if isinstance(node, _Scheduled):
                yield node
                pending.append(node.after)
                if node.before is not None:
                    pending.append(node.before)
            elif isinstance(node, _Alternate):
                yield node
                pending.extend(node.options)


def _when_step(number: str, steps: int, hires: tuple[int, float] | None, old: bool) -> int:
    value = float(number)
    int_offset, float_offset = hires or (0, 0.0)
    if old:
        value = value * steps if value < 1 else value
    elif "." in number:
        value = (value - float_offset) * steps
    else:
        value = value - int_offset
    if math.isnan(value):
        return 0
    # Clamping below at -1 keeps "never" (A1111 keeps the raw negative) without int(inf) errors.
    return int(max(min(value, steps), -1))


def _render(nodes: list, step: int) -> str:
    out: list[str] = []
    pending = [iter(nodes)]
    while pending:
        node = next(pending[-1], None)
        if node is None:
            pending.pop()
        elif isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Scheduled):
            chosen = (node.before or []) if step <= node.when else node.after
            pending.append(iter(chosen))
        else:
            pending.append(iter(node.options[(step - 1) % len(node.options)]))
    return "".join(out)


def prompt_schedules(
    prompt: str, steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[tuple[int, str]]:
    """``[(end_step, text), ...]`` for one prompt, as A1111's ``get_learned_conditioning_prompt_schedules``.

    ``steps`` is the first-pass step count. With ``hires_steps`` (and the default new timelines)
    the schedule covers the hires pass: integer ``when`` values are shifted by ``steps`` and
    fractional ones by 1.0. Text is used unchanged for all steps when it does not parse.
    """
    hires = None if hires_steps is None or use_old_scheduling else (steps, 1.0)
    total = steps if hires is None else hires_steps
    try:
        tree = _parse_schedule_tree(prompt)
    except _Unparseable:
        return [(total, prompt)]
    ends = {total}
    for node in _walk(tree):
        if isinstance(node, _Scheduled):
            node.when = _when_step(node.number, total, hires, use_old_scheduling)
            if node.when >= 1:
                ends.add(node.when)
        else:
            ends.update(range(1, total + 1))
    return [(end, _render(tree, end)) for end in sorted(ends)]


def prompt_schedules_batch(
    prompts: Sequence[str], steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[list[tuple[int, str]]]:
    """``prompt_schedules`` for each prompt, computing each distinct prompt once."""
    cache: dict[str, list[tuple[int, str]]] = {}
    for prompt in prompts:
        if prompt not in cache:
            cache[prompt] = prompt_schedules(prompt, steps, hires_steps, use_old_scheduling)
    return [list(cache[prompt]) for prompt in prompts]


# ---------------------------------------------------------------------------------------------
# Composable diffusion (AND)
# ---------------------------------------------------------------------------------------------

_AND = re.compile(r"\bAND\b")
_SUBPROMPT_WEIGHT = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


def split_composable(prompt: str) -> list[tuple[str, float]]:
    """Split on the word ``AND``; each part may end with ``:weight`` (default 1.0).

    Trailing whitespace of each part is dropped, leading whitespace kept (as A1111).
    """
    result = []
    for part in _AND.split(prompt):
        match = _SUBPROMPT_WEIGHT.search(part)
        text, weight = (match.group(1), match.group(2)) if match else (part, None)
        result.append((text, _to_float(weight, 1.0)))
    return result


def _to_float(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        return default


# ---------------------------------------------------------------------------------------------
# Extra networks
# ---------------------------------------------------------------------------------------------

_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")


@dataclass(frozen=True)
class ExtraNetworkCall:
    """One ``<kind:arg1:arg2...>`` tag; ``args`` are the raw ``:``-separated strings."""

    kind: str
    args: tuple[str, ...]

    @property
    def positional(self) -> tuple[str, ...]:
        return tuple(arg for arg in self.args if len(arg.split("=", 2)) != 2)

    @property
    def named(self) -> dict[str, str]:
        pairs = (arg.split("=", 2) for arg in self.args)
        return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}

    def tag(self) -> str:
        return f"<{self.kind}:{':'.join(self.args)}>"


def parse_extra_networks(prompt: str) -> tuple[str, list[ExtraNetworkCall]]:
    """Remove every ``<kind:args>`` tag; return the remaining text (unchanged otherwise) and the calls."""
    calls: list[ExtraNetworkCall] = []

    def take(match: re.Match) -> str:
        calls.append(ExtraNetworkCall(match.group(1), tuple(match.group(2).split(":"))))
        return ""

    return _EXTRA_NETWORK.sub(take, prompt), calls


LORA_KINDS = ("lora", "lyco")


@dataclass(frozen=True)
class LoraCall:
    name: str
    te_weight: float
    unet_weight: float
    dyn_dim: int | None


def lora_calls(calls: Iterable[ExtraNetworkCall]) -> list[LoraCall]:
    """``<lora:NAME[:TE[:UNET[:DYN]]]>`` plus named ``te=``, ``unet=``, ``dyn=``; ``<lyco:...>`` too.

    UNET defaults to the TE weight (after ``te=`` is applied). Other kinds are ignored.
    """
    return [_lora_call(call) for call in calls if call.kind in LORA_KINDS]


def _lora_call(call: ExtraNetworkCall) -> LoraCall:
    positional, named = call.positional, call.named
    if not positional or not positional[0]:
        raise ValueError(f"{call.tag()}: missing network name")
    te = _lora_number(call, "te weight", positional[1] if len(positional) > 1 else None, 1.0, float)
    te = _lora_number(call, "te weight", named.get("te"), te, float)
    unet = _lora_number(call, "unet weight", positional[2] if len(positional) > 2 else None, te, float)
    unet = _lora_number(call, "unet weight", named.get("unet"), unet, float)
    dyn = _lora_number(call, "dyn dim", positional[3] if len(positional) > 3 else None, None, int)
    dyn = _lora_number(call, "dyn dim", named.get("dyn"), dyn, int)
    return LoraCall(positional[0], te, unet, dyn)


def _lora_number(call: ExtraNetworkCall, what: str, text: str | None, default, convert):
    if text is None:
        return default
    try:
        return convert(text)
    except ValueError:
        kind = "an integer" if convert is int else "a number"
        raise ValueError(f"{call.tag()}: {what} {text!r} is not {kind}") from None
