"""The Gradio page: quick settings bar, the tabs, and mounting at "/". The only package that imports gradio."""

from __future__ import annotations

import json
import logging
from typing import Any

import gradio as gr
from fastapi import FastAPI

from sdweb import __version__
from sdweb.state import AppState
from sdweb.ui.common import TOOL_TITLES, marked_choices
from sdweb.ui.demo_banner import DemoBanner, banner_updates, build_demo_banner, wire_demo_banner
from sdweb.ui.extra_networks import wire_extra_networks
from sdweb.ui.family_presets import wire_family_presets
from sdweb.ui.queue_panel import build_queue_panel, build_workers_panel
from sdweb.ui.quicksettings import (
    QuickSettings,
    build_quicksettings,
    quick_values,
    save_setting,
    switch_checkpoint,
    vae_choices,
)
from sdweb.ui.send import PasteSources, Tabs, wire_send_buttons
from sdweb.ui.styles import wire_styles
from sdweb.ui.tabs.extensions import build_extensions_tab
from sdweb.ui.tabs.extras import build_extras_tab
from sdweb.ui.tabs.img2img import build_img2img_tab
from sdweb.ui.tabs.merger import build_merger_tab, wire_merger
from sdweb.ui.tabs.png_info import build_png_info_tab
from sdweb.ui.tabs.settings import SettingsTab, build_settings_tab, current_values
from sdweb.ui.tabs.txt2img import build_txt2img_tab, hires_upscalers

__all__ = ["build_blocks", "mount_ui", "save_setting", "vae_choices"]

log = logging.getLogger(__name__)

CSS = """
.sdweb-tokens { text-align: right; font-size: 0.8em; opacity: 0.7; margin-bottom: -0.6em; }
.sdweb-tokens > * { min-height: 0 !important; padding: 0 !important; }
#txt2img_generate, #img2img_generate, #extras_generate { min-height: 4.5em; font-size: 1.2em; }
#extras_interrupt { min-height: 4.5em; }
.sdweb-status { min-height: 1.5em; font-size: 0.9em; }
#sd_model_checkpoint_column { gap: 2px !important; }
#sd_checkpoint_status { font-size: 0.85em; min-height: 0; }
#quicksettings, #extras_upscaler_row, #modelmerger_models, .sdweb-align-end { align-items: end; }
.sdweb-tools { gap: 4px !important; flex-wrap: wrap; }
.sdweb-tool { min-width: 36px !important; flex-grow: 0 !important; }
.sdweb-gallery-buttons { flex-wrap: wrap; gap: 4px !important; }
.sdweb-gallery-wrap { position: relative; }
.sdweb-progressbar-box { position: absolute !important; top: 0; left: 0; right: 0; z-index: 50;
  padding: 0 !important; min-height: 0 !important; pointer-events: none; }
.sdweb-progressbar { position: relative; height: 22px; margin: 6px; border-radius: 6px; overflow: hidden;
  background: rgba(40, 40, 48, 0.55); }
.sdweb-progressbar-fill { position: absolute; top: 0; bottom: 0; left: 0; background: #f97316;
  transition: width 0.4s ease; }
.sdweb-progressbar-text { position: relative; display: block; text-align: center; line-height: 22px;
  font-size: 13px; color: #fff; text-shadow: 0 0 3px #000; }
.sdweb-cards .grid-container { grid-template-columns: repeat(auto-fill, minmax(110px, 150px)) !important;
  justify-content: start; }
.sdweb-cards .thumbnail-item { aspect-ratio: 2 / 3; width: 100%; height: auto; }
.sdweb-settings-sections .wrap { flex-direction: column; align-items: stretch; }
.sdweb-settings-sections label { width: 100%; }
.sdweb-panel-table { width: 100%; font-size: 0.9em; border-collapse: collapse; }
.sdweb-panel-table th, .sdweb-panel-table td { text-align: left; padding: 2px 8px; }
.sdweb-panel-empty { opacity: 0.7; font-size: 0.9em; }
"""

