"""The Gradio page. The only package that imports gradio; handlers stay thin."""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI

from sdweb import __version__
from sdweb.state import AppState


def build_blocks(state: AppState) -> gr.Blocks:
    selected = state.selected_checkpoint()
    with gr.Blocks(title="sdweb", analytics_enabled=False) as blocks:
        with gr.Row():
            checkpoint = gr.Dropdown(label="Stable Diffusion checkpoint",
                                     choices=state.registry.checkpoint_titles(),
                                     value=selected.title if selected else None, elem_id="sd_model_checkpoint",
                                     scale=4)
            refresh = gr.Button("🔄", elem_id="refresh_sd_model_checkpoint", scale=0, min_width=40)
        gr.Markdown(f"sdweb {__version__}: the generation tabs arrive with the generation service.",
                    elem_id="sdweb_status")

        def on_refresh() -> gr.Dropdown:
            state.registry.refresh_checkpoints()
            current = state.selected_checkpoint()
            return gr.Dropdown(choices=state.registry.checkpoint_titles(), value=current.title if current else None)

        refresh.click(on_refresh, outputs=checkpoint, api_visibility="private")
    return blocks


def mount_ui(app: FastAPI, state: AppState, auth: list[tuple[str, str]] | None) -> FastAPI:
    blocks = build_blocks(state)
    blocks.queue(default_concurrency_limit=1, max_size=64)
    return gr.mount_gradio_app(app, blocks, path="/", auth=auth, footer_links=["api", "settings"])
