"""The prompt encoder against diffusers' own encode_prompt, and A1111's chunking and emphasis rules."""

from dataclasses import replace

import pytest
import torch

from sdweb.models.clip_slots import clip_slots
from sdweb.models.families import get_family
from sdweb.prompts.conditioning import (
    CHUNK_LENGTH,
    encode_pair,
    encode_prompt,
    token_count,
    tokenize_to_chunks,
)
from sdweb.testing.tiny import build_tiny_pipeline, load_tiny_tokenizer


@pytest.fixture(scope="module")
def sd1():
    return build_tiny_pipeline("sd1", seed=3)


@pytest.fixture(scope="module")
def sdxl():
    return build_tiny_pipeline("sdxl", seed=3)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tiny_tokenizer()


def test_plain_prompt_equals_diffusers_sd1(sd1):
    ours = encode_prompt(clip_slots(sd1, get_family("sd1")), "a photo of a cat").embeds
    theirs, _ = sd1.encode_prompt("a photo of a cat", "cpu", 1, False)
    assert ours.shape == (1, 77, 32)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_plain_prompt_equals_diffusers_sdxl_with_same_padding(sdxl):
    pads = (sdxl.tokenizer.pad_token_id, sdxl.tokenizer_2.pad_token_id)  # diffusers pads with the tokenizer's
    slots = [replace(slot, pad_id=pad) for slot, pad in zip(clip_slots(sdxl, get_family("sdxl")), pads, strict=True)]
    cond = encode_prompt(slots, "a photo of a cat")
    embeds, _, pooled, _ = sdxl.encode_prompt("a photo of a cat", device="cpu", num_images_per_prompt=1,
                                              do_classifier_free_guidance=False)
    assert torch.allclose(cond.embeds, embeds, atol=1e-5)
    assert torch.allclose(cond.pooled, pooled, atol=1e-5)


def test_clip_skip_changes_sd1_only(sd1):
    slots = clip_slots(sd1, get_family("sd1"))
    one = encode_prompt(slots, "a cat", clip_skip=1).embeds
    two = encode_prompt(slots, "a cat", clip_skip=2).embeds
    assert not torch.allclose(one, two)


def test_emphasis_changes_output_and_original_keeps_mean(sd1):
    slots = clip_slots(sd1, get_family("sd1"))
    plain = encode_prompt(slots, "a cat").embeds
    weighted = encode_prompt(slots, "a (cat:1.5)").embeds
    assert not torch.allclose(plain, weighted)
    assert torch.isclose(weighted.mean(), plain.mean(), atol=1e-5)
    no_norm = encode_prompt(slots, "a (cat:1.5)", emphasis="No norm").embeds
    assert not torch.isclose(no_norm.mean(), plain.mean(), atol=1e-5)
    ignored = encode_prompt(slots, "a (cat:1.5)", emphasis="Ignore").embeds
    assert torch.allclose(ignored, plain, atol=1e-6)


def test_long_prompt_makes_chunks_and_break_forces_one(tokenizer):
    long_prompt = " ".join(["cat"] * 100)
    chunks = tokenize_to_chunks(long_prompt, tokenizer)
    assert [len(c.tokens) for c in chunks] == [75, 25]
    broken = tokenize_to_chunks("a cat BREAK a dog", tokenizer)
    assert [len(c.tokens) for c in broken] == [2, 2]
    assert token_count(long_prompt, tokenizer) == (100, 150)
    assert token_count("", tokenizer) == (0, 75)
    assert len(tokenize_to_chunks("", tokenizer)) == 1


def test_comma_backtrack_moves_words_after_the_last_comma(tokenizer):
    prompt = " ".join(["cat"] * 70) + ", dog dog dog dog dog dog dog"
    chunks = tokenize_to_chunks(prompt, tokenizer)
    assert len(chunks[0].tokens) == 71 and chunks[0].tokens[-1] == 267
    assert chunks[1].tokens == [tokenizer.convert_tokens_to_ids("dog</w>")] * 7
    no_backtrack = tokenize_to_chunks(prompt, tokenizer, comma_backtrack=0)
    assert len(no_backtrack[0].tokens) == CHUNK_LENGTH


def test_embedding_sequences_replace_the_name_and_never_straddle(tokenizer):
    name_ids = tuple(tokenizer("bad-hands", add_special_tokens=False)["input_ids"])
    sequences = {name_ids: [50000, 50001, 50002]}
    chunks = tokenize_to_chunks("a bad-hands cat", tokenizer, embedding_sequences=sequences)
    assert chunks[0].tokens[1:4] == [50000, 50001, 50002]
    prompt = " ".join(["cat"] * 74) + " bad-hands"
    split = tokenize_to_chunks(prompt, tokenizer, embedding_sequences=sequences, comma_backtrack=0)
    assert len(split[0].tokens) == 74 and split[1].tokens == [50000, 50001, 50002]


def test_pair_has_equal_lengths(sd1):
    slots = clip_slots(sd1, get_family("sd1"))
    cond, uncond = encode_pair(slots, " ".join(["cat"] * 100), "")
    assert cond.embeds.shape == uncond.embeds.shape == (1, 154, 32)
