"""The Extras tab: upscale and restore faces of existing images (one image, an uploaded batch, or a folder on
the server), as A1111's Extras tab.

The Generate handler builds an ExtrasRequest by field name and runs it as an "extras" job of the shared job
queue (so it waits for a running generation rather than sharing the GPU). Results are saved by the
postprocess service to outputs/extras-images (atomically; the source's infotext kept, A1111's
postprocessing keys added) and shown in the gallery with their infotext.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from sdweb.generation.jobs import JobInterrupted
from sdweb.postprocess.extras import ExtrasInput, ExtrasRequest
from sdweb.state import AppState, ExtrasJob
from sdweb.ui.common import (
    POLL_SECONDS,
    collect_fields,
    gallery_update,
    make_request,
    marked_choices,
    result_gallery,
    to_gr_error,
    user_error,
    user_message,
)
from sdweb.ui.controls import swap_values
from sdweb.ui.tabs.txt2img import GENERATE_CONCURRENCY

__all__ = ["MODES", "ExtrasTab", "build_extras_tab", "extras_job", "info_html"]

TAB = "extras"
MODES = ("single_image", "batch_process", "batch_from_directory")
RESIZE_TABS = {"scale_by": 0, "scale_to": 1}  # sub-tab id -> ExtrasRequest.resize_mode


@dataclass
class ExtrasTab:
    fields: dict[str, Any]  # ExtrasRequest field name -> component (resize_mode is a State)
    inputs: dict[str, Any]  # mode (State), image, files, input_dir, output_dir
    tabs: gr.Tabs  # Single Image / Batch Process / Batch from Directory (ids: MODES)
    gallery: gr.Gallery
    info: gr.HTML
    status: gr.Markdown
    generate: Callable[[dict[Any, Any]], Iterator[dict[Any, Any]]]  # the Generate handler
    refresh: Callable[[str | None, str | None], tuple[Any, Any]]  # the upscaler list refresh handler
    interrupt: Callable[[str | None], None]  # stops the tab's job after the image it is working on
    job_id: gr.State  # the id of the tab's last job (the Interrupt button's input)
    send_img2img: gr.Button
    send_inpaint: gr.Button
    selected: gr.State  # the selected gallery index


# -- pure helpers ------------------------------------------------------------------------------------------------
def info_html(infotext: str | None, postprocess: str | None, notes: list[str] | None = None) -> str:
    """The info box: the source's generation parameters, then the postprocessing keys, then any notes."""
    parts = [f"<p>{html.escape(text).replace(chr(10), '<br>')}</p>" for text in (infotext, postprocess) if text]
    parts += [f"<p class='sdweb-note'>{html.escape(note)}</p>" for note in notes or []]
    return "<div class='sdweb-extras-info'>" + "".join(parts) + "</div>" if parts else ""


def _open_upload(item: Any) -> ExtrasInput:
    """An uploaded file (a path, or Gradio's file object) as an input that keeps its name and metadata."""
    path = Path(str(getattr(item, "name", None) or getattr(item, "path", None) or item))
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened.copy()
            image.info = dict(opened.info)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise user_error(f"Batch Process: {path.name} is not a readable image ({error}).") from None
    return ExtrasInput(image, path.name)


def extras_job(request: ExtrasRequest, inputs: Mapping[str, Any], allow_dirs: bool = True) -> ExtrasJob:
    """The queue job for the active sub-tab's inputs; gr.Error naming what is missing."""
    mode = inputs.get("mode") or MODES[0]
    if mode == "batch_from_directory":
        if not allow_dirs:
            raise user_error("Batch from Directory is disabled on this server (--hide-ui-dir-config).")
        input_dir = str(inputs.get("input_dir") or "").strip()
        if not input_dir:
            raise user_error("Input directory: type the path of a folder of images on the server machine.")
        folder = Path(input_dir).expanduser()
        if not folder.is_dir():
            raise user_error(f"Input directory {input_dir!r} does not exist or is not a folder.")
        output_dir = str(inputs.get("output_dir") or "").strip()
        return ExtrasJob(request, save=True, input_dir=folder,
                         output_dir=Path(output_dir).expanduser() if output_dir else None)
    request = request.model_copy(update={"show_extras_results": True})  # the checkbox belongs to the folder tab
    if mode == "batch_process":
        files = inputs.get("files") or []
        if not files:
            raise user_error("Batch Process: drop one or more images first.")
        return ExtrasJob(request, tuple(_open_upload(item) for item in files), save=True)
    image = inputs.get("image")
    if image is None:
        raise user_error("Single Image: upload an image first.")
    return ExtrasJob(request, (ExtrasInput(image),), save=True)


