"""How each flow-matching transformer is called: latents (B, C, H, W) and a sigma in, velocity out.

One adapter per diffusers transformer class (the family record names the class). Packing, position ids,
the timestep scale, pooled vectors, distilled guidance and text masks differ between them; everything
else (CFG, prompt schedules, sampling) is shared by the flow engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass
class FlowConditioning:
    """One prompt's conditioning for a flow transformer (batch dimension 1, or B once batched)."""

    embeds: torch.Tensor  # (B, tokens, joint width): encoder_hidden_states
    pooled: torch.Tensor | None = None  # (B, pooled width): CLIP pooled vectors (Flux, SD3)
    mask: torch.Tensor | None = None  # (B, tokens) bool: text tokens the transformer may attend to (Chroma)

    @property
    def length(self) -> int:
        return self.embeds.shape[1]

    def to(self, device: Any) -> FlowConditioning:
        """On `device` (the encoders may run elsewhere, e.g. T5 on the CPU): moved once, not every step."""
        return FlowConditioning(self.embeds.to(device), None if self.pooled is None else self.pooled.to(device),
                                None if self.mask is None else self.mask.to(device))

    def expand(self, batch: int) -> FlowConditioning:
        return FlowConditioning(
            self.embeds.expand(batch, -1, -1),
            None if self.pooled is None else self.pooled.expand(batch, -1),
            None if self.mask is None else self.mask.expand(batch, -1))


def cat_conditionings(parts: list[FlowConditioning]) -> FlowConditioning:
    """Stack conditionings of one length along the batch (cond and uncond in one transformer call)."""
    pooled = [part.pooled for part in parts]
    masks = [part.mask for part in parts]
    return FlowConditioning(
        torch.cat([part.embeds for part in parts]),
        torch.cat(pooled) if all(p is not None for p in pooled) else None,
        torch.cat(masks) if all(m is not None for m in masks) else None)


class TransformerAdapter(Protocol):
    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FlowConditioning, guidance: torch.Tensor | None,
                 reference: torch.Tensor | None = None) -> torch.Tensor:
        """`reference`: (B, C, h, w) latents of the image an editing model edits (Flux.1 Kontext, Qwen-Image-Edit)."""


def pack_latents(latents: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, C*p*p): each p x p latent patch becomes one token."""
    batch, channels, height, width = latents.shape
    packed = latents.view(batch, channels, height // patch, patch, width // patch, patch)
    return packed.permute(0, 2, 4, 1, 3, 5).reshape(batch, (height // patch) * (width // patch),
                                                     channels * patch * patch)


def unpack_latents(tokens: torch.Tensor, height: int, width: int, patch: int) -> torch.Tensor:
    """The inverse of pack_latents for latents of height x width."""
    batch, _, features = tokens.shape
    channels = features // (patch * patch)
    grid = tokens.view(batch, height // patch, width // patch, channels, patch, patch)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(batch, channels, height, width)


def image_position_ids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(tokens, 3) rope ids of a packed latent grid: (0, row, column)."""
    ids = torch.zeros(height, width, 3)
    ids[..., 1] = torch.arange(height)[:, None]
    ids[..., 2] = torch.arange(width)[None, :]
    return ids.reshape(height * width, 3).to(device=device, dtype=dtype)


class _Adapter:
    """A transformer and its dtype, looked up once per job (diffusers' ``dtype`` walks every module)."""

    def __init__(self, transformer: Any) -> None:
        self.transformer = transformer
        self.dtype = transformer.dtype


