"""Extension scripts in the txt2img / img2img tabs: the Script dropdown (selectable scripts, each with its
own controls) and one accordion per always-on script. Their values travel in the request exactly as API
clients send them: `script_name` / `script_args` and `alwayson_scripts: {title: {"args": [...]}}`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from sdweb.state import AppState

log = logging.getLogger(__name__)
NONE = "None"


@dataclass
class ScriptInputs:
    dropdown: gr.Dropdown
    selectable: dict[str, list[Any]] = field(default_factory=dict)  # title -> its input components
    always: dict[str, list[Any]] = field(default_factory=dict)

    def components(self) -> set[Any]:
        found = {self.dropdown}
        for inputs in (*self.selectable.values(), *self.always.values()):
            found.update(inputs)
        return found

    def request_fields(self, values: Mapping[Any, Any]) -> dict[str, Any]:
        """`script_name`, `script_args`, `alwayson_scripts` from the page's values."""
        chosen = values.get(self.dropdown) or NONE
        fields: dict[str, Any] = {"alwayson_scripts": {
            title: {"args": [values.get(component) for component in inputs]}
            for title, inputs in self.always.items()}}
        if chosen != NONE and chosen in self.selectable:
            fields["script_name"] = chosen
            fields["script_args"] = [values.get(component) for component in self.selectable[chosen]]
        return fields


def _script_ui(script: Any, is_img2img: bool) -> list[Any]:
    try:
        return [component for component in (script.ui(is_img2img) or []) if component is not None]
    except Exception as error:
        log.exception("Script %r: ui() failed", script)
        gr.Markdown(f"This script's controls failed to build: `{type(error).__name__}: {error}`")
        return []


def build_script_inputs(state: AppState, is_img2img: bool, tab: str) -> ScriptInputs:
    """Always-on scripts' accordions, then (as in A1111) the Script dropdown with the chosen script's controls
    right below it."""
    runner = state.extensions.runner if state.extensions is not None else None
    always, selectable = runner.visible(is_img2img) if runner is not None else ([], [])
    selectable = [loaded for loaded in selectable if loaded.script.shown_in_ui()]
    always_inputs: dict[str, list[Any]] = {}
    for loaded in always:
        title = loaded.script.title()
        with gr.Accordion(title, open=False, elem_id=f"{tab}_script_{_slug(title)}"):
            always_inputs[title] = _script_ui(loaded.script, is_img2img)
    titles = [loaded.script.title() for loaded in selectable]
    with gr.Column(elem_id=f"{tab}_script_container"):
        inputs = ScriptInputs(dropdown=gr.Dropdown(label="Script", choices=[NONE, *titles], value=NONE,
                                                   elem_id=f"{tab}_script"), always=always_inputs)
        groups: dict[str, gr.Group] = {}
        for loaded in selectable:
            title = loaded.script.title()
            with gr.Group(visible=False, elem_id=f"{tab}_script_{_slug(title)}") as group:
                inputs.selectable[title] = _script_ui(loaded.script, is_img2img)
            groups[title] = group
    if groups:
        def show(chosen: str) -> dict[gr.Group, gr.Group]:
            # a dict, not a list: with one script a one-item list would be taken as that one output's value
            return {group: gr.Group(visible=title == chosen) for title, group in groups.items()}

        inputs.dropdown.change(show, inputs=inputs.dropdown, outputs=list(groups.values()), queue=False,
                               api_visibility="private")
    return inputs


def _slug(title: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in title.lower()).strip("_")
