"""The SDXL refiner: the base model samples until `refiner_switch_at`, then the refiner checkpoint takes over
inside the same sampling loop, as A1111 does (sdweb.generation.unet_model switches the model call). Only
SDXL pairs are accepted; other bases get a clear error.
"""

from __future__ import annotations

from typing import Any

from sdweb.core.errors import UserError
from sdweb.core.requests import GenerationRequest
from sdweb.models.manager import LoadedModel

NO_REFINER = ("", "None")


def refiner_switch(request: GenerationRequest) -> float | None:
    """The fraction of the schedule the base runs, or None when no refiner is asked for."""
    name = (request.refiner_checkpoint or "").strip()
    if name in NO_REFINER or request.refiner_switch_at is None:
        return None
    if not 0.0 < request.refiner_switch_at < 1.0:
        return None  # 1.0: the base runs everything; 0.0 would skip the base (A1111 ignores it too)
    return float(request.refiner_switch_at)


def check_refiner_pair(base: LoadedModel, refiner: LoadedModel) -> None:
    if base.family.base != "sdxl":
        raise UserError(f"The refiner needs an SDXL base model; {base.entry.name} is {base.family.label}.",
                        code="unsupported_refiner",
                        hint="Choose an SDXL checkpoint, or leave Refiner empty.")
    if refiner.family.base != "sdxl" or refiner.family.img2img_pipeline is None:
        raise UserError(f"{refiner.entry.name} ({refiner.family.label}) cannot be used as an SDXL refiner.",
                        code="unsupported_refiner",
                        hint="Use the SDXL refiner or another SDXL checkpoint.")


def refiner_infotext(refiner: LoadedModel, switch_at: float) -> dict[str, Any]:
    name = refiner.entry.name_for_extra
    shorthash = refiner.entry.shorthash
    return {"Refiner": f"{name} [{shorthash}]" if shorthash else name, "Refiner switch at": switch_at}
