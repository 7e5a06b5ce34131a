"""Prompt text -> FlowConditioning for a flow family, from the record's text-encoder specs.

Per-token outputs of the encoders marked ``sequence`` form the transformer's text sequence: CLIP encoders are
concatenated along the width (75-token chunks, penultimate layer, as for SDXL), zero-padded to the T5 width
and put before the T5 tokens (SD3); a Qwen chat encoder's hidden states are the whole sequence (Z-Image's Qwen3;
Qwen-Image's Qwen2.5-VL, which for Qwen-Image-Edit also reads the edited image);
pooled vectors of the encoders marked ``pooled`` are concatenated (Flux: CLIP-L's alone; SD3: CLIP-L + CLIP-G). Emphasis weights the outputs of both kinds of encoder, as Forge does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sdweb.engines.flow.transformers import FlowConditioning
from sdweb.models.families import TextEncoderSpec
from sdweb.prompts.conditioning import (
    BOS_ID,
    CHUNK_LENGTH,
    EOS_ID,
    EncoderSlot,
    encode_slot,
    tokenize_to_chunks,
)
from sdweb.prompts.qwen import VisionInput, encode_qwen
from sdweb.prompts.t5 import encode_t5


@dataclass(frozen=True)
class TextOptions:
    emphasis: str = "Original"
    comma_backtrack: int = 20


def _pooled_clip(tokenizer: Any, encoder: Any, text: str, pad_id: int) -> torch.Tensor:
    """The pooled output of the prompt's first 75 tokens (BOS + tokens + EOS, padded to 77)."""
    chunk = tokenize_to_chunks(text, tokenizer, emphasis="None")[0]
    ids = [BOS_ID, *chunk.tokens, EOS_ID] + [pad_id] * (CHUNK_LENGTH - len(chunk.tokens))
    device = next(encoder.parameters()).device
    output = encoder(torch.tensor([ids], device=device))
    pooled = getattr(output, "text_embeds", None)
    return output.pooler_output if pooled is None else pooled


class FlowTextEncoder:
    """Encodes prompts for one loaded flow model; each distinct text once per `cache` (the job's)."""

    def __init__(self, pipeline: Any, specs: Sequence[TextEncoderSpec], options: TextOptions, cache: dict,
                 image: VisionInput | None = None) -> None:
        self.pipeline = pipeline
        self.specs = list(specs)
        self.options = options
        self.cache = cache
        self.image = image  # what an encoder with `vision` reads besides the prompt (the image an edit model edits)

    def _parts(self, spec: TextEncoderSpec) -> tuple[Any, Any]:
        tokenizer_name = spec.component.replace("text_encoder", "tokenizer")
        return getattr(self.pipeline, tokenizer_name), getattr(self.pipeline, spec.component)

    @torch.no_grad()
    def encode(self, text: str) -> FlowConditioning:
        key = ("flow-text", id(self.pipeline), self.options, text, id(self.image))
        if key not in self.cache:
            self.cache[key] = self._encode(text)
        return self.cache[key]

    def _encode(self, text: str) -> FlowConditioning:
        clip_parts: list[torch.Tensor] = []
        pooled_parts: list[torch.Tensor] = []
        t5_embeds = t5_mask = None  # the T5 or Qwen sequence
        chunks = max((len(tokenize_to_chunks(text, self._parts(s)[0], emphasis=self.options.emphasis,
                                             comma_backtrack=self.options.comma_backtrack))
                      for s in self.specs if s.tokenizer == "clip" and s.sequence), default=1)
        for spec in self.specs:
            tokenizer, encoder = self._parts(spec)
            if spec.tokenizer in ("qwen3", "qwen25vl"):  # a chat decoder: its hidden states are the text sequence
                if spec.vision and self.image is None:
                    raise ValueError("this text encoder reads an image with the prompt; none was given")
                t5_embeds = encode_qwen(encoder, tokenizer, text, max_length=spec.max_length,
                                        hidden_states=spec.hidden_states, thinking=spec.thinking,
                                        emphasis=self.options.emphasis, template=spec.template,
                                        drop=spec.drop_tokens, image=self.image if spec.vision else None,
                                        pad_id=spec.pad_token_id if spec.pad_to_max else None)
                continue
            if spec.tokenizer == "t5":
                encoded = encode_t5(encoder, tokenizer, text, min_length=spec.max_length,
                                    emphasis=self.options.emphasis, mask_padding=spec.mask_padding)
                t5_embeds = encoded.embeds
                t5_mask = encoded.mask if spec.mask_padding else None
                continue
            if spec.sequence:
                slot = EncoderSlot(tokenizer, encoder, spec.pad_token_id, "penultimate")
                embeds, pooled = encode_slot(slot, text, clip_skip=1, emphasis=self.options.emphasis,
                                             comma_backtrack=self.options.comma_backtrack, min_chunks=chunks)
                clip_parts.append(embeds)
            else:
                pooled = _pooled_clip(tokenizer, encoder, text, spec.pad_token_id)
            if spec.pooled:
                pooled_parts.append(pooled)
        return _assemble(clip_parts, pooled_parts, t5_embeds, t5_mask)


def _assemble(clip_parts: list[torch.Tensor], pooled_parts: list[torch.Tensor], t5_embeds: torch.Tensor | None,
              t5_mask: torch.Tensor | None) -> FlowConditioning:
    pooled = torch.cat(pooled_parts, dim=-1) if pooled_parts else None
    sequence: list[torch.Tensor] = []
    mask_parts: list[torch.Tensor] = []
    if clip_parts:
        clip = torch.cat(clip_parts, dim=-1)
        if t5_embeds is not None and clip.shape[-1] < t5_embeds.shape[-1]:
            clip = torch.nn.functional.pad(clip, (0, t5_embeds.shape[-1] - clip.shape[-1]))
        sequence.append(clip)
        mask_parts.append(torch.ones(1, clip.shape[1], dtype=torch.bool, device=clip.device))
    if t5_embeds is not None:
        sequence.append(t5_embeds.to(sequence[0].dtype) if sequence else t5_embeds)
        mask_parts.append(t5_mask if t5_mask is not None else
                          torch.ones(1, t5_embeds.shape[1], dtype=torch.bool, device=t5_embeds.device))
    if not sequence:
        raise ValueError("a flow family needs at least one encoder whose output forms the text sequence")
    mask = torch.cat(mask_parts, dim=1) if t5_mask is not None else None
    return FlowConditioning(torch.cat(sequence, dim=1), pooled, mask)
