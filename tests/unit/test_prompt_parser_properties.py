"""The prompt parser on hostile input: random bracket soup, deep nesting, 10k-character prompts.

Every function must return (never raise), with finite weights and well-formed schedules, and long
input must stay fast (the patterns A1111 uses are quadratic on long whitespace runs; ours are not).
"""

import math
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from sdweb.prompts.parser import (
    BREAK,
    MAX_WEIGHT,
    parse_extra_networks,
    parse_prompt_attention,
    prompt_schedules,
    split_composable,
)

PIECES = ["(", ")", "[", "]", ":", "|", "\\", " ", ",", "\n", "a", "cat", "1", "0.5", ".", "-", "+", "e",
          "BREAK", "AND", "<", ">", "lora", "::", ":1.5)", "9" * 30, "\\(", "[a:b:3]", "[x|y]", "(w:-1)"]
soup = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
anything = st.one_of(soup, st.text(max_size=200))


def _check_attention(text):
    result = parse_prompt_attention(text)
    assert result, "never empty"
    for part, weight in result:
        assert isinstance(part, str)
        assert math.isfinite(weight) and abs(weight) <= MAX_WEIGHT
    for left, right in zip(result, result[1:], strict=False):
        assert left[1] != right[1], "adjacent equal weights are merged"


def _check_schedule(prompt, steps, hires):
    schedule = prompt_schedules(prompt, steps, hires_steps=hires)
    total = steps if hires is None else hires
    ends = [end for end, _ in schedule]
    assert ends == sorted(set(ends)) and ends[-1] == total and ends[0] >= min(1, total)
    assert all(isinstance(text, str) for _, text in schedule)


@settings(max_examples=400, deadline=None)
@given(anything)
def test_attention_never_raises_and_weights_are_finite(text):
    _check_attention(text)


@settings(max_examples=300, deadline=None)
@given(anything, st.integers(1, 60), st.one_of(st.none(), st.integers(1, 30)))
def test_schedules_never_raise_and_are_well_formed(prompt, steps, hires):
    _check_schedule(prompt, steps, hires)


@settings(max_examples=400, deadline=None)
@given(anything)
def test_composable_split_never_raises_and_weights_are_finite(prompt):
    parts = split_composable(prompt)
    assert len(parts) >= 1
    if "AND" not in prompt:
        assert len(parts) == 1 and parts[0][0] == prompt.rstrip() or ":" in prompt
    assert all(math.isfinite(weight) for _, weight in parts)


@settings(max_examples=300, deadline=None)
@given(anything)
def test_every_stage_chained_never_raises(prompt):
    text, _ = parse_extra_networks(prompt)
    for part, _ in split_composable(text):
        for _, scheduled in prompt_schedules(part, 8):
            _check_attention(scheduled)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="()[]:\\|"), max_size=100))
def test_text_without_syntax_is_one_unweighted_run(text):
    if "BREAK" not in text:
        assert parse_prompt_attention(text) == [(text, 1.0)]
        assert prompt_schedules(text, 5) == [(5, text)]


HOSTILE = {
    "deep round": "(" * 5000 + "a" + ")" * 5000,
    "deep square": "[" * 5000 + "a" + "]" * 5000,
    "unclosed": "(" * 10000,
    "closers": ")]" * 5000,
    "many weighted items": "(a" * 3333 + ")" * 3333,
    "nested editing": "[a:" * 2000 + "b" + ":1]" * 2000,
    "nested alternation": "[a|" * 2000 + "b" + "]" * 2000,
    "whitespace then colon": " " * 10000 + ":",
    "text then whitespace": "a" + " " * 10000,
    "whitespace around BREAK": " " * 5000 + "BREAK" + " " * 5000,
    "many BREAKs": "BREAK " * 1700,
    "many ANDs": "a AND " * 1700,
    "escapes": "\\(" * 5000,
    "long words": "masterpiece, best quality, " * 370,
    "huge weight digits": "(a:" + "9" * 9990 + ")",
}


def test_hostile_prompts_return_quickly_with_finite_weights():
    for name, prompt in HOSTILE.items():
        started = time.perf_counter()
        _check_attention(prompt)
        _check_schedule(prompt, 20, None)
        _check_schedule(prompt, 20, 10)
        parts = split_composable(prompt)
        assert all(math.isfinite(weight) for _, weight in parts)
        parse_extra_networks(prompt)
        elapsed = time.perf_counter() - started
        assert elapsed < 3.0, f"{name}: {elapsed:.2f} s"


def test_deep_nesting_results():
    assert parse_prompt_attention("(" * 5000 + "a" + ")" * 5000) == [("a", MAX_WEIGHT)]
    assert parse_prompt_attention("[" * 5000 + "a" + "]" * 5000)[0][1] >= 0.0
    assert prompt_schedules("[a:" * 50 + "b" + ":1]" * 50, 4)[-1] == (4, "b")
    assert parse_prompt_attention("BREAK " * 3)[:2] == [("", 1.0), BREAK]
