"""Per job, before sampling: the VAE the `sd_vae` setting means and the LoRAs the prompt names, applied to
the loaded model, with their infotext keys (`VAE hash`, `VAE`, `Lora hashes`) and notes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sdweb.generation.prompting import PreparedPrompt
from sdweb.models.manager import LoadedModel, ModelManager


def apply_model_extras(manager: ModelManager, model: LoadedModel, prepared: PreparedPrompt,
                       settings: Mapping[str, Any]) -> None:
    """Swap in the job's VAE and activate its LoRAs; adds infotext keys and notes to `prepared`.
    The caller runs `manager.deactivate_loras(model)` when the job ends."""
    vae = manager.select_vae(model, str(settings.get("sd_vae") or "Automatic"))
    if vae.name is not None:
        if vae.shorthash and settings.get("add_vae_hash_to_info", True):
            prepared.extra_params["VAE hash"] = vae.shorthash
        if settings.get("add_vae_name_to_info", True):
            prepared.extra_params["VAE"] = vae.name
    if vae.note:
        prepared.notes.append(vae.note)
    loras = manager.apply_loras(model, prepared.loras)
    if loras.hashes and settings.get("lora_add_hashes_to_infotext", True):
        prepared.extra_params["Lora hashes"] = ", ".join(f"{name}: {digest}" for name, digest in loras.hashes.items())
    prepared.notes.extend(note for note in loras.notes if note not in prepared.notes)
