"""Prompt text -> Qwen chat-encoder conditioning (Z-Image's Qwen3, Qwen-Image's Qwen2.5-VL), the way the diffusers
pipelines build it, with A1111 emphasis on top.

The prompt goes into the tokenizer's own chat template as the user's message (``enable_thinking`` as the family
says), or into the family's fixed template (Qwen-Image: ``{}`` stands for the prompt); the decoder runs over the
prompt's tokens only (the pipelines pad a batch and keep the unmasked tokens, which a causal decoder computes the
same without the padding); the chosen hidden states, concatenated along the width and without the template's
first ``drop`` tokens, are the conditioning. For Qwen-Image-Edit the template's ``<|image_pad|>`` becomes one
token per merged image patch and the image goes through Qwen2.5-VL's vision tower with them (:class:`VisionInput`,
what transformers' Qwen2-VL processor gives). Emphasis weights the prompt's tokens as for T5 ("Original"
restores the mean); BREAK has no meaning for a single chat message and is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sdweb.prompts.conditioning import apply_emphasis
from sdweb.prompts.parser import parse_prompt_attention

_MARKER = "\ue000"  # a private-use character: where the template puts the user's message
IMAGE_PAD = "<|image_pad|>"


@dataclass(frozen=True)
class VisionInput:
    """An image for Qwen2.5-VL's vision tower: the processor's patches, their (t, h, w) grid, and how many
    `<|image_pad|>` tokens stand for them (one per merged patch)."""

    pixel_values: torch.Tensor
    grid_thw: torch.Tensor
    tokens: int


def vision_input(image_processor: Any, image: Any) -> VisionInput:
    """The image as Qwen2.5-VL's image processor prepares it (resized to multiples of 28 within its pixel range)."""
    processed = image_processor(images=image, return_tensors="pt")
    grid = processed["image_grid_thw"]
    return VisionInput(processed["pixel_values"], grid, int(grid.prod()) // image_processor.merge_size ** 2)


def chat_template_parts(tokenizer: Any, thinking: bool) -> tuple[str, str]:
    """The template text before and after the user's message."""
    messages = [{"role": "user", "content": _MARKER}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=thinking)
    before, _, after = text.partition(_MARKER)
    return before, after


def qwen_tokens(text: str, tokenizer: Any, *, thinking: bool, max_length: int, emphasis: str = "Original",
                template: str = "", image_tokens: int = 0) -> tuple[list[int], list[float]]:
    """The templated prompt's ids and each id's emphasis weight, cut at `max_length` (0: not cut) as the pipelines
    cut; `image_tokens` copies of `<|image_pad|>` where the template has one."""
    before, after = template.split("{}", 1) if template else chat_template_parts(tokenizer, thinking)
    parsed = [(text, 1.0)] if emphasis == "None" else parse_prompt_attention(text)
    parts = [(part, weight) for part, weight in parsed if not (part == "BREAK" and weight == -1.0)]

    def encode(value: str) -> list[int]:
        return tokenizer(value, add_special_tokens=False)["input_ids"] if value else []

    ids = encode(before)
    if image_tokens:
        pad = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        at = ids.index(pad)
        ids = ids[:at] + [pad] * image_tokens + ids[at + 1:]
    weights = [1.0] * len(ids)
    for part, weight in parts:
        tokens = encode(part)
        ids += tokens
        weights += [1.0 if emphasis == "Ignore" else weight] * len(tokens)
    tail = encode(after)
    ids, weights = ids + tail, weights + [1.0] * len(tail)
    return (ids[:max_length], weights[:max_length]) if max_length else (ids, weights)


@torch.no_grad()
def encode_qwen(encoder: Any, tokenizer: Any, text: str, *, max_length: int, hidden_states: tuple[int, ...],
                thinking: bool, emphasis: str = "Original", template: str = "", drop: int = 0,
                image: VisionInput | None = None, pad_id: int | None = None) -> torch.Tensor:
    """(1, tokens, width x len(hidden_states)): the prompt's hidden states, without the first `drop` tokens and
    at most `max_length` after them (0: all), with emphasis applied. With `pad_id` the ids are padded with it to
    `max_length` (masked in the encoder) and the padding's states are kept (Flux.2 Klein)."""
    ids, weights = qwen_tokens(text, tokenizer, thinking=thinking, max_length=drop + max_length if max_length else 0,
                               emphasis=emphasis, template=template, image_tokens=image.tokens if image else 0)
    device = next(encoder.parameters()).device
    mask = [1] * len(ids)
    if pad_id is not None and max_length:
        padding = drop + max_length - len(ids)
        ids, weights, mask = ids + [pad_id] * padding, weights + [1.0] * padding, mask + [0] * padding
    input_ids = torch.tensor([ids], device=device)
    inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": torch.tensor([mask], device=device)}
    if image is not None:
        inputs |= {"pixel_values": image.pixel_values.to(device), "image_grid_thw": image.grid_thw.to(device)}
    output = encoder(**inputs, output_hidden_states=True)
    z = torch.cat([output.hidden_states[index] for index in hidden_states], dim=-1)
    return apply_emphasis(z[:, drop:], weights[drop:], emphasis)