def _progress_text(job: Any, position: int | None) -> str:
    if position is not None:
        return f"Waiting in queue (position {position + 1})…"
    steps = job.progress.sampling_steps
    if not steps:
        return "Starting…"
    return f"Processing image {min(job.progress.sampling_step + 1, steps)}/{steps}…"


def _entry_infos(result: Any) -> list[str]:
    """One info box per gallery image (its source infotext and postprocessing text)."""
    return [info_html(image.info.get("parameters"), image.info.get("postprocessing")) for image in result.images]


def _finished_status(result: Any, seconds: float) -> str:
    saved = len(result.saved_paths)
    where = f" to {result.saved_paths[0].parent}" if saved else ""
    return f"Time taken: {seconds:.1f} s · {saved} file{'s' if saved != 1 else ''} saved{where}"


# -- layout ------------------------------------------------------------------------------------------------------
def _input_tabs(allow_dirs: bool) -> tuple[dict[str, Any], gr.Tabs, dict[str, gr.Tab]]:
    sub_tabs: dict[str, gr.Tab] = {}
    with gr.Tabs(elem_id="mode_extras") as tabs:
        with gr.Tab("Single Image", id=MODES[0], elem_id="extras_single_tab") as sub_tabs[MODES[0]]:
            image = gr.Image(label="Source", type="pil", image_mode=None, format="png", height=400,
                             sources=["upload", "clipboard"], elem_id="extras_image")
        with gr.Tab("Batch Process", id=MODES[1], elem_id="extras_batch_process_tab") as sub_tabs[MODES[1]]:
            files = gr.File(label="Batch Process", file_count="multiple", file_types=["image"], type="filepath",
                            elem_id="extras_image_batch")
        with gr.Tab("Batch from Directory", id=MODES[2], elem_id="extras_batch_directory_tab") as \
                sub_tabs[MODES[2]]:
            input_dir = gr.Textbox(label="Input directory", visible=allow_dirs, elem_id="extras_batch_input_dir",
                                   placeholder="A directory on the same machine where the server is running.")
            output_dir = gr.Textbox(label="Output directory", visible=allow_dirs, elem_id="extras_batch_output_dir",
                                    placeholder="Leave blank to save images to the default path.")
            show_results = gr.Checkbox(label="Show result images", value=True,
                                       elem_id="extras_show_extras_results")
            if not allow_dirs:
                gr.Markdown("Folder processing is disabled on this server (--hide-ui-dir-config).")
    inputs = {"mode": gr.State(MODES[0]), "image": image, "files": files, "input_dir": input_dir,
              "output_dir": output_dir}
    return {**inputs, "show_extras_results": show_results}, tabs, sub_tabs


