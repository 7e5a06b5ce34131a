"""The Settings tab: a form generated from the settings table for a curated list of keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.config.options import OPTIONS_BY_KEY, OptionInfo
from sdweb.config.settings import Settings
from sdweb.core.errors import SettingsError

CURATED_KEYS: tuple[str, ...] = (
    # Saving images
    "samples_save", "samples_format", "samples_filename_pattern", "save_to_dirs", "grid_save", "grid_format",
    "jpeg_quality", "save_txt", "enable_pnginfo", "save_incomplete_images",
    # Stable Diffusion
    "sd_checkpoints_limit", "CLIP_stop_at_last_layers", "emphasis", "comma_padding_backtrack", "randn_source",
    # Sampler parameters
    "eta_noise_seed_delta", "eta_ancestral", "eta_ddim",
    # Live previews and user interface
    "live_previews_enable", "show_progress_every_n_steps", "return_grid",
    # Infotext
    "send_seed", "send_size", "add_model_hash_to_info", "add_model_name_to_info",
)


@dataclass
class SettingsTab:
    components: dict[str, Any]  # setting key -> component
    apply: gr.Button
    result: gr.Markdown


def component_for(option: OptionInfo, value: Any) -> Any:
    """A control for one setting, chosen from its kind, choices and bounds."""
    common = {"label": option.label, "elem_id": f"setting_{option.key}"}
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
    return gr.Textbox(value="" if value is None else str(value), lines=1, **common)


def changed_settings(values: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keys whose value differs from the stored one (ints from sliders compared as numbers)."""
    changes: dict[str, Any] = {}
    for key, value in values.items():
        option = OPTIONS_BY_KEY.get(key)
        if option is not None and option.kind == "int" and isinstance(value, float) and value.is_integer():
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
    except SettingsError as error:
        return f"**Not saved:** {error.message} {error.hint}".strip(), False
    return f"{len(changed)} setting{'s' if len(changed) != 1 else ''} changed: {', '.join(changed)}.", True


def build_settings_tab(settings: Settings) -> SettingsTab:
    current = settings.as_dict()
    components: dict[str, Any] = {}
    with gr.Row():
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_submit", scale=0, min_width=200)
        result = gr.Markdown("", elem_id="settings_result")
    section = None
    with gr.Column(variant="panel"):
        for key in CURATED_KEYS:
            option = OPTIONS_BY_KEY[key]
            if option.section != section:
                section = option.section
                gr.Markdown(f"### {section}")
            components[key] = component_for(option, current.get(key, option.default))

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
