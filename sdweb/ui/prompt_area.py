"""The top of txt2img / img2img: the prompt row (prompts, Generate, tools, Styles), the style editor and the
Extra Networks panel under it, and the Override settings box that pasted parameters fill."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.state import AppState
from sdweb.ui.common import PromptRow, build_prompt_row
from sdweb.ui.extra_networks import ExtraNetworksPanel, build_extra_networks_panel
from sdweb.ui.overrides import overrides_from_chips
from sdweb.ui.styles import StyleEditor, build_style_editor


@dataclass
class PromptArea:
    row: PromptRow
    style_editor: StyleEditor
    extra_networks: ExtraNetworksPanel


def build_prompt_area(state: AppState, tab: str) -> PromptArea:
    names = state.service.styles.names()
    row = build_prompt_row(tab, names)
    editor = build_style_editor(tab, names)
    panel = build_extra_networks_panel(tab)
    return PromptArea(row=row, style_editor=editor, extra_networks=panel)


def override_fields(override: gr.Dropdown, values: Mapping[Any, Any], base: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """`override_settings` from the Override settings chips (merged over `base`); {} when there are none."""
    overrides = {**(base or {}), **overrides_from_chips(values.get(override))}
    return {"override_settings": overrides} if overrides else {}