class FluxAdapter(_Adapter):
    """FluxTransformer2DModel: 2x2-packed tokens, sigma as the timestep, CLIP pooled vector, distilled guidance;
    for Flux.1 Kontext the reference image's tokens after the image's (their output is dropped)."""

    patch = 2

    def _inputs(self, x: torch.Tensor, cond: FlowConditioning) -> dict[str, Any]:
        height, width = x.shape[-2:]
        dtype = self.dtype
        return {
            "hidden_states": pack_latents(x, self.patch).to(dtype),
            "encoder_hidden_states": cond.embeds.to(x.device, dtype),
            "img_ids": image_position_ids(height // self.patch, width // self.patch, x.device, dtype),
            "txt_ids": torch.zeros(cond.length, 3, device=x.device, dtype=dtype),
        }

    def _add_reference(self, inputs: dict[str, Any], reference: torch.Tensor) -> None:
        """Kontext: the reference image's packed latents follow the image tokens, their rope ids' first axis 1."""
        dtype = self.dtype
        height, width = reference.shape[-2:]
        ids = image_position_ids(height // self.patch, width // self.patch, reference.device, dtype)
        ids[:, 0] = 1
        inputs["hidden_states"] = torch.cat([inputs["hidden_states"], pack_latents(reference, self.patch).to(dtype)],
                                            dim=1)
        inputs["img_ids"] = torch.cat([inputs["img_ids"], ids])

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FlowConditioning, guidance: torch.Tensor | None,
                 reference: torch.Tensor | None = None) -> torch.Tensor:
        inputs = self._inputs(x, cond)
        tokens = inputs["hidden_states"].shape[1]
        if reference is not None:
            self._add_reference(inputs, reference.to(x.device))
        if cond.pooled is not None:
            inputs["pooled_projections"] = cond.pooled.to(x.device, self.dtype)
        if self.transformer.config.get("guidance_embeds", False):
            if guidance is None:
                raise ValueError("this Flux transformer needs a distilled guidance value")
            inputs["guidance"] = guidance.to(x.device, torch.float32)
        out = self.transformer(timestep=sigma.to(self.dtype), return_dict=False, **inputs)[0]
        return unpack_latents(out[:, :tokens].to(x.dtype), *x.shape[-2:], self.patch)


def _no_reference(reference: torch.Tensor | None, transformer: Any) -> None:
    if reference is not None:
        raise ValueError(f"{type(transformer).__name__} takes no reference image")


class ChromaAdapter(FluxAdapter):
    """ChromaTransformer2DModel: as Flux, with no pooled vector or guidance, and a text mask (all image
    tokens visible)."""

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FlowConditioning, guidance: torch.Tensor | None,
                 reference: torch.Tensor | None = None) -> torch.Tensor:
        _no_reference(reference, self.transformer)
        inputs = self._inputs(x, cond)
        if cond.mask is not None:
            image_tokens = inputs["hidden_states"].shape[1]
            visible = torch.ones(x.shape[0], image_tokens, dtype=torch.bool, device=x.device)
            inputs["attention_mask"] = torch.cat([cond.mask.to(x.device), visible], dim=1).to(self.dtype)
        out = self.transformer(timestep=sigma.to(self.dtype), return_dict=False, **inputs)[0]
        return unpack_latents(out.to(x.dtype), *x.shape[-2:], self.patch)


class SD3Adapter(_Adapter):
    """SD3Transformer2DModel: unpacked latents (it patches itself), timestep = 1000 * sigma, pooled CLIP L+G."""

    patch = 1

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FlowConditioning, guidance: torch.Tensor | None,
                 reference: torch.Tensor | None = None) -> torch.Tensor:
        _no_reference(reference, self.transformer)
        dtype = self.dtype
        out = self.transformer(hidden_states=x.to(dtype), timestep=(sigma * 1000).to(dtype),
                               encoder_hidden_states=cond.embeds.to(x.device, dtype),
                               pooled_projections=cond.pooled.to(x.device, dtype), return_dict=False)[0]
        return out.to(x.dtype)


class ZImageAdapter(_Adapter):
    """ZImageTransformer2DModel: a list of (C, 1, H, W) latents (it patches 2x2 itself), timestep 1 - sigma, a
    list of unpadded caption features; it predicts the negative velocity."""

    patch = 1

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FlowConditioning, guidance: torch.Tensor | None,
                 reference: torch.Tensor | None = None) -> torch.Tensor:
        _no_reference(reference, self.transformer)
        dtype = self.dtype
        latents = list(x.to(dtype).unsqueeze(2).unbind(0))
        captions = list(cond.embeds.to(x.device, dtype).unbind(0))
        out = self.transformer(latents, (1 - sigma).float(), captions, return_dict=False)[0]
        return -torch.stack([frame.float() for frame in out]).squeeze(2).to(x.dtype)