def _upscale_controls(upscalers: list[str | tuple[str, str]]) -> tuple[dict[str, Any], gr.Button, dict[str, gr.Tab]]:
    resize_tabs: dict[str, gr.Tab] = {}
    with gr.Accordion("Upscale", open=True, elem_id="extras_upscale"):
        with gr.Tabs(elem_id="extras_resize_mode"):
            with gr.Tab("Scale by", id="scale_by", elem_id="extras_scale_by_tab") as resize_tabs["scale_by"], \
                    gr.Row():
                resize = gr.Slider(label="Resize", minimum=1, maximum=8, step=0.05, value=4, scale=3,
                                   elem_id="extras_upscaling_resize")
                max_side = gr.Number(label="Max side length", info="0 = no limit", value=0, minimum=0,
                                     maximum=16384, precision=0, scale=1, min_width=160,
                                     elem_id="extras_upscale_max_side_length")
            with gr.Tab("Scale to", id="scale_to", elem_id="extras_scale_to_tab") as resize_tabs["scale_to"], \
                    gr.Row():
                with gr.Column(scale=4, min_width=160):
                    width = gr.Slider(label="Width", minimum=64, maximum=8192, step=8, value=512,
                                      elem_id="extras_upscaling_resize_w")
                    height = gr.Slider(label="Height", minimum=64, maximum=8192, step=8, value=512,
                                       elem_id="extras_upscaling_resize_h")
                swap = gr.Button("⇅", size="sm", min_width=40, scale=0, elem_id="upscaling_dimensions_swap")
                crop = gr.Checkbox(label="Crop to fit", value=True, scale=1, min_width=120,
                                   elem_id="extras_upscaling_crop")
        with gr.Row(equal_height=False, elem_id="extras_upscaler_row"):
            upscaler_1 = gr.Dropdown(label="Upscaler 1", choices=upscalers, value="None", scale=4,
                                     elem_id="extras_upscaler_1")
            upscaler_2 = gr.Dropdown(label="Upscaler 2", choices=upscalers, value="None", scale=4,
                                     elem_id="extras_upscaler_2")
            refresh = gr.Button("🔄", size="sm", min_width=40, scale=0, elem_id="extras_refresh_upscalers")
        visibility_2 = gr.Slider(label="Upscaler 2 visibility", minimum=0, maximum=1, step=0.001, value=0,
                                 elem_id="extras_upscaler_2_visibility")
    swap.click(swap_values, inputs=[width, height], outputs=[width, height], queue=False, api_visibility="private")
    fields = {"resize_mode": gr.State(0), "upscaling_resize": resize, "max_side_length": max_side,
              "upscaling_resize_w": width, "upscaling_resize_h": height, "upscaling_crop": crop,
              "upscaler_1": upscaler_1, "upscaler_2": upscaler_2, "extras_upscaler_2_visibility": visibility_2}
    return fields, refresh, resize_tabs


def _face_controls() -> dict[str, Any]:
    with gr.Accordion("Restore faces", open=True, elem_id="extras_face_restoration"):
        gfpgan = gr.Slider(label="GFPGAN visibility", minimum=0, maximum=1, step=0.001, value=0,
                           elem_id="extras_gfpgan_visibility")
        codeformer = gr.Slider(label="CodeFormer visibility", minimum=0, maximum=1, step=0.001, value=0,
                               elem_id="extras_codeformer_visibility")
        weight = gr.Slider(label="CodeFormer weight", info="0 = maximum effect, 1 = minimum effect", minimum=0,
                           maximum=1, step=0.001, value=0, elem_id="extras_codeformer_weight")
        upscale_first = gr.Checkbox(label="Upscale before restoring faces", value=False,
                                    elem_id="extras_upscale_before_face_fix")
    return {"gfpgan_visibility": gfpgan, "codeformer_visibility": codeformer, "codeformer_weight": weight,
            "upscale_first": upscale_first}


