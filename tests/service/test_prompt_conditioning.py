"""Prompt conditioning at token and tensor level: chunks, BREAK, weights per token id, "Original" mean,
textual-inversion embeddings (files, binding, vectors in place), per-step plans with AND and prompt editing.
"""

import pytest
import safetensors.torch
import torch

from sdweb.generation.conditioning_plan import (
    PromptEncoder,
    ScheduleOptions,
    build_plan,
    chunks_of,
)
from sdweb.models.clip_slots import clip_slots
from sdweb.models.families import get_family
from sdweb.prompts.conditioning import (
    BOS_ID,
    CHUNK_LENGTH,
    EOS_ID,
    encode_prompt,
    tokenize_to_chunks,
    used_embeddings,
)
from sdweb.prompts.embeddings import (
    EmbeddingFileError,
    EmbeddingLibrary,
    TextualInversion,
    bind_embeddings,
    read_embedding_file,
)
from sdweb.testing.tiny import build_tiny_pipeline, load_tiny_tokenizer, write_tiny


@pytest.fixture(scope="module")
def tokenizer():
    return load_tiny_tokenizer()


@pytest.fixture(scope="module")
def sd1():
    return build_tiny_pipeline("sd1", seed=3)


@pytest.fixture(scope="module")
def sdxl():
    return build_tiny_pipeline("sdxl", seed=3)


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _sd1_slots(pipe):
    return clip_slots(pipe, get_family("sd1"))


def _sdxl_slots(pipe):
    return clip_slots(pipe, get_family("sdxl"))


# -- chunks and weights ------------------------------------------------------------------------------------


def test_a_200_token_prompt_gives_three_chunks(tokenizer):
    chunks = tokenize_to_chunks(" ".join(["cat"] * 200), tokenizer)
    assert [len(chunk.tokens) for chunk in chunks] == [75, 75, 50]


def test_break_starts_a_new_chunk_even_when_the_current_one_is_short_or_full(tokenizer):
    assert [len(c.tokens) for c in tokenize_to_chunks("a cat BREAK a dog BREAK bird", tokenizer)] == [2, 2, 1]
    full = " ".join(["cat"] * 75) + " BREAK dog"
    assert [len(c.tokens) for c in tokenize_to_chunks(full, tokenizer)] == [75, 1]
    assert [len(c.tokens) for c in tokenize_to_chunks("BREAK dog", tokenizer)] == [0, 1]


def test_weights_land_on_the_right_token_ids(tokenizer):
    chunk, = tokenize_to_chunks("a (red car:1.5) [dog] ((sky))", tokenizer)
    expected = [(_ids(tokenizer, "a"), 1.0), (_ids(tokenizer, "red car"), 1.5), (_ids(tokenizer, "dog"), 1 / 1.1),
                (_ids(tokenizer, "sky"), 1.1 * 1.1)]
    assert chunk.tokens == [token for ids, _ in expected for token in ids]
    assert chunk.multipliers == [weight for ids, weight in expected for _ in ids]


def test_emphasis_none_keeps_brackets_as_text_and_ignore_drops_weights(tokenizer):
    none, = tokenize_to_chunks("(cat:1.5)", tokenizer, emphasis="None")
    assert none.tokens == _ids(tokenizer, "(cat:1.5)") and set(none.multipliers) == {1.0}
    ignored, = tokenize_to_chunks("(cat:1.5)", tokenizer, emphasis="Ignore")
    assert ignored.tokens == _ids(tokenizer, "cat") and ignored.multipliers == [1.0]


def test_original_mode_keeps_each_chunk_mean(sd1):
    slots = _sd1_slots(sd1)
    filler = " ".join(["dog"] * 80)
    plain = encode_prompt(slots, f"a cat {filler} a bird").embeds
    weighted = encode_prompt(slots, f"a (cat:1.8) {filler} a (bird:0.4)").embeds
    assert plain.shape == weighted.shape == (1, 154, 32)
    for chunk in range(2):
        part = slice(77 * chunk, 77 * (chunk + 1))
        assert not torch.allclose(plain[:, part], weighted[:, part])
        assert torch.isclose(weighted[:, part].mean(), plain[:, part].mean(), atol=1e-5)
    no_norm = encode_prompt(slots, f"a (cat:1.8) {filler} a (bird:0.4)", emphasis="No norm").embeds
    assert not torch.isclose(no_norm[:, :77].mean(), plain[:, :77].mean(), atol=1e-5)


def test_tokens_past_75_change_the_conditioning(sd1):
    slots = _sd1_slots(sd1)
    filler = " ".join(["dog"] * 75)
    cat, bird = encode_prompt(slots, f"{filler} cat").embeds, encode_prompt(slots, f"{filler} bird").embeds
    assert torch.equal(cat[:, :77], bird[:, :77]) and not torch.allclose(cat[:, 77:], bird[:, 77:])


# -- textual inversion ------------------------------------------------------------------------------------