class QwenImageAdapter(_Adapter):
    """QwenImageTransformer2DModel: 2x2-packed tokens with their grid sizes (`img_shapes`, for its RoPE), sigma as
    the timestep, no pooled vector; for Qwen-Image-Edit the reference image's tokens after the image's, its grid
    listed second (their output is dropped)."""

    patch = 2

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FlowConditioning, guidance: torch.Tensor | None,
                 reference: torch.Tensor | None = None) -> torch.Tensor:
        dtype = self.dtype
        height, width = x.shape[-2:]
        tokens = pack_latents(x, self.patch).to(dtype)
        grids = [(1, height // self.patch, width // self.patch)]
        if reference is not None:
            reference = reference.to(x.device)
            tokens = torch.cat([tokens, pack_latents(reference, self.patch).to(dtype)], dim=1)
            grids.append((1, reference.shape[-2] // self.patch, reference.shape[-1] // self.patch))
        mask = None if cond.mask is None or bool(cond.mask.all()) else cond.mask.to(x.device)
        out = self.transformer(hidden_states=tokens, timestep=sigma.to(dtype),
                               encoder_hidden_states=cond.embeds.to(x.device, dtype), encoder_hidden_states_mask=mask,
                               img_shapes=[grids] * x.shape[0], return_dict=False)[0]
        return unpack_latents(out[:, :(height // self.patch) * (width // self.patch)].to(x.dtype), height, width,
                              self.patch)


def _grid_ids(height: int, width: int, device: torch.device) -> torch.Tensor:
    """(height * width, 4) Flux.2 rope ids of a latent grid: (time 0, row, column, text position 0), as int64
    (bf16 ids would round positions past 256)."""
    rows = torch.arange(height, device=device).repeat_interleave(width)
    columns = torch.arange(width, device=device).repeat(height)
    zeros = torch.zeros_like(rows)
    return torch.stack([zeros, rows, columns, zeros], dim=1)


class Flux2Adapter(_Adapter):
    """Flux2Transformer2DModel (Flux.2 Klein): the latents are already 2 x 2 patches (128 channels, see
    generation.latent_codec), one token each; 4-axis rope ids (text tokens by position on the last axis); sigma as
    the timestep; a guidance value only for transformers with a guidance embedder (Flux.2 Dev's kind)."""

    patch = 1

    def velocity(self, x: torch.Tensor, sigma: torch.Tensor, cond: FlowConditioning, guidance: torch.Tensor | None,
                 reference: torch.Tensor | None = None) -> torch.Tensor:
        _no_reference(reference, self.transformer)
        dtype = self.dtype
        height, width = x.shape[-2:]
        text_ids = torch.zeros(cond.length, 4, dtype=torch.long, device=x.device)
        text_ids[:, 3] = torch.arange(cond.length, device=x.device)
        inputs: dict[str, Any] = {}
        if self.transformer.config.get("guidance_embeds", False):
            if guidance is None:
                raise ValueError("this Flux.2 transformer needs a distilled guidance value")
            inputs["guidance"] = guidance.to(x.device, torch.float32)
        out = self.transformer(hidden_states=pack_latents(x, 1).to(dtype), timestep=sigma.to(dtype),
                               encoder_hidden_states=cond.embeds.to(x.device, dtype), txt_ids=text_ids,
                               img_ids=_grid_ids(height, width, x.device), return_dict=False, **inputs)[0]
        return unpack_latents(out.to(x.dtype), height, width, 1)


ADAPTERS: dict[str, type] = {
    "FluxTransformer2DModel": FluxAdapter,
    "ChromaTransformer2DModel": ChromaAdapter,
    "SD3Transformer2DModel": SD3Adapter,
    "ZImageTransformer2DModel": ZImageAdapter,
    "QwenImageTransformer2DModel": QwenImageAdapter,
    "Flux2Transformer2DModel": Flux2Adapter,
}


def adapter_for(transformer: Any) -> TransformerAdapter:
    """The adapter for a loaded transformer, by its class."""
    name = type(transformer).__name__
    if name not in ADAPTERS:
        raise ValueError(f"no flow adapter for {name}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[name](transformer)
