"""The banner above the tabs while the built-in demo model is in use: its images are noise, where a real
checkpoint goes, a button to the Model downloader tab, and the first-run download's progress or failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.state import AppState

DOWNLOADER_TAB = "model_downloader"  # the built-in model downloader's tab id
POLL_S = 2.0


@dataclass
class DemoBanner:
    group: gr.Group
    text: gr.Markdown
    open_downloader: gr.Button
    timer: gr.Timer

    @property
    def outputs(self) -> list[Any]:
        return [self.group, self.text, self.timer]


def banner_text(state: AppState, chosen: str | None = None) -> str:
    """The banner's Markdown; empty unless the checkpoint `chosen` in the page (else the selected one) is the
    demo model."""
    selected = state.registry.find_checkpoint(chosen) if chosen else state.selected_checkpoint()
    if selected is None or not selected.is_demo:
        return ""
    text = ("**You are using the built-in demo model:** its weights are random, so every image it makes is "
            f"noise. Put a Stable Diffusion checkpoint (`.safetensors`) in `{state.paths.checkpoints}` and press "
            "🔄 next to the checkpoint list, or download one in the Model downloader tab.")
    progress = state.first_run.describe()
    return f"{text}\n\n{progress}" if progress else text


def banner_updates(state: AppState, chosen: str | None = None) -> tuple[Any, str, Any]:
    """(group visibility, text, timer) for the page: the timer runs while the first-run download does."""
    text = banner_text(state, chosen)
    return gr.Group(visible=bool(text)), text, gr.Timer(active=bool(text) and state.first_run.state == "downloading")


def has_downloader(state: AppState) -> bool:
    extensions = state.extensions.extensions if state.extensions is not None else []
    return any(ext.name == DOWNLOADER_TAB and ext.loaded for ext in extensions)


def build_demo_banner(state: AppState) -> DemoBanner:
    text = banner_text(state)
    with gr.Group(visible=bool(text), elem_id="sdweb_demo_banner") as group:
        message = gr.Markdown(text, elem_id="sdweb_demo_banner_text")
        button = gr.Button("Open the Model downloader", size="sm", variant="secondary",
                           elem_id="sdweb_demo_banner_downloader", visible=has_downloader(state))
    timer = gr.Timer(POLL_S, active=bool(text) and state.first_run.state == "downloading")
    banner = DemoBanner(group=group, text=message, open_downloader=button, timer=timer)
    timer.tick(lambda: banner_updates(state), inputs=None, outputs=banner.outputs, api_visibility="private",
               queue=False)
    return banner


def wire_demo_banner(banner: DemoBanner, tabs: gr.Tabs, checkpoint: gr.Dropdown, state: AppState) -> None:
    """The button opens the Model downloader tab; choosing another checkpoint hides the banner."""
    banner.open_downloader.click(lambda: gr.Tabs(selected=DOWNLOADER_TAB), inputs=None, outputs=tabs,
                                 api_visibility="private", queue=False)
    checkpoint.change(lambda chosen: banner_updates(state, chosen), inputs=checkpoint, outputs=banner.outputs,
                      api_visibility="private", queue=False)
