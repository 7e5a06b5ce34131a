"""A1111 prompt syntax, as tables: emphasis, prompt editing and alternation, AND, extra-network tags.

Expected values come from A1111's documented behaviour (a1111.md §6 and the doctest examples in its
prompt_parser.py); weights are written as the multiplications A1111 performs, in its order.
"""

import pytest

from sdweb.prompts.parser import (
    BREAK,
    MAX_WEIGHT,
    ExtraNetworkCall,
    LoraCall,
    lora_calls,
    parse_extra_networks,
    parse_prompt_attention,
    prompt_schedules,
    prompt_schedules_batch,
    split_composable,
)

R = 1.1  # ( )
S = 1 / 1.1  # [ ]

ATTENTION = [
    # A1111's doctest examples
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", R), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", R)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", R)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.3 * R * R), (" ", R), ("on", 1.0), (" a ", R), ("hill", 0.55),
      (", sun, ", R), ("sky", R * R * R * R), (".", R)]),
    # explicit weights, including zero and negative ones, and whitespace around them
    ("(cat:1.5)", [("cat", 1.5)]),
    ("(cat: 1.5 )", [("cat", 1.5)]),
    ("(cat:.5)", [("cat", 0.5)]),
    ("(cat:1.)", [("cat", 1.0)]),
    ("(cat:+2)", [("cat", 2.0)]),
    ("(cat:0)", [("cat", 0.0)]),
    ("(cat:-1)", [("cat", -1.0)]),
    ("a (cat:1.0) b", [("a cat b", 1.0)]),
    ("((cat:2))", [("cat", 2 * R)]),
    ("((cat))", [("cat", R * R)]),
    ("[cat]", [("cat", S)]),
    ("[[cat]]", [("cat", S * S)]),
    ("[unbalanced", [("unbalanced", S)]),
    ("(a [b) c]", [("a ", R), ("b", R * S), (" c", S)]),
    ("[a (b] c)", [("a ", S), ("b", S * R), (" c", R)]),
    # no [text:w] form: the weight syntax only closes a round bracket
    ("[cat:1.5]", [("cat:1.5", S)]),
    ("(:1.5)", [("", 1.0)]),
    # numbers float() cannot read are not weights (A1111 raises on them): ":" stays text
    ("(a:1.2.3)", [("a:1.2.3", R)]),
    ("(a:1e3)", [("a:1e3", R)]),
    ("a:b", [("a:b", 1.0)]),
    (": 1.5)", [(": 1.5)", 1.0)]),
    # unmatched closers are text; escapes of every bracket and of the backslash
    ("a ) b ]", [("a ) b ]", 1.0)]),
    ("\\(a\\) \\[b\\]", [("(a) [b]", 1.0)]),
    ("a \\\\ b", [("a \\ b", 1.0)]),
    ("a \\b", [("a b", 1.0)]),
    ("(a\\)b)", [("a)b", R)]),
    # BREAK: uppercase whole word, whitespace around it removed; inside brackets it is just weighted text
    ("a BREAK b", [("a", 1.0), BREAK, ("b", 1.0)]),
    ("a\nBREAK\tb", [("a", 1.0), BREAK, ("b", 1.0)]),
    ("BREAK", [("", 1.0), BREAK, ("", 1.0)]),
    ("a BREAK BREAK b", [("a", 1.0), BREAK, ("", 1.0), BREAK, ("b", 1.0)]),
    ("(a BREAK b)", [("a", R), ("BREAK", -1.0 * R), ("b", R)]),
    ("aBREAK break BREAKs", [("aBREAK break BREAKs", 1.0)]),
    ("(a) BREAK (b)", [("a", R), ("", 1.0), BREAK, ("", 1.0), ("b", R)]),
    ("", [("", 1.0)]),
]


@pytest.mark.parametrize(("text", "expected"), ATTENTION)
def test_parse_prompt_attention(text, expected):
    assert parse_prompt_attention(text) == expected


def test_weights_beyond_the_limit_are_clamped_not_infinite():
    assert parse_prompt_attention("(a:" + "9" * 400 + ")") == [("a", MAX_WEIGHT)]
    assert parse_prompt_attention("(" * 8000 + "a") == [("a", MAX_WEIGHT)]
    # A1111 would compute inf * 0 = NaN here
    assert parse_prompt_attention("((a:" + "9" * 400 + "):0)") == [("a", 0.0)]