# Ctrl+Enter (Cmd+Enter) in a prompt box clicks that tab's Generate button, as in A1111; icon buttons get their
# hover text (Gradio buttons have no title argument).
JS = """
() => {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || !event.target.closest) return;
    const row = event.target.closest("[id$='_toprow']");
    const button = row && document.getElementById(row.id.replace(/_toprow$/, "_generate"));
    if (button) { event.preventDefault(); button.click(); }
  });
  const titles = Object.entries(__TITLES__);
  const setTitles = () => document.querySelectorAll("button[id]").forEach((button) => {
    const found = button.title ? null : titles.find(([part]) => button.id.includes(part));
    if (found) button.title = found[1];
  });
  let pending = false;  // at most one pass per 200 ms, however busy the page is
  new MutationObserver(() => {
    if (!pending) { pending = true; setTimeout(() => { pending = false; setTitles(); }, 200); }
  }).observe(document.body, {childList: true, subtree: true});
  setTitles();
}
""".replace("__TITLES__", json.dumps(TOOL_TITLES, ensure_ascii=False))


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
        # rendered (hidden) before it is first opened, as every tab of A1111's page is: extensions' javascript
        # looks up their tab's elements when the page loads
        with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}", render_children=True):
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
            with gr.Tab("Checkpoint Merger", id="modelmerger", elem_id="tab_modelmerger"):
                merger, merger_values = build_merger_tab(state)
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                settings_tab = build_settings_tab(state.settings, state.options.hide_ui_dir_config)
                build_workers_panel(state)
            _render_extension_tabs(extension_tabs)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                build_extensions_tab(state)
        build_queue_panel(state)
        gr.Markdown(f"sdweb {__version__} · [API docs](/docs)", elem_id="footer_version")
        tabs = Tabs(main=main, txt2img=txt2img, img2img=img2img, png_info=png_info, extras=extras)
        wire_send_buttons(tabs, PasteSources(state.settings, state.service.styles), state.paths.params_file)
        _wire_prompt_areas(state, tabs, quick)
        refiners = [txt2img.fields["refiner_checkpoint"], img2img.fields["refiner_checkpoint"]]
        wire_merger(state, merger, merger_values, [quick.checkpoint, *refiners])
        wire_demo_banner(banner, main, quick.checkpoint, state)
        wire_family_presets(blocks, state, quick.checkpoint, [txt2img.fields, img2img.fields])
        _wire_page_load(blocks, state, quick, settings_tab, txt2img.fields["hr_upscaler"],
                        [txt2img.row.styles, img2img.row.styles], banner)
    return blocks


def _wire_prompt_areas(state: AppState, tabs: Tabs, quick: QuickSettings) -> None:
    """Styles (one styles.csv for both tabs) and the Extra Networks panels (a checkpoint card loads it)."""
    areas = (tabs.txt2img.area, tabs.img2img.area)
    wire_styles(state.service.styles, [(area.row, area.style_editor) for area in areas])

    for area in areas:
        wire_extra_networks(state, area.row, area.extra_networks, quick.checkpoint, _load_chosen(state),
                            [quick.checkpoint, quick.status])


def _load_chosen(state: AppState):
    def load(title: str | None):
        yield from switch_checkpoint(state, title)

    return load


def _wire_page_load(blocks: gr.Blocks, state: AppState, quick: QuickSettings, settings_tab: SettingsTab,
                    hr_upscaler: gr.Dropdown, style_lists: list[gr.Dropdown], banner: DemoBanner) -> None:
    """Each page load shows the current settings (another tab or the API may have changed them), the upscaler
    files now in the model folders, the styles now in styles.csv and the demo-model banner when it applies."""
    outputs = [quick.checkpoint, quick.vae, quick.modules, quick.clip_skip, hr_upscaler, *style_lists, *banner.outputs,
               *settings_tab.components.values()]

    def on_load() -> dict[Any, Any]:
        checkpoint, vae, modules, clip_skip = quick_values(state)
        registry = state.service.postprocess.upscalers
        upscalers = marked_choices(hires_upscalers(registry.names()), registry.problems())
        styles = state.service.styles.names()
        return {quick.checkpoint: checkpoint, quick.vae: vae, quick.modules: modules, quick.clip_skip: clip_skip,
                hr_upscaler: gr.Dropdown(choices=upscalers),
                **{styles_list: gr.Dropdown(choices=styles) for styles_list in style_lists},
                **dict(zip(banner.outputs, banner_updates(state), strict=True)),
                **current_values(state.settings, settings_tab.components)}

    blocks.load(on_load, inputs=None, outputs=outputs, api_visibility="private", queue=False)


def _inline(script: str) -> str:
    """Javascript safe inside a <script> element (a literal "</script>" would end it)."""
    return script.replace("</script>", "<\\/script>")


def mount_ui(app: FastAPI, state: AppState, auth: list[tuple[str, str]] | None) -> FastAPI:
    blocks = build_blocks(state)
    blocks.queue(default_concurrency_limit=1, max_size=64)
    extensions = state.extensions
    css = CSS + (extensions.css() if extensions is not None else "")
    scripts = extensions.javascript_files() if extensions is not None else []
    head = "\n".join(f"<script>\n{_inline(script)}\n</script>" for script in scripts) or None
    return gr.mount_gradio_app(app, blocks, path="/", auth=auth, footer_links=["api", "settings"], css=css,
                               js=JS, head=head)


def end_page_streams(app: FastAPI) -> None:
    """End the open page streams (each tab's heartbeat) of the Gradio app mounted in `app`: called when the
    server shuts down, so open tabs never keep it waiting (Gradio's own stop event)."""
    for route in app.routes:
        stop_event = getattr(getattr(route, "app", None), "stop_event", None)
        if stop_event is not None:
            stop_event.set()
