"""Shared UI pieces: error conversion, request building by field name, job progress, the output panel.

Handlers stay thin: collect `{field name: value}` from a tab's field dict, build the typed request, submit
it through the job queue, poll the job for progress and previews, show the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gradio as gr
from pydantic import BaseModel, ValidationError

from sdweb.core.errors import UserError
from sdweb.core.limits import MAX_PROMPT_CHARS
from sdweb.generation.jobs import JobInterrupted, JobProgress
from sdweb.generation.service import GenerationResult, SaveOptions
from sdweb.state import AppState

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
RESULT_GALLERY_COLUMNS = 2


# -- dropdowns of model files ---------------------------------------------------------------------------------
def marked_choices(names: Sequence[str], problems: Mapping[str, str]) -> list[str | tuple[str, str]]:
    """Dropdown choices for model files: one that cannot be read is shown as "⚠ name (damaged file: ...)" and
    keeps its name as the value (choosing it gives the error that names the file)."""
    return [(f"⚠ {name} (damaged file: {problems[name]})", name) if name in problems else name for name in names]


def choice_values(choices: Sequence[str | tuple[str, str]]) -> list[str]:
    return [choice[1] if isinstance(choice, tuple) else choice for choice in choices]


# -- errors ------------------------------------------------------------------------------------------------
def validation_message(error: ValidationError) -> str:
    """One line per bad field: 'width: width must be a multiple of 8 ...'."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item.get("loc", ()))
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        lines.append(f"{field}: {message}" if field else message)
    return "; ".join(lines) or "invalid request"


def user_message(error: BaseException) -> str:
    """What the user reads for an error: field and message, message and hint, or a short generic line."""
    if isinstance(error, ValidationError):
        return validation_message(error)
    if isinstance(error, UserError):
        return f"{error.message} {error.hint}".strip()
    if isinstance(error, JobInterrupted):
        return "Interrupted."
    return f"Generation failed ({type(error).__name__}). The server log has the details."


def to_gr_error(error: BaseException) -> gr.Error:
    return gr.Error(user_message(error), title="Error" if isinstance(error, UserError | ValidationError)
                    else "Unexpected error")


# -- request building by name ------------------------------------------------------------------------------
def collect_fields(fields: Mapping[str, Any], values: Mapping[Any, Any]) -> dict[str, Any]:
    """`{field name: value}` from a tab's `{field name: component}` dict and Gradio's `{component: value}`."""
    return {name: values[component] for name, component in fields.items() if component in values}


