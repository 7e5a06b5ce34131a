"""Prompt text -> text-encoder conditioning, the way A1111 builds it (a1111.md §6.1-6.4, §6.8).

Emphasis is parsed per segment, segments are tokenized separately, tokens are packed into 75-token chunks
(BREAK and the comma backtrack move tokens to the next chunk; a textual-inversion embedding never straddles
two chunks), each chunk is encoded as BOS + 75 + EOS, the emphasis weights multiply the encoder output and
("Original" mode) the chunk's mean is restored, and chunks are concatenated along the sequence axis.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from sdweb.prompts.parser import parse_prompt_attention
from sdweb.runtime.execution import execution_device

CHUNK_LENGTH = 75
BOS_ID = 49406
EOS_ID = 49407
COMMA_ID = 267
EMPHASIS_MODES = ("Original", "No norm", "Ignore", "None")


@dataclass
class Chunk:
    tokens: list[int] = field(default_factory=list)  # prompt tokens only: no BOS/EOS/padding
    multipliers: list[float] = field(default_factory=list)


def _weighted_segments(text: str, emphasis: str) -> list[tuple[str, float]]:
    if emphasis == "None":
        return [(text, 1.0)]
    segments = parse_prompt_attention(text)
    if emphasis == "Ignore":
        return [(part, -1.0 if weight == -1.0 and part == "BREAK" else 1.0) for part, weight in segments]
    return segments


def _embedding_at(tokens: Sequence[int], position: int,
                  sequences: Mapping[tuple[int, ...], list[int]]) -> tuple[int, list[int]] | None:
    """(length in prompt tokens, replacement ids) of the longest embedding name starting at position."""
    best: tuple[int, list[int]] | None = None
    for name_ids, replacement in sequences.items():
        length = len(name_ids)
        if tuple(tokens[position:position + length]) == name_ids and (best is None or length > best[0]):
            best = (length, replacement)
    return best


class _Chunker:
    """A1111's packing rules for one prompt."""

    def __init__(self, comma_backtrack: int) -> None:
        self.comma_backtrack = comma_backtrack
        self.chunks: list[Chunk] = []
        self.chunk = Chunk()
        self.last_comma = -1

    def next_chunk(self) -> None:
        self.chunks.append(self.chunk)
        self.chunk = Chunk()
        self.last_comma = -1

    def _backtrack_to_comma(self) -> None:
        cut = self.last_comma + 1
        moved = Chunk(self.chunk.tokens[cut:], self.chunk.multipliers[cut:])
        self.chunk = Chunk(self.chunk.tokens[:cut], self.chunk.multipliers[:cut])
        self.next_chunk()
        self.chunk = moved

    def add_token(self, token: int, weight: float) -> None:
        chunk = self.chunk
        if token == COMMA_ID:
            self.last_comma = len(chunk.tokens)
        elif (self.comma_backtrack and len(chunk.tokens) == CHUNK_LENGTH and self.last_comma != -1
              and len(chunk.tokens) - self.last_comma <= self.comma_backtrack):
            self._backtrack_to_comma()
        if len(self.chunk.tokens) == CHUNK_LENGTH:
            self.next_chunk()
        self.chunk.tokens.append(token)
        self.chunk.multipliers.append(weight)

    def add_embedding(self, ids: list[int], weight: float) -> None:
        if len(self.chunk.tokens) + len(ids) > CHUNK_LENGTH:
            self.next_chunk()
        self.chunk.tokens.extend(ids)
        self.chunk.multipliers.extend([weight] * len(ids))

    def finish(self) -> list[Chunk]:
        if self.chunk.tokens or not self.chunks:
            self.next_chunk()
        return self.chunks


def tokenize_to_chunks(text: str, tokenizer: Any, *, emphasis: str = "Original", comma_backtrack: int = 20,
                       embedding_sequences: Mapping[tuple[int, ...], list[int]] | None = None) -> list[Chunk]:
    """The prompt packed into chunks of at most 75 tokens (each with its emphasis multipliers)."""
    segments = _weighted_segments(text, emphasis)
    texts = [part for part, _ in segments]
    tokenized = tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"] if texts else []
    chunker = _Chunker(comma_backtrack)
    sequences = embedding_sequences or {}
    for tokens, (part, weight) in zip(tokenized, segments, strict=True):
        if part == "BREAK" and weight == -1.0:
            chunker.next_chunk()
            continue
        position = 0
        while position < len(tokens):
            found = _embedding_at(tokens, position, sequences) if sequences else None
            if found is None:
                chunker.add_token(tokens[position], weight)
                position += 1
            else:
                chunker.add_embedding(found[1], weight)
                position += found[0]
    return chunker.finish()


