"""Fuzzing the pure parsers and PNG-info with hypothesis: the infotext parser, the prompt parser, and reading
metadata from random bytes and from truncated / bit-flipped PNG, JPEG and WebP files. Nothing may escape but a
UserError (the clear message the API turns into a 4xx), and POST /sdapi/v1/png-info never answers 5xx."""

from __future__ import annotations

import base64
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sdweb.api.a1111.images import decode_image
from sdweb.cli import parse_options
from sdweb.core.errors import UserError
from sdweb.infotext import infotext_to_request_fields, parse_infotext, parse_infotext_parts
from sdweb.outputs.save import encode_image, read_infotext
from sdweb.prompts.parser import (
    lora_calls,
    parse_extra_networks,
    parse_prompt_attention,
    prompt_schedules,
    split_composable,
)
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client

CASES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
INFOTEXT = ("a cat, (masterpiece:1.2), <lora:x:0.7>\nNegative prompt: ugly\n"
            'Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, '
            'Model hash: abcdef1234, Hires upscale: 2, Lora hashes: "x: 0123", Version: v1.10.1')
FRAGMENTS = st.sampled_from(["Steps: ", "Size: ", "x", "Seed: ", "-1", ", ", "\n", "Negative prompt:", '"', "\\",
                             ":", "Hires resize: ", "Clip skip: ", "1e309", "nan", "Sampler: ", "Euler a",
                             "RNG: ", "Schedule type: ", "Template: ", "Version: ", "Lora hashes: ", "(", ")",
                             "[", "]", "AND", "BREAK", "<lora:", ">", "{", "}", "\x00", "\u202e", "9" * 40])
PROMPT_TEXT = st.one_of(st.text(max_size=300),
                        st.lists(st.sampled_from(list("()[]:|\\<>,.0123456789 -") + ["AND", "BREAK", "lora",
                                                                                     "<lora:a:", "a cat", "1e400",
                                                                                     "nan", "inf", "::"]),
                                 max_size=60).map("".join))


def _infotext_inputs():
    return st.one_of(st.text(max_size=400), st.lists(FRAGMENTS, max_size=80).map("".join),
                     st.integers(0, len(INFOTEXT)).map(lambda n: INFOTEXT[:n]),
                     st.tuples(st.integers(0, len(INFOTEXT) - 1), st.characters()).map(
                         lambda t: INFOTEXT[:t[0]] + t[1] + INFOTEXT[t[0] + 1:]))


@FAST
@given(_infotext_inputs())
def test_infotext_parser_never_raises(text):
    CASES["infotext"] += 1
    prompt, negative, pairs = parse_infotext_parts(text)
    assert isinstance(prompt, str) and isinstance(negative, str) and isinstance(pairs, dict)
    params = parse_infotext(text)
    assert isinstance(params, dict) and "Prompt" in params
    for mode in ("txt2img", "img2img"):
        try:
            infotext_to_request_fields(params, mode=mode, current_settings={})
        except UserError as error:  # a value the request cannot take: named, never a crash
            assert error.message


@FAST
@given(PROMPT_TEXT, st.integers(1, 150), st.one_of(st.none(), st.integers(1, 150)), st.booleans())
def test_prompt_parser_never_raises(prompt, steps, hires_steps, old):
    CASES["prompt"] += 1
    assert isinstance(parse_prompt_attention(prompt), list)
    schedules = prompt_schedules(prompt, steps, hires_steps, old)
    assert schedules and schedules[-1][0] >= 1
    for part, weight in split_composable(prompt):
        assert isinstance(part, str) and weight == weight  # not NaN
    text, calls = parse_extra_networks(prompt)
    assert isinstance(text, str)
    try:
        lora_calls(calls)
    except UserError as error:  # e.g. <lora:a:abc> (a weight that is not a number) names the tag
        assert "lora" in error.message.lower()


@pytest.mark.parametrize("text", [
    "x" * 10_000_000,  # one 10 MB line: was quadratic in A1111's parameter pattern (hours)
    "x y-z/" * 10_900,  # just under the 64 KiB parameter-line limit, all key characters
    "Steps: 20, Seed: 1, Size: 5x5, " + "a b" * 21_000,
    "prompt\n" + "Steps: 1, " * 6_000,
])
def test_long_infotexts_parse_quickly(text):
    import time

    started = time.perf_counter()
    parse_infotext(text)
    assert time.perf_counter() - started < 3.0
    CASES["long infotext"] += 1


def _sample(fmt: str) -> bytes:
    image = Image.effect_mandelbrot((48, 40), (-2, -1.2, 1, 1.2), 40).convert("RGB")
    return encode_image(image, INFOTEXT, fmt)


SAMPLES = {fmt: _sample(fmt) for fmt in ("png", "jpg", "webp")}


def _damaged(data: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    damaged = bytearray(data if cut is None else data[: cut % (len(data) + 1)])
    for position, bit in flips:
        if damaged:
            damaged[position % len(damaged)] ^= 1 << bit
    return bytes(damaged)


DAMAGED = st.builds(_damaged, st.sampled_from(list(SAMPLES.values())), st.one_of(st.none(), st.integers(0, 10**6)),
                    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), max_size=6))
RAW = st.one_of(st.binary(max_size=600), DAMAGED,
                st.binary(max_size=64).map(lambda tail: b"\x89PNG\r\n\x1a\n" + tail),
                st.binary(max_size=64).map(lambda tail: b"\xff\xd8\xff\xe1" + tail),
                st.binary(max_size=64).map(lambda tail: b"RIFF\x10\x00\x00\x00WEBPVP8X" + tail))


def png_info_function(raw: bytes) -> dict:
    """What the /png-info route does with the bytes, minus HTTP."""
    image = decode_image(base64.b64encode(raw).decode(), "image")
    text, items = read_infotext(image)
    return {"info": text or "", "items": items, "parameters": parse_infotext(text) if text else {}}


@FAST
@given(RAW)
def test_png_info_function_on_random_and_damaged_files(raw):
    CASES["png-info function"] += 1
    try:
        result = png_info_function(raw)
    except UserError as error:
        assert error.message.startswith("image:"), error.message
        return
    assert isinstance(result["info"], str)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    state = build_app_state(parse_options(["--data-dir", str(tmp_path_factory.mktemp("fuzz")), "--nowebui"], {}))
    yield local_client(create_app(state), raise_server_exceptions=False)
    state.queue.shutdown()


def test_png_info_route_never_500s(client, summary):
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(RAW.map(lambda raw: base64.b64encode(raw).decode()),
                     RAW.map(lambda raw: "data:image/png;base64," + base64.b64encode(raw).decode()),
                     st.text(max_size=200)))
    def route(payload):
        CASES["png-info route"] += 1
        answer = client.post("/sdapi/v1/png-info", json={"image": payload})
        STATUSES[answer.status_code] += 1
        assert answer.status_code < 500, answer.text
        if answer.status_code != 200:
            assert "image" in answer.text

    route()
    good = client.post("/sdapi/v1/png-info", json={"image": base64.b64encode(SAMPLES["png"]).decode()})
    assert good.status_code == 200 and str(good.json()["parameters"]["Seed"]) == "42"  # still answering afterwards
    total = sum(CASES.values())
    per_area = ", ".join(f"{name} {count}" for name, count in CASES.items())
    statuses = ", ".join(f"{code}: {count}" for code, count in sorted(STATUSES.items()))
    summary("fuzz", f"{total} cases ({per_area}), 0 exceptions escaped, 0 server errors (png-info {statuses})")