SCHEDULES_10 = [
    # A1111's doctest examples (10 steps)
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", [(step, "a" if step % 2 else "(b:1.1)") for step in range(1, 11)]),
    ("[fe|]male", [(step, "female" if step % 2 else "male") for step in range(1, 11)]),
    ("[fe|||]male", [(step, "female" if step % 4 == 1 else "male") for step in range(1, 11)]),
    # from / to / remove
    ("[cat:dog:5]", [(5, "cat"), (10, "dog")]),
    ("[cat:dog:0.5]", [(5, "cat"), (10, "dog")]),
    ("[cat::4]", [(4, "cat"), (10, "")]),
    ("[cat:dog: 5 ]", [(5, "cat"), (10, "dog")]),
    ("[cat:dog:0.25]", [(2, "cat"), (10, "dog")]),  # int(2.5)
    ("[cat:dog:1.0]", [(10, "cat")]),  # a decimal point makes it a fraction: all steps
    ("[cat:dog:1]", [(1, "cat"), (10, "dog")]),  # an integer is a step
    ("[cat:dog:25]", [(10, "cat")]),  # clamped to the step count
    ("[cat:dog:0]", [(10, "dog")]),
    ("[cat:dog:-3]", [(10, "dog")]),
    ("[cat:dog:1e1]", [(10, "cat")]),
    # nesting and mixing with emphasis
    ("[[cat:dog:2]:bird:6]", [(2, "cat"), (6, "dog"), (10, "bird")]),
    ("(a:[b:c:2])", [(2, "(a:b)"), (10, "(a:c)")]),
    ("[(cat:1.2):dog:3]", [(3, "(cat:1.2)"), (10, "dog")]),
    ("[a|[b|c]]", [(step, "a" if step % 2 else "c") for step in range(1, 11)]),
    ("[[a|b]:c:3]", [(1, "a"), (2, "b"), (3, "a")] + [(step, "c") for step in range(4, 11)]),
    # not prompt editing: used as written (the emphasis parser sees the brackets later)
    ("[a:b]", [(10, "[a:b]")]),
    ("[a:b:c:3]", [(10, "[a:b:c:3]")]),
    ("[a:b:x]", [(10, "[a:b:x]")]),
    ("\\[a:b:3\\]", [(10, "\\[a:b:3\\]")]),
    ("a ] b [c:2]", [(2, "a ] b "), (10, "a ] b c")]),
    ("(a:b:c) [d:2]", [(2, "(a:b:c) "), (10, "(a:b:c) d")]),
    # unparseable (a stray "|", a trailing backslash): the whole prompt is used literally
    ("a | b [c:2]", [(10, "a | b [c:2]")]),
    ("[c:2] a\\", [(10, "[c:2] a\\")]),
    ("(a|b) [c:2]", [(10, "(a|b) [c:2]")]),
    ("", [(10, "")]),
]


@pytest.mark.parametrize(("prompt", "expected"), SCHEDULES_10)
def test_prompt_schedules(prompt, expected):
    assert prompt_schedules(prompt, 10) == expected


HIRES = [
    # (prompt, base steps, hires steps, expected): A1111 1.10 shifts integers by the base steps, fractions by 1.0
    ("a [b:.5] c", 10, 10, [(10, "a b c")]),  # doctest
    ("a [b:1.5] c", 10, 10, [(5, "a  c"), (10, "a b c")]),  # doctest
    ("[a:b:25]", 20, 10, [(5, "a"), (10, "b")]),
    ("[a:b:15]", 20, 10, [(10, "b")]),
    ("[a:b:1.25]", 20, 8, [(2, "a"), (8, "b")]),
    ("[a|b]", 20, 3, [(1, "a"), (2, "b"), (3, "a")]),
]


@pytest.mark.parametrize(("prompt", "steps", "hires", "expected"), HIRES)
def test_prompt_schedules_hires_pass(prompt, steps, hires, expected):
    assert prompt_schedules(prompt, steps, hires_steps=hires) == expected


def test_old_scheduling_fraction_below_one_else_step_and_no_hires_offset():
    assert prompt_schedules("[a:b:0.5]", 20, use_old_scheduling=True) == [(10, "a"), (20, "b")]
    assert prompt_schedules("[a:b:1.0]", 20, use_old_scheduling=True) == [(1, "a"), (20, "b")]
    assert prompt_schedules("[a:b:5]", 20, hires_steps=10, use_old_scheduling=True) == [(5, "a"), (20, "b")]