def _token_rows(pipe, words, encoder="text_encoder"):
    table = getattr(pipe, encoder).get_input_embeddings().weight
    return table[_ids(pipe.tokenizer, words)].detach().clone()


def test_embedding_vectors_take_the_place_of_the_name(sd1):
    """An embedding whose vectors are the token rows of "cat dog" must encode exactly like "cat dog"."""
    embedding = TextualInversion("foo-style", None, {"": _token_rows(sd1, "cat dog")})
    bound = bind_embeddings(_sd1_slots(sd1), [embedding])
    assert bound.loaded == ["foo-style"] and not bound.skipped
    ours = encode_prompt(bound.slots, "a (foo-style:1.2) bird").embeds
    literal = encode_prompt(bound.slots, "a (cat dog:1.2) bird").embeds
    assert torch.allclose(ours, literal, atol=1e-6)
    assert not torch.allclose(ours, encode_prompt(_sd1_slots(sd1), "a (foo-style:1.2) bird").embeds)
    assert used_embeddings(bound.slots[0], "x foo-style y") == ["foo-style"]
    assert used_embeddings(bound.slots[0], "x y") == []
    # the encoder is left as it was: no hook remains
    assert not sd1.text_encoder.get_input_embeddings()._forward_hooks


def test_embedding_never_straddles_chunks_and_is_matched_case_insensitively(sd1):
    embedding = TextualInversion("foo-style", None, {"": _token_rows(sd1, "cat dog")})
    slot = bind_embeddings(_sd1_slots(sd1), [embedding]).slots[0]
    chunks = tokenize_to_chunks(" ".join(["bird"] * 74) + " Foo-Style", slot.tokenizer, comma_backtrack=0,
                                embedding_sequences=slot.embedding_sequences)
    assert [len(c.tokens) for c in chunks] == [74, 2]
    assert all(token >= 49408 for token in chunks[1].tokens)


def test_sdxl_embedding_gives_each_encoder_its_part(sdxl):
    vectors = {"clip_l": _token_rows(sdxl, "cat dog"), "clip_g": _token_rows(sdxl, "cat dog", "text_encoder_2")}
    bound = bind_embeddings(_sdxl_slots(sdxl), [TextualInversion("xl-style", None, vectors)])
    assert bound.loaded == ["xl-style"]
    ours = encode_prompt(bound.slots, "a xl-style")
    literal = encode_prompt(bound.slots, "a cat dog")
    assert torch.allclose(ours.embeds, literal.embeds, atol=1e-5)
    assert torch.allclose(ours.pooled, literal.pooled, atol=1e-5)


def test_embeddings_for_another_model_are_skipped_with_the_reason(sd1, sdxl):
    sd1_embedding = TextualInversion("one", None, {"": torch.zeros(2, 32)})
    wide = TextualInversion("wide", None, {"": torch.zeros(1, 768)})
    xl = TextualInversion("xl", None, {"clip_l": torch.zeros(1, 32), "clip_g": torch.zeros(1, 64)})
    on_sd1 = bind_embeddings(_sd1_slots(sd1), [sd1_embedding, wide, xl])
    assert on_sd1.loaded == ["one"] and set(on_sd1.skipped) == {"wide", "xl"}
    assert "width 768" in on_sd1.skipped["wide"] and "needs width 32" in on_sd1.skipped["wide"]
    on_sdxl = bind_embeddings(_sdxl_slots(sdxl), [sd1_embedding, xl])
    assert on_sdxl.loaded == ["xl"] and list(on_sdxl.skipped) == ["one"]


def test_embedding_file_formats(tmp_path):
    pt = write_tiny("embedding", tmp_path / "a1111.pt", seed=1, fmt="ckpt")
    st = write_tiny("embedding", tmp_path / "params.safetensors", seed=1)
    xl = write_tiny("embedding-sdxl", tmp_path / "xl.safetensors", seed=1)
    concept = tmp_path / "concept.bin"
    torch.save({"<my-concept>": torch.ones(32)}, concept)
    a1111, params, sdxl_file, diffusers = (read_embedding_file(p) for p in (pt, st, xl, concept))
    assert a1111.name == "a1111" and a1111.vectors[""].shape == (2, 32) and a1111.step == 0
    assert torch.equal(a1111.vectors[""], params.vectors[""])
    assert set(sdxl_file.vectors) == {"clip_l", "clip_g"} and sdxl_file.vector_count == 2
    assert diffusers.vectors[""].shape == (1, 32)
    assert len(a1111.sha256) == 64 and a1111.shorthash == a1111.sha256[:12]


