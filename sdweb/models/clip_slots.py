"""A UNet family's CLIP text encoders as A1111 reads them (prompts.conditioning.EncoderSlot), from the
family record's text-encoder specs: which hidden state, pad id, and embedding-file key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sdweb.models.families import Family
from sdweb.prompts.conditioning import EncoderSlot


def clip_slots(pipeline: Any, family: Family,
               embedding_sequences: Sequence[Mapping[tuple[int, ...], list[int]]] = ()) -> list[EncoderSlot]:
    """The CLIP encoders of the family present in `pipeline`, in the pipeline's order."""
    slots = []
    for spec in family.text_encoders:
        tokenizer = getattr(pipeline, spec.component.replace("text_encoder", "tokenizer"), None)
        encoder = getattr(pipeline, spec.component, None)
        if spec.tokenizer != "clip" or tokenizer is None or encoder is None:
            continue
        sequences = embedding_sequences[len(slots)] if len(slots) < len(embedding_sequences) else {}
        slots.append(EncoderSlot(tokenizer, encoder, spec.pad_token_id, spec.hidden_layer, sequences,
                                 ti_key=spec.embedding_key))
    return slots
