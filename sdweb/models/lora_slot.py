"""LoRAs in a compiled UNet without recompiling: one fixed adapter ("slot") that every LoRA is copied into.

Under --compile, dynamo guards on the UNet's module structure, its active adapter names and each LoRA layer's
scaling float, so injecting a LoRA, switching between LoRAs or changing a weight would each compile the UNet
again. Here the UNet holds one peft adapter, `SLOT_ADAPTER`, on a fixed set of layers with a fixed rank and a
scaling of exactly 1.0. A job's LoRAs are packed into it side by side: for LoRAs i with down Aᵢ, up Bᵢ, scaling
sᵢ and the prompt's weight wᵢ, the slot's down is [A₁; A₂; …] and its up [w₁s₁B₁, w₂s₂B₂, …], zero beyond, so
``B·A·x = Σ wᵢ sᵢ Bᵢ Aᵢ x`` — what peft computes with the LoRAs as separate adapters. Only the tensors' values
change between jobs (in place), which a compiled graph takes as inputs. A LoRA is read once: diffusers loads it as
its own adapter (converting any key layout), `take_layers` copies its UNet layers out and removes it from the UNet
again, which leaves the structure as it was.

The slot grows (one recompile, logged as a warning by runtime.compile) only when a job's LoRAs reach layers the
slot does not cover or need more rank than it has; the rank grows in powers of two from `MIN_SLOT_RANK`. With
LoRAs on, every covered layer computes the slot's full rank (zeros included): a small, fixed cost traded for
never recompiling. DoRA layers and LoRA biases cannot be packed and are refused with a clear message.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sdweb.core.errors import InvalidModelFileError

__all__ = ["MIN_SLOT_RANK", "SLOT_ADAPTER", "CompiledLoraSlot", "LoraLayers", "take_layers"]

SLOT_ADAPTER = "sdweb_compiled_slot"
MIN_SLOT_RANK = 32


@dataclass(frozen=True)
class LoraLayers:
    """One LoRA's layers in a model, in peft's form: module name -> (down A, up B, scaling)."""

    layers: dict[str, tuple[torch.Tensor, torch.Tensor, float]]

    def rank(self, module: str) -> int:
        return int(self.layers[module][0].shape[0])


def _lora_modules(model: torch.nn.Module, adapter: str) -> list[tuple[str, torch.nn.Module]]:
    from peft.tuners.lora import LoraLayer

    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, LoraLayer) and adapter in module.lora_A]


def take_layers(model: torch.nn.Module, adapter: str, file_name: str) -> LoraLayers:
    """Copy an injected adapter's weights out of `model` and delete the adapter from it."""
    from diffusers.utils.peft_utils import delete_adapter_layers

    layers = {}
    packable = True
    for name, module in _lora_modules(model, adapter):
        down, up = module.lora_A[adapter], module.lora_B[adapter]
        packable &= not module.use_dora.get(adapter, False) and getattr(up, "bias", None) is None
        layers[name] = (down.weight.detach().clone(), up.weight.detach().clone(), float(module.scaling[adapter]))
    with warnings.catch_warnings():  # "Adapter x was active which is now deleted": the slot stays active
        warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
        delete_adapter_layers(model, adapter)
    if not packable:
        raise InvalidModelFileError(
            f"{file_name} is a DoRA LoRA (or has LoRA biases), which --compile cannot swap in without recompiling.",
            code="lora_unsupported", hint="Start sdweb without --compile to use this LoRA.")
    return LoraLayers(layers)


class CompiledLoraSlot:
    """The fixed adapter of one compiled model: which layers it covers and with how much rank."""

    def __init__(self) -> None:
        self.targets: frozenset[str] = frozenset()
        self.rank = 0

    def fill(self, model: torch.nn.Module, loras: Sequence[tuple[LoraLayers, float]]) -> str | None:
        """Make the slot compute exactly these (LoRA, weight) pairs. Returns why the slot had to grow (the
        model's structure changed: it compiles again), or None when only values changed."""
        needed = frozenset(name for lora, _ in loras for name in lora.layers)
        rank = max((sum(lora.rank(name) for lora, _ in loras if name in lora.layers) for name in needed), default=0)
        grew = self._grow_reason(model, needed, rank)
        if grew is not None:
            self._rebuild(model, self.targets | needed, max(self.rank, _next_power_of_two(max(rank, MIN_SLOT_RANK))))
        self._pack(model, loras)
        return grew

    def forget(self) -> None:
        """The model's LoRA layers were all removed (unload): the next fill builds the slot again."""
        self.targets, self.rank = frozenset(), 0

    def _grow_reason(self, model: torch.nn.Module, needed: frozenset[str], rank: int) -> str | None:
        if not self.targets or not _lora_modules(model, SLOT_ADAPTER):
            return "the first LoRA"
        if not needed <= self.targets:
            return f"a LoRA for {len(needed - self.targets)} more layers"
        if rank > self.rank:
            return f"LoRAs of rank {rank} together (the slot had {self.rank})"
        return None

    def _rebuild(self, model: torch.nn.Module, targets: frozenset[str], rank: int) -> None:
        from diffusers.utils.peft_utils import delete_adapter_layers
        from peft import LoraConfig

        if SLOT_ADAPTER in getattr(model, "peft_config", {}):
            delete_adapter_layers(model, SLOT_ADAPTER)
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=sorted(targets), init_lora_weights=False)
        model.add_adapter(config, adapter_name=SLOT_ADAPTER)
        self.targets, self.rank = targets, rank

    def _pack(self, model: torch.nn.Module, loras: Sequence[tuple[LoraLayers, float]]) -> None:
        from diffusers.utils.peft_utils import set_weights_and_activate_adapters

        with torch.no_grad():
            for name, module in _lora_modules(model, SLOT_ADAPTER):
                down, up = module.lora_A[SLOT_ADAPTER].weight, module.lora_B[SLOT_ADAPTER].weight
                down.zero_()
                up.zero_()
                start = 0
                for lora, weight in loras:
                    if name in lora.layers:
                        lora_down, lora_up, scaling = lora.layers[name]
                        end = start + lora_down.shape[0]
                        down[start:end].copy_(lora_down)
                        up[:, start:end].copy_(lora_up * (scaling * weight))
                        start = end
        set_weights_and_activate_adapters(model, [SLOT_ADAPTER], [1.0])  # scaling 1.0, the same float every job


def _next_power_of_two(value: int) -> int:
    return 1 << max(0, value - 1).bit_length()
