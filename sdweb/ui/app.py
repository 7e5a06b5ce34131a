"""The Gradio page: quick settings bar, the tabs, and mounting at "/". The only package that imports gradio."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr
from fastapi import FastAPI

from sdweb import __version__
from sdweb.core.errors import UserError
from sdweb.state import AppState
from sdweb.ui.common import choice_values, marked_choices
from sdweb.ui.demo_banner import DemoBanner, banner_updates, build_demo_banner, wire_demo_banner
from sdweb.ui.send import Tabs, wire_send_buttons
from sdweb.ui.tabs.extensions import build_extensions_tab
from sdweb.ui.tabs.extras import build_extras_tab
from sdweb.ui.tabs.img2img import build_img2img_tab
from sdweb.ui.tabs.png_info import build_png_info_tab
from sdweb.ui.tabs.settings import SettingsTab, build_settings_tab, current_values
from sdweb.ui.tabs.txt2img import build_txt2img_tab, hires_upscalers

log = logging.getLogger(__name__)
VAE_SPECIAL = ("Automatic", "None")

CSS = """
.sdweb-tokens { text-align: right; font-size: 0.8em; opacity: 0.7; margin-bottom: -0.6em; }
.sdweb-tokens > * { min-height: 0 !important; padding: 0 !important; }
#txt2img_generate, #img2img_generate, #extras_generate { min-height: 4.5em; font-size: 1.2em; }
#extras_interrupt { min-height: 4.5em; }
.sdweb-status { min-height: 1.5em; font-size: 0.9em; }
#quicksettings, #extras_upscaler_row { align-items: end; }
"""

# Ctrl+Enter (Cmd+Enter) in a prompt box clicks that tab's Generate button, as in A1111.
JS = """
() => {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || !event.target.closest) return;
    const row = event.target.closest("[id$='_toprow']");
    const button = row && document.getElementById(row.id.replace(/_toprow$/, "_generate"));
    if (button) { event.preventDefault(); button.click(); }
  });
}
"""


@dataclass
class QuickSettings:
    checkpoint: gr.Dropdown
    refresh: gr.Button
    vae: gr.Dropdown
    clip_skip: gr.Slider


def checkpoint_choices(state: AppState) -> tuple[list[str], str | None]:
    selected = state.selected_checkpoint()
    return state.registry.checkpoint_titles(), selected.title if selected else None


def vae_choices(state: AppState) -> list[str | tuple[str, str]]:
    """Automatic, None, then the VAE files (a damaged one marked: see marked_choices)."""
    return marked_choices([*VAE_SPECIAL, *(vae.name for vae in state.registry.vaes)], state.registry.vae_problems())


def save_setting(state: AppState, key: str, value: Any) -> None:
    """A quick setting changed: validate and save it (the model loads with the next job)."""
    if value is None:
        return
    try:
        if key == "sd_model_checkpoint":
            state.check_checkpoint_change(value)
        state.settings.update({key: value})  # unknown checkpoint or VAE names: the settings' own checks refuse
    except UserError as error:
        raise gr.Error(f"{error.message} {error.hint}".strip()) from None


def _quick_values(state: AppState) -> tuple[gr.Dropdown, gr.Dropdown, int]:
    titles, selected = checkpoint_choices(state)
    vae = state.settings.get("sd_vae", "Automatic")
    choices = vae_choices(state)
    return (gr.Dropdown(choices=titles, value=selected),
            gr.Dropdown(choices=choices if vae in choice_values(choices) else [*choices, vae], value=vae),
            int(state.settings.get("CLIP_stop_at_last_layers", 1)))


def build_quicksettings(state: AppState) -> QuickSettings:
    titles, selected = checkpoint_choices(state)
    with gr.Row(elem_id="quicksettings", equal_height=False):
        checkpoint = gr.Dropdown(label="Stable Diffusion checkpoint", choices=titles, value=selected,
                                 elem_id="sd_model_checkpoint", scale=4, min_width=300)
        refresh = gr.Button("🔄", elem_id="refresh_sd_model_checkpoint", scale=0, min_width=40, size="sm")
        vae = gr.Dropdown(label="SD VAE", choices=vae_choices(state), value=state.settings.get("sd_vae", "Automatic"),
                          elem_id="sd_vae", scale=3, min_width=200, allow_custom_value=True)
        clip_skip = gr.Slider(label="Clip skip", minimum=1, maximum=12, step=1,
                              value=int(state.settings.get("CLIP_stop_at_last_layers", 1)),
                              elem_id="CLIP_stop_at_last_layers", scale=2, min_width=200)
    quick = QuickSettings(checkpoint=checkpoint, refresh=refresh, vae=vae, clip_skip=clip_skip)
    for component, key in ((checkpoint, "sd_model_checkpoint"), (vae, "sd_vae"),
                           (clip_skip, "CLIP_stop_at_last_layers")):
        component.input(_saver(state, key), inputs=component, outputs=None, trigger_mode="always_last",
                        api_visibility="private")

    def on_refresh() -> tuple[gr.Dropdown, gr.Dropdown, int]:
        state.registry.refresh_checkpoints()
        state.registry.refresh_vaes()
        return _quick_values(state)

    refresh.click(on_refresh, outputs=[checkpoint, vae, clip_skip], api_visibility="private")
    return quick


def _saver(state: AppState, key: str):
    def save(value: Any) -> None:
        save_setting(state, key, value)

    return save


def _build_extension_tabs(state: AppState) -> list[tuple[Any, str, str] | str]:
    """Build the top-level tabs extensions add (on_ui_tabs) before the page's Blocks is opened: a gr.Blocks
    created inside another one pours its children into the enclosing layout. A failure becomes its message."""
    built: list[tuple[Any, str, str] | str] = []
    for callback in state.extensions.callbacks.ui_tabs if state.extensions is not None else []:
        try:
            built.extend(callback() or [])
        except Exception as error:
            log.exception("An extension's UI tab failed to build")
            built.append(f"{getattr(callback, '__module__', 'extension')}: `{type(error).__name__}: {error}`")
    return built


def _render_extension_tabs(built: list[tuple[Any, str, str] | str]) -> None:
    """One tab per built extension tab; one that failed is shown as an error tab."""
    for item in built:
        if isinstance(item, str):
            with gr.Tab(f"⚠ {item.split(':', 1)[0]}"):
                gr.Markdown(f"This extension's tab failed to build: {item.split(':', 1)[1].strip()}")
            continue
        blocks, title, elem_id = item
        with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}"):
            blocks.render()


def build_blocks(state: AppState) -> gr.Blocks:
    extension_tabs = _build_extension_tabs(state)
    with gr.Blocks(title="sdweb", analytics_enabled=False) as blocks:
        quick = build_quicksettings(state)
        banner = build_demo_banner(state)
        with gr.Tabs(elem_id="tabs") as main:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                txt2img = build_txt2img_tab(state)
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
                img2img = build_img2img_tab(state)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                extras = build_extras_tab(state)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                png_info = build_png_info_tab()
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                settings_tab = build_settings_tab(state.settings, bool(getattr(state.options, "hide_ui_dir_config", False)))
            _render_extension_tabs(extension_tabs)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                build_extensions_tab(state)
        gr.Markdown(f"sdweb {__version__} · [API docs](/docs)", elem_id="footer_version")
        wire_send_buttons(Tabs(main=main, txt2img=txt2img, img2img=img2img, png_info=png_info, extras=extras),
                          state.settings)
        wire_demo_banner(banner, main, quick.checkpoint, state)
        _wire_page_load(blocks, state, quick, settings_tab, txt2img.fields["hr_upscaler"], banner)
    return blocks


def _wire_page_load(blocks: gr.Blocks, state: AppState, quick: QuickSettings, settings_tab: SettingsTab,
                    hr_upscaler: gr.Dropdown, banner: DemoBanner) -> None:
    """Each page load shows the current settings (another tab or the API may have changed them), the
    upscaler files now in the model folders, and the demo-model banner when it applies."""
    outputs = [quick.checkpoint, quick.vae, quick.clip_skip, hr_upscaler, *banner.outputs,
               *settings_tab.components.values()]

    def on_load() -> dict[Any, Any]:
        checkpoint, vae, clip_skip = _quick_values(state)
        registry = state.service.postprocess.upscalers
        upscalers = marked_choices(hires_upscalers(registry.names()), registry.problems())
        return {quick.checkpoint: checkpoint, quick.vae: vae, quick.clip_skip: clip_skip,
                hr_upscaler: gr.Dropdown(choices=upscalers),
                **dict(zip(banner.outputs, banner_updates(state), strict=True)),
                **current_values(state.settings, settings_tab.components)}

    blocks.load(on_load, inputs=None, outputs=outputs, api_visibility="private", queue=False)


def mount_ui(app: FastAPI, state: AppState, auth: list[tuple[str, str]] | None) -> FastAPI:
    blocks = build_blocks(state)
    blocks.queue(default_concurrency_limit=1, max_size=64)
    extensions = state.extensions
    css = CSS + (extensions.css() if extensions is not None else "")
    script = (extensions.javascript() if extensions is not None else "").replace("</script>", "<\\/script>")
    head = f"<script>\n{script}\n</script>" if script else None
    return gr.mount_gradio_app(app, blocks, path="/", auth=auth, footer_links=["api", "settings"], css=css,
                               js=JS, head=head)


def end_page_streams(app: FastAPI) -> None:
    """End the open page streams (each tab's heartbeat) of the Gradio app mounted in `app`: called when the
    server shuts down, so open tabs never keep it waiting (Gradio's own stop event)."""
    for route in app.routes:
        stop_event = getattr(getattr(route, "app", None), "stop_event", None)
        if stop_event is not None:
            stop_event.set()
