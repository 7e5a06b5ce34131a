"""A1111's "Override settings" box: settings that came with a pasted infotext (Clip skip, the model, ENSD,
...) shown as removable chips such as ``Clip skip: 2``; the chips left become the job's ``override_settings``
(never written to the user's settings)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import gradio as gr

from sdweb.infotext import SETTING_FOR_INFOTEXT_KEY

LABEL_FOR_SETTING = {setting: label for label, (setting, _) in SETTING_FOR_INFOTEXT_KEY.items()}


def _shown(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    return str(value)


def override_chips(overrides: Mapping[str, object]) -> list[str]:
    """``{"CLIP_stop_at_last_layers": 2}`` -> ``["Clip skip: 2"]`` (settings without an infotext label are left
    out: the box cannot show them)."""
    return [f"{LABEL_FOR_SETTING[key]}: {_shown(value)}" for key, value in overrides.items()
            if key in LABEL_FOR_SETTING]


def overrides_from_chips(chips: Iterable[str] | None) -> dict[str, Any]:
    """The chips left in the box -> ``override_settings`` (a chip that no longer parses is ignored)."""
    overrides: dict[str, Any] = {}
    for chip in chips or []:
        label, separator, text = str(chip).partition(": ")
        if not separator or label not in SETTING_FOR_INFOTEXT_KEY:
            continue
        setting, kind = SETTING_FOR_INFOTEXT_KEY[label]
        try:
            overrides[setting] = (text.strip() != "False") if kind is bool else kind(text.strip())
        except ValueError:
            continue
    return overrides


def build_override_box(tab: str) -> gr.Dropdown:
    """Hidden until a paste brings settings; the user removes a chip to drop that override."""
    return gr.Dropdown(label="Override settings", choices=[], value=[], multiselect=True, visible=False,
                       interactive=True, elem_id=f"{tab}_override_settings")


def override_box_update(overrides: Mapping[str, object]) -> gr.Dropdown:
    chips = override_chips(overrides)
    return gr.Dropdown(choices=chips, value=chips, visible=bool(chips))