def clean_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Whole-number floats from sliders become ints; None (an emptied Number box) is left out."""
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        cleaned[name] = value
    return cleaned


def make_request(model: type[BaseModel], values: Mapping[str, Any]) -> Any:
    """The typed request, or a gr.Error naming the bad field."""
    try:
        return model(**clean_values(values))
    except ValidationError as error:
        raise to_gr_error(error) from None


# -- progress ----------------------------------------------------------------------------------------------
def progress_text(progress: JobProgress, position: int | None, now: float) -> str:
    """'Waiting in queue (position 2)' or 'Step 5/20 · Batch 1/2 · 25% · ETA 3s'."""
    if position is not None:
        return f"Waiting in queue (position {position + 1})…"
    if progress.started_at is None:
        return "Starting…"
    parts = []
    if progress.sampling_steps:
        parts.append(f"Step {progress.sampling_step}/{progress.sampling_steps}")
    else:
        parts.append("Loading model…")
    if progress.job_count > 1:
        parts.append(f"Batch {progress.job_no + 1}/{progress.job_count}")
    fraction = progress.fraction()
    parts.append(f"{fraction * 100:.0f}%")
    elapsed = max(0.0, now - progress.started_at)
    if fraction > 0.01:
        parts.append(f"ETA {max(0.0, elapsed / fraction - elapsed):.0f}s")
    return " · ".join(parts)


def save_options(state: AppState) -> SaveOptions:
    """What the UI saves: samples per the `samples_save` setting; grids per `grid_save` (checked by the service)."""
    return SaveOptions(save_samples=bool(state.settings.get("samples_save", True)), save_grid=True)


# -- the output panel (gallery, info, progress) ----------------------------------------------------------------
@dataclass
class OutputPanel:
    gallery: gr.Gallery
    info: gr.Textbox
    status: gr.Markdown
    send_img2img: gr.Button
    send_inpaint: gr.Button
    send_extras: gr.Button
    job_id: gr.State  # the running job's id (Interrupt targets it)
    infotexts: gr.State  # one per gallery entry
    seeds: gr.State  # (seed, subseed) per gallery entry
    selected: gr.State  # the selected gallery index

    def result_outputs(self) -> list[Any]:
        return [self.gallery, self.info, self.status, self.job_id, self.infotexts, self.seeds, self.selected]


def build_output_panel(tab: str) -> OutputPanel:
    gallery = gr.Gallery(label="Output", show_label=False, format="png", type="pil", columns=RESULT_GALLERY_COLUMNS,
                         height=520, object_fit="contain", interactive=False, elem_id=f"{tab}_gallery",
                         buttons=["download", "fullscreen"])
    with gr.Row():
        send_img2img = gr.Button("🖼️ Send to img2img", size="sm", elem_id=f"{tab}_send_to_img2img")
        send_inpaint = gr.Button("🎨 Send to inpaint", size="sm", elem_id=f"{tab}_send_to_inpaint")
        send_extras = gr.Button("📐 Send to extras", size="sm", elem_id=f"{tab}_send_to_extras")
    status = gr.Markdown("", elem_id=f"{tab}_progress", elem_classes=["sdweb-status"])
    info = gr.Textbox(label="Generation info", lines=4, max_lines=12, interactive=False, buttons=["copy"],
                      elem_id=f"{tab}_info")
    panel = OutputPanel(gallery=gallery, info=info, status=status, send_img2img=send_img2img,
                        send_inpaint=send_inpaint, send_extras=send_extras, job_id=gr.State(None), infotexts=gr.State([]),
                        seeds=gr.State([]), selected=gr.State(0))
    gallery.select(_on_select, inputs=panel.infotexts, outputs=[panel.info, panel.selected],
                   api_visibility="private", queue=False)
    return panel


def _on_select(infotexts: list[str], evt: gr.SelectData) -> tuple[str, int]:
    index = evt.index if isinstance(evt.index, int) else 0
    text = infotexts[index] if 0 <= index < len(infotexts or []) else ""
    return text, index


def result_entries(result: GenerationResult, show_grid: bool) -> tuple[list[Any], list[str], list[tuple[int, int]]]:
    """Gallery images, their infotexts and (seed, subseed) pairs; the grid (if any, and wanted) comes first."""
    images: list[Any] = list(result.images)
    infotexts = list(result.infotexts)
    seeds = list(zip(result.seeds, result.subseeds, strict=False))
    if show_grid and result.grid is not None and len(result.images) > 1:
        images.insert(0, result.grid)
        infotexts.insert(0, infotexts[0] if infotexts else "")
        seeds.insert(0, seeds[0] if seeds else (-1, -1))
    return images, infotexts, seeds


def finished_status(result: GenerationResult) -> str:
    saved = len(result.saved_paths)
    parts = [f"Time taken: {result.seconds:.1f} s"]
    if result.interrupted:
        parts.insert(0, "Interrupted")
    parts.append(f"{saved} file{'s' if saved != 1 else ''} saved" if saved else "not saved")
    parts += [f"⚠ {warning}" for warning in result.warnings]  # e.g. a full disk: the images are still shown
    return " · ".join(parts)


def follow_job(state: AppState, job: Any, panel: OutputPanel, label: str = "") -> Iterator[dict[Any, Any]]:
    """Stream a submitted job's progress and previews; the generator's return value is its result.

    Raises gr.Error for a failed job and JobInterrupted when it was interrupted before it produced anything."""
    yield {panel.job_id: job.id, panel.status: f"{label}Queued…"}
    shown_preview = 0
    while not job.finished.wait(POLL_SECONDS):
        update: dict[Any, Any] = {panel.status: label + progress_text(job.progress, state.queue.position(job.id),
                                                                      time.time())}
        preview = job.progress.preview
        if preview is not None and job.progress.preview_id != shown_preview:
            shown_preview = job.progress.preview_id
            update[panel.gallery] = [preview]
        yield update
    if isinstance(job.error, JobInterrupted):
        raise job.error
    if job.error is not None:
        if not isinstance(job.error, UserError | ValidationError):
            log.error("Job %s failed: %s", job.id, job.error)
        yield {panel.status: "", panel.job_id: None}
        raise to_gr_error(job.error)
    return job.result


def submit_job(state: AppState, kind: str, request: Any, save: SaveOptions | None = None) -> Any:
    try:
        return state.submit(kind, request, save or save_options(state))
    except (UserError, RuntimeError) as error:
        raise gr.Error(str(error)) from None


def show_result(state: AppState, result: GenerationResult, panel: OutputPanel) -> dict[Any, Any]:
    images, infotexts, seeds = result_entries(result, bool(state.settings.get("return_grid", True)))
    return {panel.gallery: images, panel.info: infotexts[0] if infotexts else "",
            panel.status: finished_status(result), panel.job_id: None, panel.infotexts: infotexts,
            panel.seeds: seeds, panel.selected: 0}


def run_generation(state: AppState, kind: str, request: Any, panel: OutputPanel) -> Iterator[dict[Any, Any]]:
    """Submit through the job queue, stream progress and previews, then show the result (a generator)."""
    job = submit_job(state, kind, request)
    try:
        result: GenerationResult = yield from follow_job(state, job, panel)
    except JobInterrupted:
        yield {panel.status: "Interrupted.", panel.job_id: None}
        return
    yield show_result(state, result, panel)


# -- prompt row ------------------------------------------------------------------------------------------------
@dataclass
class PromptRow:
    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button


def build_prompt_row(tab: str) -> PromptRow:
    with gr.Row(elem_id=f"{tab}_toprow", equal_height=False):
        with gr.Column(scale=6, min_width=400):
            prompt_tokens = gr.HTML("0/75", elem_id=f"{tab}_token_counter", elem_classes=["sdweb-tokens"])
            prompt = gr.Textbox(label="Prompt", show_label=False, lines=3, max_lines=12,
                                placeholder="Prompt (press Ctrl+Enter to generate)", elem_id=f"{tab}_prompt")
            negative_tokens = gr.HTML("0/75", elem_id=f"{tab}_negative_token_counter",
                                      elem_classes=["sdweb-tokens"])
            negative = gr.Textbox(label="Negative prompt", show_label=False, lines=2, max_lines=12,
                                  placeholder="Negative prompt", elem_id=f"{tab}_neg_prompt")
        with gr.Column(scale=1, min_width=180, elem_classes=["sdweb-generate-box"]):
            generate = gr.Button("Generate", variant="primary", size="lg", elem_id=f"{tab}_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", size="sm", elem_id=f"{tab}_interrupt", min_width=60)
                skip = gr.Button("Skip", size="sm", elem_id=f"{tab}_skip", min_width=60)
    for box, counter in ((prompt, prompt_tokens), (negative, negative_tokens)):
        box.change(token_counter_text, inputs=box, outputs=counter, trigger_mode="always_last",
                   show_progress="hidden", api_visibility="private", queue=False)
    return PromptRow(prompt=prompt, negative_prompt=negative, generate=generate, interrupt=interrupt, skip=skip)


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from sdweb.testing.tiny import load_tiny_tokenizer  # the bundled CLIP BPE files, no model needed

    return load_tiny_tokenizer()


def count_tokens(text: str) -> tuple[int, int]:
    """(used, limit) for the counter: extra-network tags removed, the longest scheduled variant counted."""
    from sdweb.prompts.conditioning import token_count
    from sdweb.prompts.parser import parse_extra_networks, prompt_schedules

    stripped, _ = parse_extra_networks(text or "")
    variants = [variant for _, variant in prompt_schedules(stripped, 20)] or [stripped]
    tokenizer = _tokenizer()
    return max((token_count(variant, tokenizer) for variant in variants), key=lambda pair: pair[0])


def token_counter_text(text: str) -> str:
    if len(text or "") > MAX_PROMPT_CHARS:  # never tokenized: Generate refuses it anyway
        return f"over {MAX_PROMPT_CHARS:,} characters"
    try:
        used, limit = count_tokens(text)
    except (OSError, ValueError) as error:  # a missing tokenizer file must not break typing
        log.warning("Token counter unavailable: %s", error)
        return ""
    return f"{used}/{limit}"


def wire_stop_buttons(state: AppState, row: PromptRow, panel: OutputPanel) -> None:
    def interrupt(job_id: str | None) -> None:
        state.queue.interrupt(job_id)

    def skip() -> None:
        state.queue.skip()

    row.interrupt.click(interrupt, inputs=panel.job_id, outputs=None, queue=False, api_visibility="private")
    row.skip.click(skip, inputs=None, outputs=None, queue=False, api_visibility="private")
