"""The Flux.2 VAE (`flux2-vae.safetensors`, Klein's `ae`): diffusers' `AutoencoderKLFlux2` has no single-file
loader, so its keys are handled here.

BFL's file is an LDM-layout 32-channel VAE (`encoder.down.N.block.M…`, `decoder.up…`, mid attention as 1 x 1
convs) whose quant convs sit inside the encoder / decoder (`encoder.quant_conv`, `decoder.post_quant_conv`) and
which carries the batch-norm statistics of its 2 x 2-patched latents (`bn.running_mean`, `bn.running_var`: 128
values each); a diffusers folder's file has diffusers names (`quant_conv`, `bn.*`). The names are those of diffusers'
`scripts/convert_flux2_to_diffusers.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["flux2_vae_tensors", "to_flux2_vae_keys"]

# BFL name -> diffusers name (the rest is the LDM VAE layout)
_MOVED = {"encoder.quant_conv": "quant_conv", "decoder.post_quant_conv": "post_quant_conv"}
_STATISTICS = ("bn.running_mean", "bn.running_var")


def flux2_vae_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config numbers, diffusers-layout state dict) of a Flux.2 VAE's tensors (BFL or diffusers names, no prefix)."""
    from sdweb.core.errors import InvalidModelFileError
    from sdweb.models.vae import vae_state_dict_to_diffusers

    missing = [key for key in _STATISTICS if key not in tensors]
    if missing:
        raise InvalidModelFileError(f"{path.name} lacks the Flux.2 VAE's latent statistics ({missing[0]}).",
                                    code="module_mismatch", hint="Use flux2-vae.safetensors (the Flux.2 VAE).")
    renamed: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key.startswith("bn."):
            continue
        head, _, tail = key.rpartition(".")
        renamed[f"{_MOVED.get(head, head)}.{tail}"] = value
    numbers, converted = vae_state_dict_to_diffusers(path, renamed)
    numbers |= {"use_quant_conv": "quant_conv.weight" in converted,
                "use_post_quant_conv": "post_quant_conv.weight" in converted}
    statistics = {key: tensors[key] for key in _STATISTICS}
    return numbers, converted | statistics | {"bn.num_batches_tracked": torch.tensor(0)}  # a counter, unused


def to_flux2_vae_keys(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """An `AutoencoderKLFlux2` state dict in BFL's names (for writing test files)."""
    from sdweb.models.ldm_convert import vae_to_ldm

    body = {key: value for key, value in state_dict.items() if not key.startswith("bn.")}
    ldm = vae_to_ldm(body, config, prefix="")
    inverse = {new: old for old, new in _MOVED.items()}
    out = {}
    for key, value in ldm.items():
        head, _, tail = key.rpartition(".")
        out[f"{inverse.get(head, head)}.{tail}"] = value
    return out | {key: state_dict[key] for key in _STATISTICS}