def token_count(text: str, tokenizer: Any) -> tuple[int, int]:
    """(tokens used, limit) as the UI counter shows it: the limit is the next multiple of 75."""
    chunks = tokenize_to_chunks(text, tokenizer)  # never empty
    used = CHUNK_LENGTH * (len(chunks) - 1) + len(chunks[-1].tokens)  # A1111 counts earlier chunks as full
    return used, CHUNK_LENGTH * len(chunks)


@dataclass(frozen=True)
class EncoderSlot:
    """One text encoder of a model and how A1111 reads it.

    Textual-inversion embeddings: ``embedding_sequences`` maps a name's token ids to placeholder ids beyond
    the vocabulary, ``embedding_vectors`` gives each placeholder its vector (see prompts/embeddings.py).
    """

    tokenizer: Any
    encoder: Any
    pad_id: int
    layer: str  # "last" (final hidden state, normed), "penultimate" (hidden_states[-2], no norm), "skip"
    embedding_sequences: Mapping[tuple[int, ...], list[int]] = field(default_factory=dict)
    embedding_vectors: Mapping[int, torch.Tensor] = field(default_factory=dict)  # placeholder id -> (width,)
    embedding_names: Mapping[int, str] = field(default_factory=dict)  # placeholder id -> embedding name
    ti_key: str = ""  # which part of an SDXL embedding this encoder takes: "clip_l" / "clip_g"


@dataclass
class Conditioning:
    embeds: torch.Tensor  # (1, 77 * chunks, width)
    pooled: torch.Tensor | None  # SDXL: (1, projection width) from the first chunk


def _chunk_ids(chunk: Chunk, pad_id: int) -> list[int]:
    padding = CHUNK_LENGTH - len(chunk.tokens)
    return [BOS_ID, *chunk.tokens, EOS_ID] + [pad_id] * padding


def _final_norm(encoder: Any) -> Any:
    return getattr(encoder, "text_model", encoder).final_layer_norm


