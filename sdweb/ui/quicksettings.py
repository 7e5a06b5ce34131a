"""The quick settings bar: the Stable Diffusion checkpoint (loaded as soon as it is chosen, with a progress
message, as A1111), SD VAE and Clip skip, with 🔄 to rescan the model folders."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.core.errors import UserError
from sdweb.generation.service import SaveOptions
from sdweb.state import AppState
from sdweb.ui.common import POLL_SECONDS, choice_values, marked_choices, to_gr_error, user_error

VAE_SPECIAL = ("Automatic", "None")


@dataclass
class QuickSettings:
    checkpoint: gr.Dropdown
    refresh: gr.Button
    vae: gr.Dropdown
    modules: gr.Dropdown  # Forge's "VAE / Text Encoder": module files loaded with the checkpoint
    clip_skip: gr.Slider
    status: gr.Markdown  # "Loading …" / "Loaded … in 2.1 s"


def checkpoint_choices(state: AppState) -> tuple[list[str], str | None]:
    selected = state.selected_checkpoint()
    return state.registry.checkpoint_titles(), selected.title if selected else None


def vae_choices(state: AppState) -> list[str | tuple[str, str]]:
    """Automatic, None, then the VAE files (a damaged one marked: see marked_choices)."""
    return marked_choices([*VAE_SPECIAL, *(vae.name for vae in state.registry.vaes)], state.registry.vae_problems())


def save_setting(state: AppState, key: str, value: Any) -> None:
    """A quick setting changed: validate and save it (a damaged checkpoint file is refused here)."""
    if value is None:
        return
    try:
        if key == "sd_model_checkpoint":
            state.check_checkpoint_change(value)
        state.settings.update({key: value})  # unknown checkpoint or VAE names: the settings' own checks refuse
    except UserError as error:
        raise user_error(f"{error.message} {error.hint}".strip()) from None


def module_choices(state: AppState) -> list[str]:
    return [module.name for module in state.registry.modules]


def quick_values(state: AppState) -> tuple[gr.Dropdown, gr.Dropdown, gr.Dropdown, int]:
    titles, selected = checkpoint_choices(state)
    vae = state.settings.get("sd_vae", "Automatic")
    choices = vae_choices(state)
    return (gr.Dropdown(choices=titles, value=selected),
            gr.Dropdown(choices=choices if vae in choice_values(choices) else [*choices, vae], value=vae),
            gr.Dropdown(choices=module_choices(state), value=list(state.settings.get("forge_additional_modules") or [])),
            int(state.settings.get("CLIP_stop_at_last_layers", 1)))


def switch_checkpoint(state: AppState, title: str | None) -> Iterator[tuple[Any, str]]:
    """Select a checkpoint and load it now through the job queue (after a running job), streaming
    (dropdown, status). A checkpoint that fails to load leaves the previous one selected."""
    if not title:
        return
    entry = state.registry.find_checkpoint(str(title))
    if entry is None:
        raise user_error(f"Checkpoint {title!r} is not in the list any more; press 🔄 to refresh it.")
    previous = state.settings.get("sd_model_checkpoint")
    if entry.title in state.manager.loaded_titles() and previous == entry.title:
        yield gr.skip(), f"Loaded {entry.title}"
        return
    save_setting(state, "sd_model_checkpoint", entry.title)
    job = state.submit("reload-checkpoint", None, SaveOptions(save_samples=False, save_grid=False))
    started = time.monotonic()
    yield entry.title, f"Loading {entry.title}…"
    while not job.finished.wait(POLL_SECONDS):
        position = state.queue.position(job.id)
        waiting = f" (after {position + 1} queued job{'s' if position else ''})" if position is not None else ""
        yield gr.skip(), f"Loading {entry.title}{waiting}… {time.monotonic() - started:.0f} s"
    if job.error is not None:
        state.settings.update({"sd_model_checkpoint": previous or ""})
        yield previous or None, ""
        raise to_gr_error(job.error)
    loaded = job.result
    seconds = getattr(loaded, "load_seconds", 0.0) if loaded is not None else 0.0
    title = loaded.entry.title if loaded is not None else entry.title  # hashed while loading: "name [abcdef1234]"
    if title != entry.title:
        state.settings.update({"sd_model_checkpoint": title})
    yield (gr.Dropdown(choices=state.registry.checkpoint_titles(), value=title),
           f"Loaded {title} in {max(seconds, time.monotonic() - started):.1f} s")


def build_quicksettings(state: AppState) -> QuickSettings:
    titles, selected = checkpoint_choices(state)
    with gr.Row(elem_id="quicksettings", equal_height=False):
        with gr.Column(scale=4, min_width=300, elem_id="sd_model_checkpoint_column"):
            checkpoint = gr.Dropdown(label="Stable Diffusion checkpoint", choices=titles, value=selected,
                                     elem_id="sd_model_checkpoint")
            status = gr.Markdown("", elem_id="sd_checkpoint_status", container=False)
        refresh = gr.Button("🔄", elem_id="refresh_sd_model_checkpoint", scale=0, min_width=40, size="sm")
        vae = gr.Dropdown(label="SD VAE", choices=vae_choices(state), value=state.settings.get("sd_vae", "Automatic"),
                          elem_id="sd_vae", scale=3, min_width=200, allow_custom_value=True)
        modules = gr.Dropdown(label="VAE / Text Encoder", choices=module_choices(state), multiselect=True,
                              value=list(state.settings.get("forge_additional_modules") or []),
                              info="Empty: Automatic (the files a Flux / Chroma / SD 3 checkpoint lacks)",
                              elem_id="forge_additional_modules", scale=3, min_width=200)
        clip_skip = gr.Slider(label="Clip skip", minimum=1, maximum=12, step=1,
                              value=int(state.settings.get("CLIP_stop_at_last_layers", 1)),
                              elem_id="CLIP_stop_at_last_layers", scale=2, min_width=200)
    quick = QuickSettings(checkpoint=checkpoint, refresh=refresh, vae=vae, modules=modules, clip_skip=clip_skip,
                          status=status)
    def on_checkpoint(title: str | None) -> Iterator[tuple[Any, str]]:
        yield from switch_checkpoint(state, title)

    checkpoint.input(on_checkpoint, inputs=checkpoint,
                     outputs=[checkpoint, status], trigger_mode="always_last", show_progress="minimal",
                     show_progress_on=[status], api_visibility="private", concurrency_limit=4,
                     concurrency_id="checkpoint")
    for component, key in ((vae, "sd_vae"), (modules, "forge_additional_modules"),
                           (clip_skip, "CLIP_stop_at_last_layers")):
        component.input(_saver(state, key), inputs=component, outputs=None, trigger_mode="always_last",
                        api_visibility="private")

    def on_refresh() -> tuple[gr.Dropdown, gr.Dropdown, gr.Dropdown, int]:
        state.registry.refresh_checkpoints()
        state.registry.refresh_vaes()
        state.registry.refresh_modules()
        return quick_values(state)

    refresh.click(on_refresh, outputs=[checkpoint, vae, modules, clip_skip], api_visibility="private")
    return quick


def _saver(state: AppState, key: str):
    def save(value: Any) -> None:
        save_setting(state, key, value)

    return save
