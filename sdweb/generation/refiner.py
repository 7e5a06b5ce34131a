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
    """A1111 takes any checkpoint as refiner whose latents the base's are (the switch hands them over), for a
    base the record says a refiner may follow."""
    if not base.family.features.refiner:
        raise UserError(f"A refiner pass does not apply to {base.entry.name} ({base.family.label}).",
                        code="unsupported_refiner",
                        hint="Choose an SDXL checkpoint, or leave Refiner empty.")
    if (refiner.family.latent != base.family.latent or refiner.family.engine != base.family.engine
            or refiner.family.img2img_pipeline is None):
        raise UserError(f"{refiner.entry.name} ({refiner.family.label}) cannot refine {base.family.label} images: "
                        "its latents are different.", code="unsupported_refiner",
                        hint=f"Use the SDXL refiner or another {base.family.label} checkpoint.")


def refiner_infotext(refiner: LoadedModel, switch_at: float) -> dict[str, Any]:
    name = refiner.entry.name_for_extra
    shorthash = refiner.entry.shorthash
    return {"Refiner": f"{name} [{shorthash}]" if shorthash else name, "Refiner switch at": switch_at}
