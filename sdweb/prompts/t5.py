"""Prompt text -> T5 encoder conditioning, the way Forge builds it for the flow families.

Emphasis is parsed as for CLIP and its weights multiply the encoder output ("Original" restores the mean, as
A1111 does for CLIP). There is no 75-token chunking: the whole prompt is one sequence, ended with EOS and padded
with PAD up to ``min_length`` tokens (longer prompts are not cut: T5 has relative positions). ``BREAK`` starts a
new segment that is encoded on its own and appended, as it does for CLIP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from sdweb.prompts.conditioning import apply_emphasis
from sdweb.prompts.parser import parse_prompt_attention

T5_PAD_ID = 0
T5_EOS_ID = 1


@dataclass
class T5Segment:
    tokens: list[int] = field(default_factory=list)  # prompt tokens only: no EOS, no padding
    multipliers: list[float] = field(default_factory=list)


@dataclass
class T5Conditioning:
    embeds: torch.Tensor  # (1, tokens, width)
    mask: torch.Tensor  # (1, tokens) bool: the prompt's tokens, its EOS and the first PAD of each segment


def t5_segments(text: str, tokenizer: Any, emphasis: str = "Original") -> list[T5Segment]:
    """The prompt's tokens with their emphasis weights, split at BREAK (never empty)."""
    parsed = [(text, 1.0)] if emphasis == "None" else parse_prompt_attention(text)
    parts = [part for part, _ in parsed]
    tokenized = tokenizer(parts, truncation=False, add_special_tokens=False)["input_ids"] if parts else []
    segments = [T5Segment()]
    for tokens, (part, weight) in zip(tokenized, parsed, strict=True):
        if part == "BREAK" and weight == -1.0:
            segments.append(T5Segment())
            continue
        if emphasis == "Ignore":
            weight = 1.0
        segments[-1].tokens.extend(tokens)
        segments[-1].multipliers.extend([weight] * len(tokens))
    return [segment for segment in segments if segment.tokens] or [T5Segment()]


def t5_token_count(text: str, tokenizer: Any) -> int:
    return sum(len(segment.tokens) + 1 for segment in t5_segments(text, tokenizer))


@torch.no_grad()
def encode_t5(encoder: Any, tokenizer: Any, text: str, *, min_length: int, emphasis: str = "Original",
              mask_padding: bool = False) -> T5Conditioning:
    """Each segment as EOS-ended, PAD-padded ids through the encoder, emphasis applied, segments concatenated.
    ``mask_padding``: the encoder does not attend to the padding (Chroma); Flux and SD3 encode it unmasked."""
    device = next(encoder.parameters()).device
    embeds, masks = [], []
    for segment in t5_segments(text, tokenizer, emphasis):
        used = len(segment.tokens) + 1
        padding = max(0, min_length - used)
        ids = torch.tensor([[*segment.tokens, T5_EOS_ID] + [T5_PAD_ID] * padding], device=device)
        attention = torch.tensor([[1] * used + [0] * padding], device=device) if mask_padding else None
        z = encoder(ids, attention_mask=attention).last_hidden_state
        embeds.append(apply_emphasis(z, [*segment.multipliers, 1.0] + [1.0] * padding, emphasis))
        mask = torch.zeros(1, used + padding, dtype=torch.bool, device=device)
        mask[:, :min(used + 1, used + padding)] = True  # the first PAD stays visible (Chroma's rule)
        masks.append(mask)
    return T5Conditioning(embeds=torch.cat(embeds, dim=1), mask=torch.cat(masks, dim=1))