@pytest.mark.parametrize(("content", "message"), [
    ({"a": torch.zeros(2, 8), "b": torch.zeros(2, 8)}, "holds 2 tensors"),
    ({"string_to_param": {"*": torch.zeros(1, 8), "x": torch.zeros(1, 8)}}, "exactly one term"),
    ({"clip_l": torch.zeros(1, 8), "clip_g": torch.zeros(2, 8)}, "different vector counts"),
    ({"emb_params": torch.full((1, 8), float("nan"))}, "NaN"),
    ({"name": "x"}, "neither"),
])
def test_bad_embedding_files_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    tensors = {k: v for k, v in content.items() if isinstance(v, torch.Tensor)}
    if len(tensors) == len(content):
        safetensors.torch.save_file(tensors, path)
    else:
        path = tmp_path / "bad.pt"
        torch.save(content, path)
    with pytest.raises(EmbeddingFileError, match=message):
        read_embedding_file(path)


def test_pickles_with_code_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"string_to_param": {"*": torch.nn.Linear(2, 2)}}, path)
    with pytest.raises(EmbeddingFileError, match="cannot be read safely"):
        read_embedding_file(path)


def test_library_caches_by_modification_and_reports_errors(tmp_path):
    good = write_tiny("embedding", tmp_path / "good.safetensors", seed=1)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a pickle")
    library = EmbeddingLibrary()
    first = library.load([("good", good), ("bad", bad)])
    assert [e.name for e in first.embeddings] == ["good"] and "bad" in first.errors
    assert library.load([("good", good)]).embeddings[0] is first.embeddings[0]
    write_tiny("embedding", good, seed=2)
    reloaded = library.load([("good", good)]).embeddings[0]
    assert not torch.equal(reloaded.vectors[""], first.embeddings[0].vectors[""])


# -- per-step plans ----------------------------------------------------------------------------------------


def test_plan_encodes_each_text_once_and_pads_negative_to_the_same_chunks(sd1):
    cache: dict = {}
    encoder = PromptEncoder(_sd1_slots(sd1), cache)
    long = " ".join(["cat"] * 100)
    plan = build_plan(encoder, f"[{long}:dog:3]", "blurry", ScheduleOptions(steps=10))
    cond, uncond = plan.first.conds[0], plan.first.uncond
    assert chunks_of(cond) == chunks_of(uncond) == 2
    assert set(plan.steps) == {0, 4}
    later_cond, later_uncond = plan.steps[4].conds[0], plan.steps[4].uncond
    assert chunks_of(later_cond) == chunks_of(later_uncond) == 1
    assert plan.at(3) is plan.first and plan.at(9) is plan.steps[4]
    texts = sorted(key[-1] for key in cache)
    assert texts == sorted(["", "blurry", long, "dog"])
    again = build_plan(encoder, f"[{long}:dog:3]", "blurry", ScheduleOptions(steps=10))
    assert again.first.conds[0].embeds is not None and len(cache) == 4  # nothing encoded twice


def test_composable_plan_has_every_subprompt_per_step_with_equal_shapes(sd1):
    encoder = PromptEncoder(_sd1_slots(sd1), {})
    plan = build_plan(encoder, "[cat:dog:2] :1.5 AND " + " ".join(["bird"] * 90) + " :-0.5", "",
                      ScheduleOptions(steps=6))
    assert plan.composable and plan.weights == [1.5, -0.5]
    assert set(plan.steps) == {0, 3}
    for state in plan.steps.values():
        assert {tuple(t.embeds.shape) for t in (state.uncond, *state.conds)} == {(1, 154, 32)}
    assert not torch.equal(plan.steps[0].conds[0].embeds, plan.steps[3].conds[0].embeds)
    assert plan.steps[0].conds[1] is plan.steps[3].conds[1]


def test_a_single_weighted_prompt_is_composable_but_a_plain_one_is_not(sd1):
    encoder = PromptEncoder(_sd1_slots(sd1), {})
    assert build_plan(encoder, "cat :2", "", ScheduleOptions(steps=4)).composable
    assert not build_plan(encoder, "cat", "", ScheduleOptions(steps=4)).composable


def test_second_order_and_hires_schedules_in_plans(sd1):
    encoder = PromptEncoder(_sd1_slots(sd1), {})
    heun = build_plan(encoder, "[cat:dog:0.5]", "", ScheduleOptions(steps=4, second_order=True))
    assert set(heun.steps) == {0, 5}  # schedule over 8 model evaluations (A1111's steps): dog from evaluation 5
    hires = build_plan(encoder, "[cat:dog:25]", "", ScheduleOptions(steps=10, first_pass_steps=20))
    assert set(hires.steps) == {0, 6}  # 25 - 20 = hires step 5 is the last with "cat"
    already = build_plan(encoder, "[cat:dog:0.5]", "", ScheduleOptions(steps=10, first_pass_steps=20))
    assert set(already.steps) == {0} and torch.equal(already.first.conds[0].embeds, encoder.encode("dog").embeds)


def test_chunk_ids_have_bos_eos_and_padding(sd1):
    chunk, = tokenize_to_chunks("cat", sd1.tokenizer)
    from sdweb.prompts.conditioning import _chunk_ids

    ids = _chunk_ids(chunk, EOS_ID)
    assert len(ids) == CHUNK_LENGTH + 2 and ids[0] == BOS_ID and ids[2] == EOS_ID and ids[-1] == EOS_ID
