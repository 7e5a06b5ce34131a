"""The Checkpoint Merger tab (A1111's): A, B, C, custom name, multiplier, interpolation method, float16, copy
config, bake in VAE, discard weights, save metadata. The merge runs as a job of the shared queue, with its
progress shown; the new checkpoint appears in every checkpoint list."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from sdweb.models.merge import CONFIG_SOURCES, METHODS, MergeInput, MergePlan
from sdweb.models.registry import CheckpointEntry
from sdweb.state import AppState
from sdweb.ui.common import POLL_SECONDS, to_gr_error, user_error

NONE = "None"


@dataclass
class MergerTab:
    primary: gr.Dropdown
    secondary: gr.Dropdown
    tertiary: gr.Dropdown
    bake_in_vae: gr.Dropdown
    merge: gr.Button
    status: gr.Markdown
    result: gr.HTML

    def checkpoint_dropdowns(self) -> list[gr.Dropdown]:
        return [self.primary, self.secondary, self.tertiary]


def merge_input(state: AppState, title: str | None, role: str) -> MergeInput | None:
    if not title or title == NONE:
        return None
    entry: CheckpointEntry | None = state.registry.find_checkpoint(title)
    if entry is None or entry.is_diffusers_dir:
        raise user_error(f"{role}: {title!r} is not a checkpoint file in the list; press 🔄 to refresh it.")
    entry = state.registry.ensure_sha256(entry)
    return MergeInput(path=entry.path, name=entry.name, model_name=entry.model_name, sha256=entry.sha256,
                      legacy_hash=entry.legacy_hash)


def merge_plan(state: AppState, values: dict[str, Any]) -> MergePlan:
    primary = merge_input(state, values["primary"], "Primary model (A)")
    if primary is None:
        raise user_error("Choose the primary model (A).")
    vae_name = values.get("bake_in_vae")
    vae = state.registry.find_vae(vae_name) if vae_name and vae_name != NONE else None
    if vae_name and vae_name != NONE and vae is None:
        raise user_error(f"Bake in VAE: {vae_name!r} is not in the VAE list; press 🔄 to refresh it.")
    return MergePlan(primary=primary, secondary=merge_input(state, values.get("secondary"), "Secondary model (B)"),
                     tertiary=merge_input(state, values.get("tertiary"), "Tertiary model (C)"),
                     method=str(values.get("method") or "Weighted sum"), multiplier=float(values.get("multiplier", 0.3)),
                     save_as_half=bool(values.get("save_as_half")), custom_name=str(values.get("custom_name") or ""),
                     bake_in_vae=vae.path if vae else None, discard_weights=str(values.get("discard_weights") or ""),
                     save_metadata=bool(values.get("save_metadata", True)),
                     config_source=str(values.get("config_source") or CONFIG_SOURCES[0]))


def _titles(state: AppState) -> list[str]:
    return [entry.title for entry in state.registry.checkpoints if not entry.is_demo and not entry.is_diffusers_dir]


def _vae_names(state: AppState) -> list[str]:
    return [NONE, *(vae.name for vae in state.registry.vaes)]


def build_merger_tab(state: AppState) -> tuple[MergerTab, dict[str, Any]]:
    titles = _titles(state)
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel", scale=2):
            gr.Markdown("A merger of two or three checkpoints. The result is saved as .safetensors in the "
                        "checkpoints folder.")
            with gr.Row(equal_height=False, elem_id="modelmerger_models"):
                primary = gr.Dropdown(label="Primary model (A)", choices=titles, value=None, scale=3,
                                      elem_id="modelmerger_primary_model_name")
                secondary = gr.Dropdown(label="Secondary model (B)", choices=titles, value=None, scale=3,
                                        elem_id="modelmerger_secondary_model_name")
                tertiary = gr.Dropdown(label="Tertiary model (C)", choices=titles, value=None, scale=3,
                                       elem_id="modelmerger_tertiary_model_name")
                refresh = gr.Button("🔄", size="sm", scale=0, min_width=40, elem_id="modelmerger_refresh")
            custom_name = gr.Textbox(label="Custom Name (Optional)", elem_id="modelmerger_custom_name")
            multiplier = gr.Slider(label="Multiplier (M) - set to 0 to get model A", minimum=0, maximum=1, step=0.05,
                                   value=0.3, elem_id="modelmerger_interp_amount")
            method = gr.Radio(label="Interpolation Method", choices=list(METHODS), value="Weighted sum",
                              elem_id="modelmerger_interp_method")
            with gr.Row():
                save_as_half = gr.Checkbox(label="Save as float16", value=False, elem_id="modelmerger_save_as_half")
                save_metadata = gr.Checkbox(label="Save metadata", value=True, elem_id="modelmerger_save_metadata")
            config_source = gr.Radio(label="Copy config from", choices=list(CONFIG_SOURCES), value=CONFIG_SOURCES[0],
                                     elem_id="modelmerger_config_method")
            bake_in_vae = gr.Dropdown(label="Bake in VAE", choices=_vae_names(state), value=NONE,
                                      elem_id="modelmerger_bake_in_vae")
            discard_weights = gr.Textbox(label="Discard weights with matching name (regular expression)",
                                         elem_id="modelmerger_discard_weights")
            merge = gr.Button("Merge", variant="primary", elem_id="modelmerger_merge")
        with gr.Column(scale=1):
            status = gr.Markdown("", elem_id="modelmerger_status", elem_classes=["sdweb-status"])
            result = gr.HTML("", elem_id="modelmerger_result")
    tab = MergerTab(primary=primary, secondary=secondary, tertiary=tertiary, bake_in_vae=bake_in_vae, merge=merge,
                    status=status, result=result)
    values = {"primary": primary, "secondary": secondary, "tertiary": tertiary, "custom_name": custom_name,
              "multiplier": multiplier, "method": method, "save_as_half": save_as_half,
              "save_metadata": save_metadata, "config_source": config_source, "bake_in_vae": bake_in_vae,
              "discard_weights": discard_weights}

    def on_refresh() -> list[Any]:
        state.registry.refresh_checkpoints()
        state.registry.refresh_vaes()
        names = _titles(state)
        return [*(gr.Dropdown(choices=names) for _ in range(3)), gr.Dropdown(choices=_vae_names(state))]

    refresh.click(on_refresh, outputs=[primary, secondary, tertiary, bake_in_vae], api_visibility="private")
    return tab, values


def run_merge_job(state: AppState, plan: MergePlan) -> Iterator[tuple[str, str]]:
    """Queue the merge and stream (status, result html); the result names the new file."""
    job = state.queue.submit("merge", plan)
    started = time.monotonic()
    while not job.finished.wait(POLL_SECONDS):
        position = state.queue.position(job.id)
        progress = job.progress
        if position is not None:
            yield f"Waiting in queue (position {position + 1})…", ""
        elif progress.sampling_steps:
            yield f"Merging… {progress.sampling_step}/{progress.sampling_steps} tensors", ""
    if job.error is not None:
        yield "", ""
        raise to_gr_error(job.error)
    merged: Path = job.result
    yield (f"Checkpoint saved to {merged} in {time.monotonic() - started:.1f} s.",
           f"<p>Merged: <b>{html.escape(merged.name)}</b></p>")


def wire_merger(state: AppState, tab: MergerTab, values: dict[str, Any], checkpoint_lists: Sequence[Any]) -> None:
    """Merge; afterwards every checkpoint list (`checkpoint_lists`: the top bar, refiners) offers the result."""
    names = list(values)

    def merge(*inputs: Any) -> Iterator[list[Any]]:
        plan = merge_plan(state, dict(zip(names, inputs, strict=True)))
        skip = [gr.skip()] * (3 + len(checkpoint_lists))
        for status, result in run_merge_job(state, plan):
            yield [status, result, *skip]
        titles = _titles(state)
        every = state.registry.checkpoint_titles()
        yield [gr.skip(), gr.skip(), *(gr.Dropdown(choices=titles) for _ in range(3)),
               *(gr.Dropdown(choices=_list_choices(component, every)) for component in checkpoint_lists)]

    tab.merge.click(merge, inputs=[values[name] for name in names],
                    outputs=[tab.status, tab.result, *tab.checkpoint_dropdowns(), *checkpoint_lists],
                    show_progress="minimal", show_progress_on=[tab.status], api_visibility="private",
                    concurrency_limit=4, concurrency_id="generate")


def _list_choices(component: Any, titles: list[str]) -> list[str]:
    """Refiner lists start with "None"."""
    first = component.choices[0] if getattr(component, "choices", None) else None
    has_none = first is not None and (first[0] if isinstance(first, tuple) else first) == NONE
    return [NONE, *titles] if has_none else titles