@contextmanager
def _embedding_vectors_in(slot: EncoderSlot, ids: torch.Tensor) -> Iterator[torch.Tensor]:
    """Token ids the encoder can take, with the placeholder positions' vectors put in place.

    Placeholders become id 0 for the lookup; a forward hook on the token-embedding layer (a PyTorch hook,
    removed afterwards) then writes the embedding's vectors at those positions, as A1111 does at that layer.
    Everything after the lookup (position embeddings, layers, pooling at the EOS token) runs unchanged.
    """
    placeholders = ids >= slot.encoder.get_input_embeddings().num_embeddings if slot.embedding_vectors else None
    if placeholders is None or not bool(placeholders.any()):
        yield ids
        return
    vectors = torch.stack([slot.embedding_vectors[int(token)] for token in ids[placeholders]])

    def put_vectors(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        output[placeholders] = vectors.to(output.device, output.dtype)
        return output

    handle = slot.encoder.get_input_embeddings().register_forward_hook(put_vectors)
    try:
        yield ids.masked_fill(placeholders, 0)
    finally:
        handle.remove()


def _encode_ids(slot: EncoderSlot, ids: torch.Tensor, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    with _embedding_vectors_in(slot, ids) as encoder_ids:
        output = slot.encoder(encoder_ids, output_hidden_states=True)
    pooled = getattr(output, "text_embeds", None)
    if slot.layer == "penultimate":
        return output.hidden_states[-2], pooled
    if slot.layer == "skip" and clip_skip > 1:
        return _final_norm(slot.encoder)(output.hidden_states[-clip_skip]), pooled
    return output.last_hidden_state, pooled


def apply_emphasis(z: torch.Tensor, multipliers: list[float], emphasis: str) -> torch.Tensor:
    if emphasis in ("Ignore", "None") or all(m == 1.0 for m in multipliers):
        return z
    weights = torch.tensor(multipliers, dtype=z.dtype, device=z.device).reshape(1, -1, 1)
    original_mean = z.mean()
    z = z * weights
    if emphasis == "Original":
        z = z * (original_mean / z.mean())
    return z


def _encode_chunk(slot: EncoderSlot, chunk: Chunk, clip_skip: int,
                  cache: dict | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The encoder's output for one chunk (before emphasis). With a cache, a chunk with the same token ids is
    encoded once: prompt editing and alternation change a few chunks of a long prompt, not all of them."""
    ids = _chunk_ids(chunk, slot.pad_id)
    key = ("chunk", id(slot.encoder), id(slot.embedding_vectors), slot.layer, clip_skip, tuple(ids))
    found = cache.get(key) if cache is not None else None
    if found is None:
        device = execution_device(None, slot.encoder)  # not the meta device of a sequentially offloaded encoder
        found = _encode_ids(slot, torch.tensor([ids], device=device), clip_skip)
        if cache is not None:
            cache[key] = found
    return found


@torch.no_grad()
def encode_slot(slot: EncoderSlot, text: str, *, clip_skip: int, emphasis: str, comma_backtrack: int,
                min_chunks: int = 1, chunk_cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(embeds (1, 77*N, width), pooled of the first chunk) for one encoder."""
    chunks = slot_chunks(slot, text, emphasis, comma_backtrack, chunk_cache)
    chunks = [*chunks, *(Chunk() for _ in range(min_chunks - len(chunks)))]
    outputs, pooled = [], None
    for index, chunk in enumerate(chunks):
        z, chunk_pooled = _encode_chunk(slot, chunk, clip_skip, chunk_cache)
        outputs.append(apply_emphasis(z, [1.0, *chunk.multipliers] + [1.0] * (76 - len(chunk.tokens)),
                                       emphasis))
        if index == 0:
            pooled = chunk_pooled
    return torch.cat(outputs, dim=1), pooled


def slot_chunks(slot: EncoderSlot, text: str, emphasis: str, comma_backtrack: int,
                cache: dict | None = None) -> list[Chunk]:
    """``tokenize_to_chunks`` for one encoder; with a cache (a job's dict), each text is tokenized once."""
    key = ("tokens", id(slot.tokenizer), id(slot.embedding_sequences), emphasis, comma_backtrack, text)
    found = cache.get(key) if cache is not None else None
    if found is None:
        found = tokenize_to_chunks(text, slot.tokenizer, emphasis=emphasis, comma_backtrack=comma_backtrack,
                                   embedding_sequences=slot.embedding_sequences)
        if cache is not None:
            cache[key] = found
    return found


def chunk_count(slots: Sequence[EncoderSlot], text: str, comma_backtrack: int, emphasis: str,
                cache: dict | None = None) -> int:
    return max(len(slot_chunks(slot, text, emphasis, comma_backtrack, cache)) for slot in slots)


def encode_prompt(slots: Sequence[EncoderSlot], text: str, *, clip_skip: int = 1, emphasis: str = "Original",
                  comma_backtrack: int = 20, min_chunks: int = 1, chunk_cache: dict | None = None) -> Conditioning:
    """All encoders of a model: SDXL concatenates CLIP-L and OpenCLIP-G features; pooled comes from the last
    encoder that has a projection. ``chunk_cache`` (a job's dict) encodes each distinct chunk once."""
    parts, pooled = [], None
    for slot in slots:
        embeds, slot_pooled = encode_slot(slot, text, clip_skip=clip_skip, emphasis=emphasis,
                                          comma_backtrack=comma_backtrack, min_chunks=min_chunks,
                                          chunk_cache=chunk_cache)
        parts.append(embeds)
        pooled = slot_pooled if slot_pooled is not None else pooled
    return Conditioning(embeds=torch.cat(parts, dim=-1), pooled=pooled)


def encode_pair(slots: Sequence[EncoderSlot], prompt: str, negative: str, *, clip_skip: int = 1,
                emphasis: str = "Original", comma_backtrack: int = 20) -> tuple[Conditioning, Conditioning]:
    """Prompt and negative prompt with the same number of chunks (the shorter is padded with empty chunks,
    A1111's `pad_cond_uncond`), as a batched CFG call needs."""
    chunks = max(chunk_count(slots, prompt, comma_backtrack, emphasis),
                 chunk_count(slots, negative, comma_backtrack, emphasis))
    cond = encode_prompt(slots, prompt, clip_skip=clip_skip, emphasis=emphasis, comma_backtrack=comma_backtrack,
                         min_chunks=chunks)
    uncond = encode_prompt(slots, negative, clip_skip=clip_skip, emphasis=emphasis,
                           comma_backtrack=comma_backtrack, min_chunks=chunks)
    return cond, uncond


def used_embeddings(slot: EncoderSlot, text: str, *, emphasis: str = "Original",
                    comma_backtrack: int = 20, chunk_cache: dict | None = None) -> list[str]:
    """Names of the embeddings the text uses (in order of first use), for the TI hashes infotext."""
    if not slot.embedding_names:
        return []
    chunks = slot_chunks(slot, text, emphasis, comma_backtrack, chunk_cache)
    names = (slot.embedding_names.get(token) for chunk in chunks for token in chunk.tokens)
    return list(dict.fromkeys(name for name in names if name is not None))
