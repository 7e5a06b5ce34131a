"""Shared UI pieces: error conversion, request building by field name, job progress, the output panel.

Handlers stay thin: collect `{field name: value}` from a tab's field dict, build the typed request, submit
it through the job queue, poll the job for progress and previews, show the result.
"""

from __future__ import annotations

import html
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
RESULT_GALLERY_HEIGHT = 520


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


def user_error(message: str, title: str = "Error") -> gr.Error:
    """A gr.Error for something the user can fix: it stays until closed, its text is shown as text (Gradio
    renders the message as HTML), and no traceback goes to the log."""
    return gr.Error(html.escape(message), duration=None, title=title, print_exception=False)


def to_gr_error(error: BaseException) -> gr.Error:
    if isinstance(error, UserError | ValidationError | JobInterrupted):
        return user_error(user_message(error))
    return gr.Error(html.escape(user_message(error)), duration=None, title="Unexpected error",
                    print_exception=False)  # the job's own traceback is logged where it failed


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
    except UserError as error:  # a request validator that names the field in a UserError
        raise to_gr_error(error) from None


# -- progress ----------------------------------------------------------------------------------------------
def progress_text(progress: JobProgress, position: int | None, now: float) -> str:
    """'Waiting in queue (position 2)' or 'Step 5/20 · Batch 1 of 2 · 25% · ETA 3s'.

    The stage (batch of several, hires fix, refiner) is the job's own text, so one image with hires fix reads
    'Hires fix', never 'Batch 2/2'."""
    if position is not None:
        return f"Waiting in queue (position {position + 1})…"
    if progress.started_at is None:
        return "Starting…"
    parts = []
    if progress.sampling_steps:
        parts.append(f"Step {progress.sampling_step}/{progress.sampling_steps}")
    else:
        parts.append("Loading model…")
    if progress.textinfo:
        parts.append(progress.textinfo)
    fraction = progress.fraction()
    parts.append(f"{fraction * 100:.0f}%")
    eta = eta_seconds(progress, now)
    if eta is not None:
        parts.append(f"ETA {eta:.0f}s")
    return " · ".join(parts)


def eta_seconds(progress: JobProgress, now: float) -> float | None:
    """Seconds left, extrapolated from the time taken so far; None until there is enough to go on."""
    fraction = progress.fraction()
    if progress.started_at is None or fraction <= 0.01:
        return None
    elapsed = max(0.0, now - progress.started_at)
    return max(0.0, elapsed / fraction - elapsed)


def progress_bar_html(progress: JobProgress | None, position: int | None, now: float) -> str:
    """A1111's progress bar over the gallery: a filled bar with 'NN% ETA Ns' (or the queue position)."""
    if progress is None:
        return ""
    if position is not None:
        percent, text = 0.0, f"Waiting in queue (position {position + 1})…"
    else:
        percent = progress.fraction() * 100 if progress.started_at is not None else 0.0
        eta = eta_seconds(progress, now)
        text = f"{percent:.0f}%" + (f" ETA {eta:.0f}s" if eta is not None else "")
    return (f"<div class='sdweb-progressbar' role='progressbar' aria-valuemin='0' aria-valuemax='100' "
            f"aria-valuenow='{percent:.0f}'><div class='sdweb-progressbar-fill' style='width:{percent:.1f}%'>"
            f"</div><span class='sdweb-progressbar-text'>{html.escape(text)}</span></div>")


def save_options(state: AppState) -> SaveOptions:
    """What the UI saves: samples per the `samples_save` setting; grids per `grid_save` (checked by the service)."""
    return SaveOptions(save_samples=bool(state.settings.get("samples_save", True)), save_grid=True)


# -- the output panel (gallery, info, progress) ----------------------------------------------------------------
@dataclass
class OutputPanel:
    gallery: gr.Gallery
    info: gr.Textbox
    status: gr.Markdown
    progressbar: gr.HTML  # A1111's bar with percent and ETA, over the top of the gallery
    send_img2img: gr.Button
    send_inpaint: gr.Button
    send_extras: gr.Button
    open_folder: gr.Button  # 📂 (not rendered on an exposed server)
    save: gr.Button  # 💾 to log/images
    save_zip: gr.Button  # 🗃️ the same, plus a zip
    download: gr.File  # what Save / Zip wrote, to download
    job_id: gr.State  # the running job's id (Interrupt targets it)
    infotexts: gr.State  # one per gallery entry
    seeds: gr.State  # (seed, subseed) per gallery entry
    selected: gr.State  # the selected gallery index

    def result_outputs(self) -> list[Any]:
        return [self.gallery, self.info, self.status, self.progressbar, self.job_id, self.infotexts, self.seeds,
                self.selected]


