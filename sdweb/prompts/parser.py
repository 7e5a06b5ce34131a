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

from sdweb.core.errors import UserError

__all__ = [
    "BREAK",
    "MAX_WEIGHT",
    "ExtraNetworkCall",
    "LoraCall",
    "clamp_weight",
    "lora_calls",
    "parse_extra_networks",
    "parse_prompt_attention",
    "prompt_schedules",
    "prompt_schedules_batch",
    "scheduled_parts",
    "split_composable",
]

# ---------------------------------------------------------------------------------------------
# Emphasis
# ---------------------------------------------------------------------------------------------

BREAK: tuple[str, float] = ("BREAK", -1.0)

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
# A1111 lets weights overflow (e.g. 8000 nested "(" or a 400-digit weight) into inf, and inf * 0 into NaN,
# which ruins the image. Weights are kept within +-MAX_WEIGHT instead; nothing realistic comes near it.
MAX_WEIGHT = 1e4


def clamp_weight(weight: float) -> float:
    """``weight`` limited to +-MAX_WEIGHT (NaN becomes 1.0, i.e. no emphasis)."""
    if math.isnan(weight):
        return 1.0
    return max(-MAX_WEIGHT, min(MAX_WEIGHT, weight))

# Token alternatives, tried in order at each position. The weight alternative only accepts
# numbers float() can read; A1111 accepts any run of digits and dots there and then fails on
# e.g. "(a:1.2.3)". Here such input falls through to ":" + text + ")", as if no weight was given.
_ATTENTION_TOKEN = re.compile(
    r"""
    (?P<escape>\\[()\[\]\\]?)
    | (?P<open>[(\[])
    | (?P<weighted>:\s*(?P<weight>[+-]?(?:\d+\.?\d*|\.\d+))\s*\))
    | (?P<close>[)\]])
    | (?P<text>[^\\()\[\]:]+ | :)
    """,
    re.VERBOSE,
)
_BREAK_WORD = re.compile(r"\bBREAK\b")
_EMPHASIS_CHARS = re.compile(r"[\\()\[\]]")


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into ``(text, weight)`` runs the way A1111 does.

    ``BREAK`` becomes the item ``("BREAK", -1.0)``. Like A1111, a BREAK inside brackets has
    its -1 multiplied too (so ``(a BREAK b)`` yields ``("BREAK", -1.1)``, which is then just
    text). Adjacent runs with equal weights are merged; empty input gives ``[("", 1.0)]``.
    Weights are multiplied in A1111's order (innermost bracket first), so they are bit-identical.
    """
    has_break = "BREAK" in text
    if not has_break and _EMPHASIS_CHARS.search(text) is None:
        return [(text, 1.0)]
    texts: list[str] = []
    weights: list[float] = []
    add_text, add_weight = texts.append, weights.append
    round_starts: list[int] = []
    square_starts: list[int] = []
    # findall gives one tuple per token with exactly one non-empty group (faster than match objects)
    for escape, opener, weighted, weight, closer, plain in _ATTENTION_TOKEN.findall(text):
        if plain:
            if has_break and "BREAK" in plain:
                _append_text_with_breaks(texts, weights, plain)
            else:
                add_text(plain)
                add_weight(1.0)
        elif opener:
            (round_starts if opener == "(" else square_starts).append(len(texts))
        elif weight:
            if round_starts:
                value = float(weight)
                _multiply_from(weights, round_starts.pop(), value if -MAX_WEIGHT <= value <= MAX_WEIGHT
                               else clamp_weight(value))
            else:  # ":1.5)" without an open "(" is text, as in A1111
                texts.append(weighted)
                weights.append(1.0)
        elif closer:
            starts = round_starts if closer == ")" else square_starts
            if starts:
                _multiply_from(weights, starts.pop(), ROUND_MULTIPLIER if closer == ")" else SQUARE_MULTIPLIER)
            else:
                texts.append(closer)
                weights.append(1.0)
        else:
            texts.append(escape[1:])
            weights.append(1.0)
    for start in round_starts:
        _multiply_from(weights, start, ROUND_MULTIPLIER)
    for start in square_starts:
        _multiply_from(weights, start, SQUARE_MULTIPLIER)
    if not texts:
        return [("", 1.0)]
    return _merge_equal_weights(texts, weights)


def _multiply_from(weights: list[float], start: int, multiplier: float) -> None:
    """Multiply every weight from ``start`` on (``multiplier`` is finite, so the products are never NaN)."""
    if start == len(weights) - 1:  # the usual "(word:1.2)": one run
        weight = weights[start] * multiplier
        weights[start] = MAX_WEIGHT if weight > MAX_WEIGHT else -MAX_WEIGHT if weight < -MAX_WEIGHT else weight
        return
    tail = [weight * multiplier for weight in weights[start:]]
    if tail and (max(tail) > MAX_WEIGHT or min(tail) < -MAX_WEIGHT):
        tail = [MAX_WEIGHT if w > MAX_WEIGHT else -MAX_WEIGHT if w < -MAX_WEIGHT else w for w in tail]
    weights[start:] = tail


def _split_on_break(text: str) -> list[str]:
    """``re.split(r"\\s*\\bBREAK\\b\\s*", text)`` (A1111's split), in linear time: that regex is quadratic
    on long runs of whitespace, this finds the words and strips the whitespace around each."""
    if "BREAK" not in text:
        return [text]
    parts: list[str] = []
    start = 0
    for match in _BREAK_WORD.finditer(text):
        parts.append(text[start:match.start()].rstrip() if not parts else text[start:match.start()].strip())
        start = match.end()
    if not parts:
        return [text]
    parts.append(text[start:].lstrip())
    return parts


def _append_text_with_breaks(texts: list[str], weights: list[float], text: str) -> None:
    for index, part in enumerate(_split_on_break(text)):
        if index > 0:
            texts.append(BREAK[0])
            weights.append(BREAK[1])
        texts.append(part)
        weights.append(1.0)


def _merge_equal_weights(texts: list[str], weights: list[float]) -> list[tuple[str, float]]:
    cuts = [index for index in range(1, len(weights)) if weights[index] != weights[index - 1]]
    bounds = [0, *cuts, len(weights)]
    return [("".join(texts[start:stop]), weights[start]) for start, stop in zip(bounds, bounds[1:], strict=False)]


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
# Every [from:to:when] ends with ":" NUMBER "]" written out in the text; this finds a superset of those.
_MAYBE_EDITING = re.compile(r":\s*[+-]?[0-9.][0-9.eE+-]*\s*\]")
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


_SCHEDULE_UNIT = re.compile(r"\\[^\n]|\\|[\[\]():|]|[^\\\[\]():|]+")


def _schedule_units(prompt: str) -> list[str]:
    """Split into structural characters and text runs (escapes kept with their backslash)."""
    units = _SCHEDULE_UNIT.findall(prompt)
    if "\\" in prompt and "\\" in units:  # a backslash at the end or before a newline escapes nothing
        raise _Unparseable
    return units


def _coalesce(nodes: list) -> list:
    """Adjacent text nodes joined into one, so rendering a step walks few nodes."""
    out: list = []
    run: list[str] = []
    for node in nodes:
        if type(node) is str:
            run.append(node)
        else:
            if run:
                out.append("".join(run))
                run = []
            out.append(node)
    if run:
        out.append("".join(run))
    return out


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
        return [_Alternate([_coalesce(option) for option in segs])]
    if len(seps) > 2 or "|" in seps or not all(isinstance(node, str) for node in segs[-1]):
        return None
    number = _NUMBER.fullmatch("".join(segs[-1]))
    if number is None:
        return None
    before = _coalesce(segs[0]) if len(seps) == 2 else None
    return [_Scheduled(before, _coalesce(segs[-2]), number.group(1))]


def _parse_schedule_tree(prompt: str) -> list:
    """Node list (str, _Scheduled, _Alternate); raises _Unparseable like lark's failure."""
    top: list = []
    frames: list[_Frame] = []
    current = top  # the list text goes to: the innermost open segment, or the top level
    for unit in _schedule_units(prompt):
        if len(unit) > 1 or unit not in _STRUCTURAL:
            current.append(unit)
        elif unit in _CLOSER_OF:
            frame = _Frame(unit, [[]], [])
            frames.append(frame)
            current = frame.segments[-1]
        elif unit in ("]", ")"):
            nodes = _close_frame(frames[-1]) if frames and _CLOSER_OF[frames[-1].opener] == unit else None
            if nodes is None:
                _flush_literal(frames, top)
                top.append(unit)
                current = top
                continue
            frames.pop()
            current = frames[-1].segments[-1] if frames else top
            current.extend(nodes)
        elif frames:
            frames[-1].separators.append(unit)
            current = []
            frames[-1].segments.append(current)
        elif unit == "|":
            raise _Unparseable
        else:
            top.append(unit)
    _flush_literal(frames, top)
    return _coalesce(top)


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
        for node in pending[-1]:
            if type(node) is str:
                out.append(node)
                continue
            if type(node) is _Scheduled:
                chosen = (node.before or []) if step <= node.when else node.after
            else:
                chosen = node.options[(step - 1) % len(node.options)]
            pending.append(iter(chosen))
            break
        else:
            pending.pop()
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
    if "[" not in prompt or ("|" not in prompt and _MAYBE_EDITING.search(prompt) is None):
        return [(total, prompt)]  # no editing or alternation can be in it: the text is used as written
    try:
        tree = _parse_schedule_tree(prompt)
    except _Unparseable:
        return [(total, prompt)]
    ends = {total}
    nodes = list(_walk(tree))
    for node in nodes:
        if isinstance(node, _Scheduled):
            node.when = _when_step(node.number, total, hires, use_old_scheduling)
            if node.when >= 1:
                ends.add(node.when)
        else:
            ends.update(range(1, total + 1))
    lengths = [len(node.options) for node in nodes if isinstance(node, _Alternate)]
    if not lengths:
        return [(end, _render(tree, end)) for end in sorted(ends)]
    whens = [node.when for node in nodes if isinstance(node, _Scheduled)]
    rendered: dict[tuple, str] = {}  # alternation repeats: render each combination of choices once
    schedule = []
    for end in sorted(ends):
        choice = (*[end <= when for when in whens], *[(end - 1) % length for length in lengths])
        if choice not in rendered:
            rendered[choice] = _render(tree, end)
        schedule.append((end, rendered[choice]))
    return schedule


def scheduled_parts(prompt: str) -> int:
    """How many prompt-editing ``[from:to:when]`` and alternation ``[a|b]`` groups the prompt holds (0 when it
    does not parse, as it is then used literally)."""
    if "[" not in prompt:
        return 0
    try:
        return sum(1 for _ in _walk(_parse_schedule_tree(prompt)))
    except _Unparseable:
        return 0


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
_SUBPROMPT_NUMBER = re.compile(r"[-+]?(?:\d+\.?|\d*\.\d+)")


def split_composable(prompt: str) -> list[tuple[str, float]]:
    """Split on the word ``AND``; each part may end with ``:weight`` (default 1.0).

    Same result as A1111's ``^((?:\\s|.)*?)(?:\\s*:\\s*(NUMBER))?\\s*$`` on each part: trailing whitespace
    is dropped (also before the weight's colon), leading whitespace kept. That regex is quadratic on long
    whitespace runs; this looks at the last colon instead, in linear time.
    """
    return [_subprompt_weight(part) for part in _AND.split(prompt)]


def _subprompt_weight(part: str) -> tuple[str, float]:
    text = part.rstrip()
    colon = text.rfind(":")
    if colon >= 0 and _SUBPROMPT_NUMBER.fullmatch(text[colon + 1:].lstrip()):
        return text[:colon].rstrip(), clamp_weight(_to_float(text[colon + 1:].lstrip(), 1.0))
    return text, 1.0


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


class LoraTagError(UserError, ValueError):
    """A malformed ``<lora:...>`` tag: a clear 4xx naming the tag (a ValueError too, for pure-parser callers)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_lora_tag", hint="Write it as <lora:name:weight>, e.g. <lora:x:0.8>.")


def _lora_call(call: ExtraNetworkCall) -> LoraCall:
    positional, named = call.positional, call.named
    if not positional or not positional[0]:
        raise LoraTagError(f"{call.tag()}: missing network name")
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
        raise LoraTagError(f"{call.tag()}: {what} {text!r} is not {kind}") from None
