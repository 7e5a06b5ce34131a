"""Where a loaded model's components go when nothing else decides (the runtime policy's part for models
larger than the device): flags first, then the model's size against the CUDA device's memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdweb.runtime.policy import RuntimePlan

GIB = 1024**3
WORKING_MEMORY_BYTES = int(1.5 * GIB)  # activations, attention and the VAE decode of a 1024² image


@dataclass(frozen=True)
class ModelPlacement:
    offload: str  # OFFLOAD_MODES
    cpu_components: tuple[str, ...] = ()  # components kept on the CPU (T5 when VRAM is short)
    reason: str = ""


def place_model(plan: RuntimePlan, component_bytes: Mapping[str, int], *, is_sdxl: bool) -> ModelPlacement:
    """Where a freshly loaded model's components go. Flags decide when given (--medvram, --lowvram, ...);
    otherwise on a CUDA device a model that does not fit is placed by size: the largest text encoder (T5) kept
    on the CPU when that suffices (its output is moved to the device), else model offload (each component on
    the device while it runs, so the text encoders leave it after encoding), else group offload."""
    offload = plan.offload_for(is_sdxl)
    if offload != "none" or not plan.device.startswith("cuda") or not plan.device_memory_bytes:
        return ModelPlacement(offload)
    budget = plan.device_memory_bytes - WORKING_MEMORY_BYTES
    total = sum(component_bytes.values())
    if total <= budget:
        return ModelPlacement("none")
    sizes = f"the model needs {total / GIB:.1f} GB, the GPU has {plan.device_memory_bytes / GIB:.1f} GB"
    encoders = {name: size for name, size in component_bytes.items() if name.startswith("text_encoder")}
    largest = max(encoders, key=encoders.get) if encoders else None
    if largest is not None and total - encoders[largest] <= budget:
        return ModelPlacement("none", (largest,), f"{sizes}: {largest} ({encoders[largest] / GIB:.1f} GB) runs "
                                                  "on the CPU")
    denoiser = max((size for name, size in component_bytes.items() if name in ("unet", "transformer")), default=0)
    if denoiser + component_bytes.get("vae", 0) <= budget:
        return ModelPlacement("model", (), f"{sizes}: model offload (one component on the GPU at a time)")
    return ModelPlacement("group", (), f"{sizes}: group offload (the denoiser streamed block by block)")


