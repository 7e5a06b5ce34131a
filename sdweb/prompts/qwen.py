"""Prompt text -> Qwen chat-encoder conditioning (Z-Image's Qwen3), the way the diffusers pipelines build it,
with A1111 emphasis on top.

The prompt goes into the tokenizer's own chat template as the user's message (``enable_thinking`` as the family
says), the decoder runs over the prompt's tokens only (the pipelines pad to 512 and keep the unmasked tokens,
which a causal decoder computes the same without the padding), and the chosen hidden states, concatenated along
the width, are the conditioning. Emphasis weights the prompt's tokens as for T5 ("Original" restores the mean);
BREAK has no meaning for a single chat message and is dropped.
"""

from __future__ import annotations

from typing import Any

import torch

from sdweb.prompts.conditioning import apply_emphasis
from sdweb.prompts.parser import parse_prompt_attention

_MARKER = "\ue000"  # a private-use character: where the template puts the user's message


def chat_template_parts(tokenizer: Any, thinking: bool) -> tuple[str, str]:
    """The template text before and after the user's message."""
    messages = [{"role": "user", "content": _MARKER}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=thinking)
    before, _, after = text.partition(_MARKER)
    return before, after


def qwen_tokens(text: str, tokenizer: Any, *, thinking: bool, max_length: int,
                emphasis: str = "Original") -> tuple[list[int], list[float]]:
    """The chat-templated prompt's ids and each id's emphasis weight, cut at `max_length` as the pipelines cut."""
    before, after = chat_template_parts(tokenizer, thinking)
    parsed = [(text, 1.0)] if emphasis == "None" else parse_prompt_attention(text)
    parts = [(part, weight) for part, weight in parsed if not (part == "BREAK" and weight == -1.0)]

    def encode(value: str) -> list[int]:
        return tokenizer(value, add_special_tokens=False)["input_ids"] if value else []

    ids = encode(before)
    weights = [1.0] * len(ids)
    for part, weight in parts:
        tokens = encode(part)
        ids += tokens
        weights += [1.0 if emphasis == "Ignore" else weight] * len(tokens)
    tail = encode(after)
    ids, weights = ids + tail, weights + [1.0] * len(tail)
    return ids[:max_length], weights[:max_length]


@torch.no_grad()
def encode_qwen(encoder: Any, tokenizer: Any, text: str, *, max_length: int, hidden_states: tuple[int, ...],
                thinking: bool, emphasis: str = "Original") -> torch.Tensor:
    """(1, tokens, width x len(hidden_states)): the prompt's hidden states with emphasis applied."""
    ids, weights = qwen_tokens(text, tokenizer, thinking=thinking, max_length=max_length, emphasis=emphasis)
    device = next(encoder.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    output = encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), output_hidden_states=True)
    z = torch.cat([output.hidden_states[index] for index in hidden_states], dim=-1)
    return apply_emphasis(z, weights, emphasis)
