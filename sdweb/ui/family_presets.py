"""The page adapts to the chosen checkpoint's family (Forge's "sd / xl / flux" presets): Distilled CFG Scale is
shown only for models that take it, width and height step by the family's size multiple, and when the kind of
model changes its defaults (size, steps, CFG, sampler, schedule) are filled in. For an editing model (Flux.1
Kontext) img2img's denoising strength says "edit" and starts at 1.0. Read from the family record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gradio as gr

from sdweb.models.families import Family
from sdweb.state import AppState

PRESET_FIELDS = ("distilled_cfg_scale", "width", "height", "steps", "cfg_scale", "sampler_name", "scheduler",
                 "denoising_strength")
IMG2IMG_DENOISING = 0.75  # A1111's img2img default (ui/tabs/img2img.py)
EDIT_LABEL = "Denoising strength (edit model: the image is the reference it edits; 1.0 = a full edit)"


def preset_updates(family: Family | None, apply_defaults: bool, is_img2img: bool = False) -> list[Any]:
    """Updates for PRESET_FIELDS of one tab."""
    if family is None:
        return [gr.skip()] * len(PRESET_FIELDS)
    defaults = family.defaults
    step = family.size_multiple
    size = {"step": step, **({"value": family.native_size} if apply_defaults else {})}
    distilled = {"visible": family.guidance.distilled,
                 **({"value": defaults.distilled_cfg_scale} if apply_defaults else {})}
    denoising = _denoising_update(family, apply_defaults) if is_img2img else gr.skip()
    if not apply_defaults:
        return [gr.update(**distilled), gr.update(**size), gr.update(**size), gr.skip(), gr.skip(), gr.skip(),
                gr.skip(), denoising]
    return [gr.update(**distilled), gr.update(**size), gr.update(**size), defaults.steps, defaults.cfg_scale,
            defaults.sampler, defaults.scheduler, denoising]


def _denoising_update(family: Family, apply_defaults: bool) -> Any:
    edit = family.features.edit
    value = {"value": 1.0 if edit else IMG2IMG_DENOISING} if apply_defaults else {}
    return gr.update(label=EDIT_LABEL if edit else "Denoising strength", **value)


def wire_family_presets(blocks: gr.Blocks, state: AppState, checkpoint: gr.Dropdown,
                        tabs_fields: Sequence[Mapping[str, Any]]) -> None:
    """On page load and whenever the checkpoint changes; defaults only when the family changes. `tabs_fields`:
    txt2img's fields, then img2img's."""
    shown = gr.State(None)  # the family name the page shows now
    outputs = [shown, *(fields[name] for fields in tabs_fields for name in PRESET_FIELDS)]

    def update(title: str | None, current: str | None, on_load: bool) -> list[Any]:
        family = state.family_of(title) if title else None
        name = family.name if family is not None else current
        changed_kind = family is not None and current is not None and family.name != current
        apply_defaults = changed_kind and not on_load
        updates = [preset_updates(family, apply_defaults, is_img2img=index == 1) for index in range(len(tabs_fields))]
        return [name, *(update for per_tab in updates for update in per_tab)]

    checkpoint.change(lambda title, current: update(title, current, False), inputs=[checkpoint, shown],
                      outputs=outputs, queue=False, show_progress="hidden", api_visibility="private")
    blocks.load(lambda title, current: update(title, current, True), inputs=[checkpoint, shown], outputs=outputs,
                queue=False, show_progress="hidden", api_visibility="private")