# -- the tab -----------------------------------------------------------------------------------------------------
def build_extras_tab(state: AppState) -> ExtrasTab:
    registry = state.service.postprocess.upscalers
    allow_dirs = not state.options.hide_ui_dir_config
    with gr.Row(equal_height=False, elem_id=f"{TAB}_settings_row"):
        with gr.Column(scale=1, variant="panel", elem_id=f"{TAB}_settings"):
            inputs, tabs, sub_tabs = _input_tabs(allow_dirs)
            fields, refresh_button, resize_tabs = _upscale_controls(marked_choices(registry.names(),
                                                                                   registry.problems()))
            fields.update(_face_controls())
        with gr.Column(scale=1, elem_id=f"{TAB}_results"):
            with gr.Row():
                generate_button = gr.Button("Generate", variant="primary", size="lg", elem_id="extras_generate",
                                            scale=3)
                interrupt_button = gr.Button("Interrupt", size="lg", elem_id="extras_interrupt", scale=1)
            status = gr.Markdown("", elem_id=f"{TAB}_progress", elem_classes=["sdweb-status"])
            gallery = result_gallery("extras_gallery", height=480)
            with gr.Row(elem_id="extras_gallery_buttons"):
                send_img2img = gr.Button("🖼️", size="sm", min_width=36, scale=0, elem_id="extras_send_to_img2img",
                                         elem_classes=["sdweb-tool"])
                send_inpaint = gr.Button("🎨", size="sm", min_width=36, scale=0, elem_id="extras_send_to_inpaint",
                                         elem_classes=["sdweb-tool"])
            info = gr.HTML("", elem_id="html_info_extras")
    fields["show_extras_results"] = inputs.pop("show_extras_results")
    infos = gr.State([])
    job_id = gr.State(None)
    selected = gr.State(0)
    for name, sub_tab in sub_tabs.items():
        sub_tab.select(_constant(name), inputs=None, outputs=inputs["mode"], queue=False, api_visibility="private")
    for name, resize_tab in resize_tabs.items():
        resize_tab.select(_constant(RESIZE_TABS[name]), inputs=None, outputs=fields["resize_mode"], queue=False,
                          api_visibility="private")

    def generate(values: dict[Any, Any]) -> Iterator[dict[Any, Any]]:
        request = make_request(ExtrasRequest, collect_fields(fields, values))
        job = state.submit_extras(extras_job(request, collect_fields(inputs, values), allow_dirs))
        started = time.monotonic()
        yield {status: "Queued…", gallery: [], info: "", job_id: job.id}
        while not job.finished.wait(POLL_SECONDS):
            yield {status: _progress_text(job, state.queue.position(job.id))}
        if job.error is not None:
            yield {status: user_message(job.error) if isinstance(job.error, JobInterrupted) else ""}
            raise to_gr_error(job.error)
        result = job.result
        entries = _entry_infos(result)
        shown = entries[0] if entries else info_html(None, result.infotexts[-1] if result.infotexts else None)
        if result.notes:
            shown += info_html(None, None, result.notes)
        yield {gallery: gallery_update(result.images), info: shown,
               infos: entries, selected: 0, status: _finished_status(result, time.monotonic() - started)}

    def refresh(first: str | None, second: str | None) -> tuple[Any, Any]:
        names = registry.names()  # the registry rescans the model folders
        choices = marked_choices(names, registry.problems())
        return tuple(gr.Dropdown(choices=choices, value=value if value in names else "None")
                     for value in (first, second))

    def interrupt(current: str | None) -> None:
        if current is not None:
            state.queue.interrupt(current)

    generate_button.click(generate, inputs=set(fields.values()) | set(inputs.values()),
                          outputs=[gallery, info, infos, status, job_id, selected], show_progress="minimal", show_progress_on=[status],
                          api_visibility="private", concurrency_limit=GENERATE_CONCURRENCY,
                          concurrency_id="generate")
    interrupt_button.click(interrupt, inputs=job_id, outputs=None, queue=False, api_visibility="private")
    upscaler_dropdowns = [fields["upscaler_1"], fields["upscaler_2"]]
    refresh_button.click(refresh, inputs=upscaler_dropdowns, outputs=upscaler_dropdowns, api_visibility="private")
    gallery.select(_on_select, inputs=infos, outputs=[info, selected], api_visibility="private", queue=False)
    return ExtrasTab(fields=fields, inputs=inputs, tabs=tabs, gallery=gallery, info=info, status=status,
                     generate=generate, refresh=refresh, interrupt=interrupt, job_id=job_id,
                     send_img2img=send_img2img, send_inpaint=send_inpaint, selected=selected)


def _constant(value: Any) -> Callable[[], Any]:
    """A handler that records which sub-tab was chosen."""
    def chosen() -> Any:
        return value

    return chosen


def _on_select(infos: list[str], evt: gr.SelectData) -> tuple[Any, int]:
    index = evt.index if isinstance(evt.index, int) else 0
    return (infos[index] if 0 <= index < len(infos or []) else gr.skip()), index