def test_schedule_ends_are_ordered_and_end_at_the_step_count():
    schedule = prompt_schedules("[a:b:3] [c:d:0.7] [e|f]", 10)
    ends = [end for end, _ in schedule]
    assert ends == sorted(set(ends)) and ends[-1] == 10 and ends[0] >= 1


def test_prompt_schedules_batch_matches_single_calls():
    prompts = ["[a:b:2]", "c", "[a:b:2]"]
    assert prompt_schedules_batch(prompts, 4) == [prompt_schedules(p, 4) for p in prompts]


COMPOSABLE = [
    ("a cat", [("a cat", 1.0)]),
    ("a cat AND a dog", [("a cat", 1.0), (" a dog", 1.0)]),
    ("a cat :1.2 AND a dog :0.8", [("a cat", 1.2), (" a dog", 0.8)]),
    ("cat:2", [("cat", 2.0)]),  # a single prompt may carry a weight too
    ("cat : -0.5 AND dog:0", [("cat", -0.5), (" dog", 0.0)]),
    ("cat:.5 AND dog:+1.", [("cat", 0.5), (" dog", 1.0)]),
    ("cat AND", [("cat", 1.0), ("", 1.0)]),
    ("cat and dog ANDROID", [("cat and dog ANDROID", 1.0)]),
    ("a:1:2", [("a:1", 2.0)]),  # the last ":number" is the weight
    ("a : :2", [("a :", 2.0)]),
    ("a:1.5.", [("a:1.5.", 1.0)]),
    ("a:x", [("a:x", 1.0)]),
    ("(cat:1.2)", [("(cat:1.2)", 1.0)]),  # an emphasis weight ends with ")", not a sub-prompt weight
    ("  cat  \n", [("  cat", 1.0)]),
    ("", [("", 1.0)]),
]


@pytest.mark.parametrize(("prompt", "expected"), COMPOSABLE)
def test_split_composable(prompt, expected):
    assert split_composable(prompt) == expected


def test_extra_network_tags_are_removed_and_reported():
    text, calls = parse_extra_networks("a <lora:detail:0.5> cat <hypernet:anime:1> <lyco:x:1:0.5>")
    assert text == "a  cat  "
    assert calls == [ExtraNetworkCall("lora", ("detail", "0.5")), ExtraNetworkCall("hypernet", ("anime", "1")),
                     ExtraNetworkCall("lyco", ("x", "1", "0.5"))]
    assert calls[1].tag() == "<hypernet:anime:1>"


def test_text_without_tags_is_unchanged():
    assert parse_extra_networks("a <cat> <:x> <a b:1>") == ("a <cat> <:x> <a b:1>", [])


LORAS = [
    ("<lora:name>", LoraCall("name", 1.0, 1.0, None)),
    ("<lora:name:0.5>", LoraCall("name", 0.5, 0.5, None)),
    ("<lora:name:0.5:0.8>", LoraCall("name", 0.5, 0.8, None)),
    ("<lora:name:0.5:0.8:16>", LoraCall("name", 0.5, 0.8, 16)),
    ("<lora:name:te=0.3>", LoraCall("name", 0.3, 0.3, None)),
    ("<lora:name:1:unet=0.2>", LoraCall("name", 1.0, 0.2, None)),
    ("<lora:name:te=0.3:unet=0.2:dyn=8>", LoraCall("name", 0.3, 0.2, 8)),
    ("<lyco:name:0.7>", LoraCall("name", 0.7, 0.7, None)),
    ("<lora:my lora v2:-0.5>", LoraCall("my lora v2", -0.5, -0.5, None)),
]


@pytest.mark.parametrize(("tag", "expected"), LORAS)
def test_lora_calls(tag, expected):
    assert lora_calls(parse_extra_networks(tag)[1]) == [expected]


def test_other_kinds_are_not_lora_calls():
    assert lora_calls(parse_extra_networks("<hypernet:h:1>")[1]) == []


@pytest.mark.parametrize(("tag", "message"), [
    ("<lora:name:abc>", "te weight 'abc' is not a number"),
    ("<lora:name:1:x>", "unet weight 'x' is not a number"),
    ("<lora:name:1:1:1.5>", "dyn dim '1.5' is not an integer"),
    ("<lora::1>", "missing network name"),
])
def test_bad_lora_tags_name_the_tag(tag, message):
    with pytest.raises(ValueError, match=message) as error:
        lora_calls(parse_extra_networks(tag)[1])
    assert tag in str(error.value)
