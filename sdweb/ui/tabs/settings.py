"""The Settings tab: a form generated from the settings table, one sub-tab per section, "Reload UI"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.config.options import OPTIONS, OPTIONS_BY_KEY, OptionInfo
from sdweb.config.settings import Settings
from sdweb.core.errors import UserError

SHOWN_KINDS = ("bool", "int", "float", "str", "choice")  # list/dict settings are edited in config.json


def visible_options(hide_dirs: bool) -> list[OptionInfo]:
    """Every setting the form can edit, in the table's order; folder settings hidden by --hide-ui-dir-config."""
    return [option for option in OPTIONS if option.kind in SHOWN_KINDS and not (hide_dirs and option.restricted)]


def options_by_section(options: list[OptionInfo]) -> dict[str, list[OptionInfo]]:
    """Sections in order of first appearance, each with its settings."""
    sections: dict[str, list[OptionInfo]] = {}
    for option in options:
        sections.setdefault(option.section, []).append(option)
    return sections


@dataclass
class SettingsTab:
    components: dict[str, Any]  # setting key -> component
    apply: gr.Button
    result: gr.Markdown


def component_for(option: OptionInfo, value: Any, locked: str | None = None) -> Any:
    """A control for one setting, chosen from its kind, choices and bounds; read-only with the reason when
    `locked` (Settings.lock_reason)."""
    common: dict[str, Any] = {"label": option.label, "elem_id": f"setting_{option.key}"}
    if locked:
        common.update(interactive=False, info=locked)
    if option.kind == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if option.kind == "choice":
        return gr.Dropdown(choices=list(option.choices), value=value, **common)
    if option.kind in ("int", "float"):
        step = 1 if option.kind == "int" else 0.01
        if option.minimum is not None and option.maximum is not None:
            return gr.Slider(minimum=option.minimum, maximum=option.maximum, step=step, value=value, **common)
        return gr.Number(value=value, precision=0 if option.kind == "int" else None, minimum=option.minimum,
                         **common)
    if option.secret:  # tokens and passwords: never shown in clear on the page
        return gr.Textbox(value="" if value is None else str(value), lines=1, type="password", **common)
    return gr.Textbox(value="" if value is None else str(value), lines=1, **common)


def changed_settings(values: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keys whose value differs from the stored one (ints from sliders compared as numbers)."""
    changes: dict[str, Any] = {}
    for key, value in values.items():
        option = OPTIONS_BY_KEY.get(key)
        stored_int = isinstance(current.get(key), int) and not isinstance(current.get(key), bool)
        if (option is not None and option.kind == "int" or option is None and stored_int) and \
                isinstance(value, float) and value.is_integer():
            value = int(value)
        if value != current.get(key):
            changes[key] = value
    return changes


def apply_settings(settings: Settings, values: Mapping[str, Any]) -> tuple[str, bool]:
    """Validate and save the changes (all or nothing); (the message the tab shows, saved?)."""
    changes = changed_settings(values, settings.as_dict())
    if not changes:
        return "No settings changed.", True
    try:
        changed = settings.update(changes)
    except UserError as error:  # a bad value, an unknown checkpoint or VAE, a locked setting, a full disk
        return f"**Not saved:** {error.message} {error.hint}".strip(), False
    return f"{len(changed)} setting{'s' if len(changed) != 1 else ''} changed: {', '.join(changed)}.", True


RELOAD_JS = "() => { window.location.reload(); }"


def section_id(section: str) -> str:
    return "settings_section_" + "".join(char if char.isalnum() else "_" for char in section.lower())


def matches(option: OptionInfo, query: str) -> bool:
    """Search by words in the label, the key or the section (all words must match, any case)."""
    text = f"{option.label} {option.key} {option.section}".lower()
    return all(word in text for word in query.lower().split())


def search_visibility(sections: Mapping[str, list[OptionInfo]], query: str, chosen: str | None
                      ) -> tuple[dict[str, bool], dict[str, bool]]:
    """(section -> shown, setting key -> shown): the chosen section when not searching, else every setting
    that matches, in the sections that have one."""
    query = (query or "").strip()
    shown_keys = {option.key: not query or matches(option, query) for options in sections.values()
                  for option in options}
    shown_sections = {section: (any(shown_keys[o.key] for o in options) if query else section == chosen)
                      for section, options in sections.items()}
    return shown_sections, shown_keys


def build_settings_tab(settings: Settings, hide_dirs: bool = False) -> SettingsTab:
    current = settings.as_dict()
    components: dict[str, Any] = {}
    shown = visible_options(hide_dirs) + [option for option in settings.extra_options()
                                          if option.kind in SHOWN_KINDS]
    sections = options_by_section(shown)
    names = list(sections)
    with gr.Row(equal_height=True):
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_submit", scale=0, min_width=200)
        reload = gr.Button("Reload UI", elem_id="settings_reload_ui", scale=0, min_width=120)
        search = gr.Textbox(placeholder="Search settings…", show_label=False, container=False, scale=2,
                            elem_id="settings_search")
    result = gr.Markdown("", elem_id="settings_result")
    columns: dict[str, gr.Column] = {}
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=200):
            chosen = gr.Radio(choices=names, value=names[0] if names else None, show_label=False,
                              elem_id="settings_sections", elem_classes=["sdweb-settings-sections"])
        with gr.Column(scale=4):
            for index, (section, options) in enumerate(sections.items()):
                with gr.Column(visible=index == 0, elem_id=section_id(section)) as columns[section]:
                    gr.Markdown(f"### {section}")
                    for option in options:
                        components[option.key] = component_for(option, current.get(option.key, option.default),
                                                               settings.lock_reason(option.key))
    reload.click(None, js=RELOAD_JS, api_visibility="private")

    def filtered(query: str, section: str | None) -> list[Any]:
        shown_sections, shown_keys = search_visibility(sections, query, section)
        return [*(gr.Column(visible=shown_sections[name]) for name in names),
                *(gr.update(visible=shown_keys[key]) for key in components)]

    view_outputs = [*columns.values(), *components.values()]
    search.change(filtered, inputs=[search, chosen], outputs=view_outputs, trigger_mode="always_last",
                  show_progress="hidden", api_visibility="private")
    chosen.change(lambda section: filtered("", section), inputs=chosen, outputs=view_outputs, queue=False,
                  show_progress="hidden", api_visibility="private")
    chosen.input(lambda: "", outputs=search, queue=False, api_visibility="private")

    def on_apply(values: dict[Any, Any]) -> dict[Any, Any]:
        by_key = {key: values[component] for key, component in components.items()}
        message, saved = apply_settings(settings, by_key)
        if not saved:  # keep the user's edits on screen so they can fix the bad one
            return {result: message}
        return {result: message, **current_values(settings, components)}

    apply.click(on_apply, inputs=set(components.values()), outputs=[result, *components.values()],
                api_visibility="private")
    return SettingsTab(components=components, apply=apply, result=result)


def current_values(settings: Settings, components: Mapping[str, Any]) -> dict[Any, Any]:
    """Fresh values for the form (on page load: another tab or the API may have changed settings)."""
    stored = settings.as_dict()
    return {component: stored.get(key) for key, component in components.items()}