def result_gallery(elem_id: str, height: int = RESULT_GALLERY_HEIGHT) -> gr.Gallery:
    """A1111's result gallery: the chosen image shown whole (preview mode, scaled to fit, never cropped) with
    the others as thumbnails; PNG so the infotext travels with a download."""
    return gr.Gallery(label="Output", show_label=False, format="png", type="pil", columns=4, height=height,
                      object_fit="contain", preview=True, interactive=False, elem_id=elem_id,
                      buttons=["download", "fullscreen"])


def gallery_update(images: list[Any]) -> dict[str, Any]:
    """New results, the first one shown whole (preview mode)."""
    return gr.update(value=images, selected_index=0 if images else None)


def build_output_panel(tab: str, show_open_folder: bool = True) -> OutputPanel:
    with gr.Column(elem_classes=["sdweb-gallery-wrap"], elem_id=f"{tab}_gallery_container"):
        progressbar = gr.HTML("", elem_id=f"{tab}_progressbar", elem_classes=["sdweb-progressbar-box"])
        gallery = result_gallery(f"{tab}_gallery")
    with gr.Row(elem_id=f"{tab}_gallery_buttons", elem_classes=["sdweb-gallery-buttons"]):
        open_folder = _tool("📂", f"{tab}_open_folder", visible=show_open_folder)
        save = _tool("💾", f"{tab}_save")
        save_zip = _tool("🗃️", f"{tab}_save_zip")
        send_img2img = _tool("🖼️", f"{tab}_send_to_img2img")
        send_inpaint = _tool("🎨", f"{tab}_send_to_inpaint")
        send_extras = _tool("📐", f"{tab}_send_to_extras")
    download = gr.File(label="Saved files", file_count="multiple", interactive=False, visible=False,
                       elem_id=f"{tab}_download_files")
    status = gr.Markdown("", elem_id=f"{tab}_progress", elem_classes=["sdweb-status"])
    info = gr.Textbox(label="Generation info", lines=4, max_lines=12, interactive=False, buttons=["copy"],
                      elem_id=f"{tab}_info")
    panel = OutputPanel(gallery=gallery, info=info, status=status, progressbar=progressbar, send_img2img=send_img2img,
                        send_inpaint=send_inpaint, send_extras=send_extras, open_folder=open_folder, save=save,
                        save_zip=save_zip, download=download, job_id=gr.State(None), infotexts=gr.State([]),
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
    parts += [f"ℹ {note}" for note in result.notes]  # what the model ignored or approximated
    return " · ".join(parts)


def follow_job(state: AppState, job: Any, panel: OutputPanel, label: str = "") -> Iterator[dict[Any, Any]]:
    """Stream a submitted job's progress and previews; the generator's return value is its result.

    Raises gr.Error for a failed job and JobInterrupted when it was interrupted before it produced anything."""
    yield {panel.job_id: job.id, panel.status: f"{label}Queued…",
           panel.progressbar: progress_bar_html(job.progress, state.queue.position(job.id), time.time())}
    shown_preview = 0
    while not job.finished.wait(POLL_SECONDS):
        position, now = state.queue.position(job.id), time.time()
        update: dict[Any, Any] = {panel.status: label + progress_text(job.progress, position, now),
                                  panel.progressbar: progress_bar_html(job.progress, position, now)}
        preview = job.progress.preview
        if preview is not None and job.progress.preview_id != shown_preview:
            shown_preview = job.progress.preview_id
            update[panel.gallery] = gallery_update([preview])  # shown whole, as the result will be
        yield update
    if isinstance(job.error, JobInterrupted):
        raise job.error
    if job.error is not None:
        if not isinstance(job.error, UserError | ValidationError):
            log.error("Job %s failed: %s", job.id, job.error)
        yield {panel.status: "", panel.progressbar: "", panel.job_id: None}
        raise to_gr_error(job.error)
    return job.result


def submit_job(state: AppState, kind: str, request: Any, save: SaveOptions | None = None) -> Any:
    try:
        return state.submit(kind, request, save or save_options(state))
    except UserError as error:
        raise to_gr_error(error) from None
    except RuntimeError as error:  # the queue is shut down
        raise user_error(str(error)) from None


def show_result(state: AppState, result: GenerationResult, panel: OutputPanel) -> dict[Any, Any]:
    images, infotexts, seeds = result_entries(result, bool(state.settings.get("return_grid", True)))
    return {panel.gallery: gallery_update(images),
            panel.info: infotexts[0] if infotexts else "", panel.status: finished_status(result),
            panel.progressbar: "", panel.job_id: None, panel.infotexts: infotexts, panel.seeds: seeds,
            panel.selected: 0}


def run_generation(state: AppState, kind: str, request: Any, panel: OutputPanel) -> Iterator[dict[Any, Any]]:
    """Submit through the job queue, stream progress and previews, then show the result (a generator)."""
    job = submit_job(state, kind, request)
    try:
        result: GenerationResult = yield from follow_job(state, job, panel)
    except JobInterrupted:
        yield {panel.status: "Interrupted.", panel.progressbar: "", panel.job_id: None}
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
    paste: gr.Button  # ↙️ read generation parameters from the prompt box (or the last job's params.txt)
    clear: gr.Button  # 🗑️ clear both prompts
    extra_networks: gr.Button  # 🎴 show / hide the Extra Networks panel
    styles: gr.Dropdown  # the selected styles (the request's `styles`)
    apply_styles: gr.Button  # 📋 write the selected styles into the prompts
    edit_styles: gr.Button  # 🖌️ open the style editor


def build_prompt_row(tab: str, style_names: list[str] | None = None) -> PromptRow:
    with gr.Row(elem_id=f"{tab}_toprow", equal_height=False):
        with gr.Column(scale=6, min_width=400):
            prompt_tokens = gr.HTML("0/75", elem_id=f"{tab}_token_counter", elem_classes=["sdweb-tokens"])
            prompt = gr.Textbox(label="Prompt", show_label=False, lines=3, max_lines=12,
                                placeholder="Prompt (press Ctrl+Enter to generate)", elem_id=f"{tab}_prompt")
            negative_tokens = gr.HTML("0/75", elem_id=f"{tab}_negative_token_counter",
                                      elem_classes=["sdweb-tokens"])
            negative = gr.Textbox(label="Negative prompt", show_label=False, lines=2, max_lines=12,
                                  placeholder="Negative prompt", elem_id=f"{tab}_neg_prompt")
        with gr.Column(scale=2, min_width=240, elem_classes=["sdweb-generate-box"]):
            generate = gr.Button("Generate", variant="primary", size="lg", elem_id=f"{tab}_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", size="sm", elem_id=f"{tab}_interrupt", min_width=60)
                skip = gr.Button("Skip", size="sm", elem_id=f"{tab}_skip", min_width=60)
            with gr.Row(elem_id=f"{tab}_tools", elem_classes=["sdweb-tools"]):
                paste = _tool("↙️", f"paste_{tab}")
                clear = _tool("🗑️", f"{tab}_clear_prompt")
                extra_networks = _tool("🎴", f"{tab}_extra_networks")
                apply_styles = _tool("📋", f"{tab}_style_apply")
                edit_styles = _tool("🖌️", f"{tab}_style_edit")
            styles = gr.Dropdown(label="Styles", choices=list(style_names or []), value=[], multiselect=True,
                                 elem_id=f"{tab}_styles")
    for box, counter in ((prompt, prompt_tokens), (negative, negative_tokens)):
        box.change(token_counter_text, inputs=box, outputs=counter, trigger_mode="always_last",
                   show_progress="hidden", api_visibility="private", queue=False)
    clear.click(lambda: ("", ""), inputs=None, outputs=[prompt, negative], queue=False, api_visibility="private")
    return PromptRow(prompt=prompt, negative_prompt=negative, generate=generate, interrupt=interrupt, skip=skip,
                     paste=paste, clear=clear, extra_networks=extra_networks, styles=styles,
                     apply_styles=apply_styles, edit_styles=edit_styles)


# Hover text of the icon buttons (A1111's wording), by a part of their elem_id, checked in this order; the page
# script sets them as title attributes (Gradio buttons have no title argument).
TOOL_TITLES = {
    "paste_": "Read generation parameters from prompt or last generation if prompt is empty into user interface.",
    "_clear_prompt": "Clear prompt", "_extra_networks": "Show/hide extra networks",
    "_style_apply": "Apply all selected styles to prompts.", "_style_edit": "Edit styles",
    "_open_folder": "Open images output directory",
    "_save_zip": "Save all images in a zip archive (in log/images)",
    "_save": "Save the selected image to log/images, with a row in log.csv",
    "_send_to_img2img": "Send image and generation parameters to img2img tab.",
    "_send_to_inpaint": "Send image and generation parameters to img2img inpaint tab.",
    "_send_to_extras": "Send image and generation parameters to extras tab.",
    "_detect_image_size_btn": "Auto detect size from img2img", "_res_switch_btn": "Switch width/height",
    "_random_": "Set seed to -1, which will cause a new random number to be used every time",
    "_reuse_": "Reuse seed from last generation", "refresh": "Refresh",
}


def _tool(icon: str, elem_id: str, visible: bool = True) -> gr.Button:
    return gr.Button(icon, size="sm", min_width=36, scale=0, elem_id=elem_id, elem_classes=["sdweb-tool"],
                     visible=visible)


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from sdweb.models.build_lock import import_lazy_packages

    import_lazy_packages()  # a first Generate may be importing diffusers in a worker now (models/build_lock.py)
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
