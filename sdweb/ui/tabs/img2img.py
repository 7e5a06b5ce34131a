"""The img2img tab: sub-tabs img2img / Sketch / Inpaint / Inpaint sketch / Inpaint upload / Batch, the
shared controls, the extension scripts (outpainting among them) and the output panel."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from sdweb.core.errors import UserError
from sdweb.core.requests import Img2ImgRequest
from sdweb.generation.jobs import JobInterrupted
from sdweb.generation.service import GenerationResult
from sdweb.state import AppState
from sdweb.ui.common import (
    OutputPanel,
    PromptRow,
    build_output_panel,
    collect_fields,
    follow_job,
    make_request,
    run_generation,
    show_result,
    submit_job,
    to_gr_error,
    user_error,
    wire_stop_buttons,
)
from sdweb.ui.controls import cfg_control, refiner_controls, sampler_controls, seed_controls, wire_seed_reuse
from sdweb.ui.gallery_tools import open_folder_allowed, wire_gallery_tools
from sdweb.ui.overrides import build_override_box
from sdweb.ui.prompt_area import PromptArea, build_prompt_area, override_fields
from sdweb.ui.scripts import build_script_inputs
from sdweb.ui.tabs.img2img_inputs import (
    INPAINT_MODES,
    MODES,
    active_image,
    batch_items,
    batch_output_settings,
    img2img_request,
)
from sdweb.ui.tabs.img2img_size import (
    SizeControls,
    detected_size,
    requested_size,
    scale_text,
    size_controls_img2img,
)
from sdweb.ui.tabs.txt2img import GENERATE_CONCURRENCY

__all__ = ["MODES", "INPAINT_MODES", "RESIZE_MODES", "MASK_MODES", "MASKED_CONTENT", "INPAINT_AREAS",
           "Img2ImgTab", "build_img2img_tab"]

TAB = "img2img"
RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")
MASK_MODES = ("Inpaint masked", "Inpaint not masked")
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
INPAINT_AREAS = ("Whole picture", "Only masked")
SKETCH_COLOURS = ["#000000", "#ffffff", "#ff0000", "#00a000", "#0000ff", "#ffff00"]
MASK_BRUSH = "#ffffff99"  # translucent, so the picture shows through the mask (the mask is where alpha > 0)
EDITOR_HEIGHT = 420
BATCH_DISABLED = "Batch processing of folders on the server machine is disabled (--hide-ui-dir-config)."


@dataclass
class Img2ImgTab:
    fields: dict[str, Any]  # request field name -> component
    images: dict[str, Any]  # image inputs and UI-only values by name (mode, init_img, sketch, ...)
    row: PromptRow
    panel: OutputPanel
    tabs: gr.Tabs  # the sub-tabs (ids: MODES)
    inpaint_group: gr.Group  # inpaint-only controls, shown in the inpaint modes
    interrogate: gr.Button  # Interrogate CLIP: fills the prompt from the active sub-tab's image
    area: PromptArea  # prompt row, style editor, Extra Networks panel
    override: gr.Dropdown  # Override settings (chips from pasted parameters)


# -- layout ------------------------------------------------------------------------------------------------------
def _editor(elem_id: str, label: str, colours: list[str], fixed: bool) -> gr.ImageEditor:
    brush = gr.Brush(colors=colours, color_mode="fixed" if fixed else "defaults", default_size=24)
    kind = gr.ImageMask if fixed else gr.ImageEditor
    return kind(label=label, type="pil", format="png", height=EDITOR_HEIGHT, sources=["upload", "clipboard"],
                layers=False, elem_id=elem_id, brush=brush)


def _image_inputs(allow_dirs: bool) -> tuple[dict[str, Any], gr.Tabs, dict[str, gr.Tab]]:
    sub_tabs: dict[str, gr.Tab] = {}
    with gr.Tabs(elem_id="mode_img2img") as tabs:
        with gr.Tab("img2img", id="img2img", elem_id="img2img_img2img_tab") as sub_tabs["img2img"]:
            init_img = gr.Image(label="Image for img2img", type="pil", image_mode="RGBA", format="png",
                                sources=["upload", "clipboard"], height=EDITOR_HEIGHT, elem_id="img2img_image")
        with gr.Tab("Sketch", id="sketch", elem_id="img2img_img2img_sketch_tab") as sub_tabs["sketch"]:
            sketch = _editor("img2img_sketch", "Image for img2img", SKETCH_COLOURS, fixed=False)
        with gr.Tab("Inpaint", id="inpaint", elem_id="img2img_inpaint_tab") as sub_tabs["inpaint"]:
            inpaint = _editor("img2maskimg", "Image for inpainting with mask", [MASK_BRUSH], fixed=True)
        with gr.Tab("Inpaint sketch", id="inpaint_sketch", elem_id="img2img_inpaint_sketch_tab") as \
                sub_tabs["inpaint_sketch"]:
            inpaint_sketch = _editor("inpaint_sketch", "Color sketch inpainting", SKETCH_COLOURS, fixed=False)
        with gr.Tab("Inpaint upload", id="inpaint_upload", elem_id="img2img_inpaint_upload_tab") as \
                sub_tabs["inpaint_upload"], gr.Row():
            inpaint_base = gr.Image(label="Image for img2img", type="pil", image_mode="RGBA", format="png",
                                    sources=["upload", "clipboard"], elem_id="img_inpaint_base")
            inpaint_mask = gr.Image(label="Mask", type="pil", image_mode="RGBA", format="png",
                                    sources=["upload", "clipboard"], elem_id="img_inpaint_mask")
        with gr.Tab("Batch", id="batch", elem_id="img2img_batch_tab") as sub_tabs["batch"]:
            gr.Markdown("Process every image of a folder on the server machine. Leave the output directory "
                        "empty to save to the usual img2img output folder. A mask directory (optional) holds "
                        "masks with the same file names: their images are inpainted.")
            batch_input = gr.Textbox(label="Input directory", visible=allow_dirs, elem_id="img2img_batch_input_dir")
            batch_output = gr.Textbox(label="Output directory", visible=allow_dirs,
                                      elem_id="img2img_batch_output_dir")
            batch_masks = gr.Textbox(label="Inpaint batch mask directory (optional)", visible=allow_dirs,
                                     elem_id="img2img_batch_inpaint_mask_dir")
            if not allow_dirs:
                gr.Markdown(BATCH_DISABLED)
    images = {"init_img": init_img, "sketch": sketch, "inpaint": inpaint, "inpaint_sketch": inpaint_sketch,
              "inpaint_base": inpaint_base, "inpaint_mask": inpaint_mask, "batch_input": batch_input,
              "batch_output": batch_output, "batch_masks": batch_masks}
    return images, tabs, sub_tabs


def _img2img_controls() -> dict[str, Any]:
    resize_mode = gr.Radio(label="Resize mode", choices=list(RESIZE_MODES), value=RESIZE_MODES[0], type="index",
                           elem_id="resize_mode")
    denoising = gr.Slider(label="Denoising strength", minimum=0, maximum=1, step=0.01, value=0.75,
                          elem_id=f"{TAB}_denoising_strength")
    return {"resize_mode": resize_mode, "denoising_strength": denoising}


def _inpaint_controls() -> tuple[dict[str, Any], gr.Group]:
    with gr.Group(visible=False, elem_id="inpaint_controls") as group:
        mask_blur = gr.Slider(label="Mask blur", minimum=0, maximum=64, step=1, value=4, elem_id="img2img_mask_blur")
        mask_mode = gr.Radio(label="Mask mode", choices=list(MASK_MODES), value=MASK_MODES[0], type="index",
                             elem_id="img2img_mask_mode")
        fill = gr.Radio(label="Masked content", choices=list(MASKED_CONTENT), value="original", type="index",
                        elem_id="img2img_inpainting_fill")
        with gr.Row():
            area = gr.Radio(label="Inpaint area", choices=list(INPAINT_AREAS), value=INPAINT_AREAS[0],
                            type="index", elem_id="img2img_inpaint_full_res")
            padding = gr.Slider(label="Only masked padding, pixels", minimum=0, maximum=256, step=4, value=32,
                                elem_id="img2img_inpaint_full_res_padding")
    fields = {"mask_blur": mask_blur, "inpainting_mask_invert": mask_mode, "inpainting_fill": fill,
              "inpaint_full_res": area, "inpaint_full_res_padding": padding}
    return fields, group


def mode_switcher(mode: str):
    """A handler that records the chosen sub-tab and shows the inpaint controls in the inpaint modes."""

    def switch() -> tuple[str, gr.Group]:
        return mode, gr.Group(visible=mode in INPAINT_MODES)

    return switch


# -- handlers ------------------------------------------------------------------------------------------------------
def run_batch_folder(state: AppState, values: dict[str, Any], images: dict[str, Any], panel: OutputPanel
                     ) -> Iterator[dict[Any, Any]]:
    """One job per image of the input folder, run in order; the results are shown together. With an output
    folder each result is named after its input (A1111); unreadable files are listed in the status. The folders
    are refused with --hide-ui-dir-config, and limited to the data folder on a server reachable from others."""
    if state.options.hide_ui_dir_config:
        raise gr.Error(BATCH_DISABLED)
    folders = _batch_folders(state, images)
    folder = batch_items(folders["batch_input"], folders["batch_masks"])
    output_dir = folders["batch_output"]
    fields = dict(values)
    blur = int(fields.pop("mask_blur", 4) or 0)
    several = int(fields.get("n_iter") or 1) * int(fields.get("batch_size") or 1) > 1
    combined = GenerationResult()
    items = folder.items
    for number, item in enumerate(items, start=1):
        overrides = dict(fields.get("override_settings") or {})
        if output_dir:
            overrides.update(batch_output_settings(output_dir, item.source, several))
        request = make_request(Img2ImgRequest, {**fields, "init_images": [item.image], "mask": item.mask,
                                                "mask_blur_x": blur, "mask_blur_y": blur,
                                                "override_settings": overrides})
        job = submit_job(state, "img2img", request)
        try:
            result = yield from follow_job(state, job, panel, label=f"Image {number}/{len(items)} · ")
        except JobInterrupted:
            combined.interrupted = True
            break
        for name in ("images", "infotexts", "seeds", "subseeds", "saved_paths", "warnings"):
            getattr(combined, name).extend(getattr(result, name))
        combined.seconds += result.seconds
        if result.interrupted:
            combined.interrupted = True
            break
    shown = show_result(state, combined, panel)
    if folder.skipped:
        shown[panel.status] = f"{shown[panel.status]} · {folder.skipped_note()}"
    yield shown


def _batch_folders(state: AppState, images: Mapping[str, Any]) -> dict[str, str]:
    """The Batch tab's folders as typed, checked against what this server may read and write ("" if empty)."""
    guard = state.service.output_guard
    checked = {}
    try:
        for key, label in (("batch_input", "Input directory"), ("batch_masks", "Inpaint batch mask directory"),
                           ("batch_output", "Output directory")):
            text = str(images.get(key) or "").strip()
            if text:
                text = str(guard.output_folder(text, label) if key == "batch_output" else
                           guard.input_folder(text, label))
            checked[key] = text
    except UserError as error:
        raise to_gr_error(error) from None
    return checked


def image_to_interrogate(mode: str, images: Mapping[str, Any]) -> Image.Image:
    """The active sub-tab's picture (no mask needed); gr.Error when there is none."""
    image = active_image(mode, images)
    if image is None:
        raise user_error("Interrogate CLIP: put an image in the img2img tab first.")
    return image.convert("RGB")


def interrogate_clip(state: AppState, mode: str, images: Mapping[str, Any]) -> str:
    """A caption for the prompt box, run as a job of the shared queue; gr.Error says which models are missing."""
    job = state.submit_interrogate(image_to_interrogate(mode, images), "clip")
    try:
        return job.wait()
    except Exception as error:  # a UserError (no BLIP / CLIP model) reads as itself, anything else briefly
        raise to_gr_error(error) from None


def build_img2img_tab(state: AppState) -> Img2ImgTab:
    area = build_prompt_area(state, TAB)
    row = area.row
    mode = gr.State("img2img")
    with gr.Row(equal_height=False, elem_id=f"{TAB}_settings_row"):
        with gr.Column(scale=1, variant="panel", elem_id=f"{TAB}_settings"):
            images, tabs, sub_tabs = _image_inputs(not state.options.hide_ui_dir_config)
            with gr.Row():
                interrogate = gr.Button("Interrogate CLIP", size="sm", elem_id="interrogate", scale=0,
                                        min_width=160)
            fields: dict[str, Any] = {"prompt": row.prompt, "negative_prompt": row.negative_prompt,
                                      "styles": row.styles}
            fields.update(_img2img_controls())
            inpaint_fields, inpaint_group = _inpaint_controls()
            fields.update(inpaint_fields)
            fields.update(sampler_controls(TAB))
            size = size_controls_img2img(TAB)
            fields.update(size.fields)
            fields.update(cfg_control(TAB))
            seeds = seed_controls(TAB)
            fields.update(seeds.fields())
            fields["tiling"] = gr.Checkbox(label="Tiling", value=False, elem_id=f"{TAB}_tiling")
            fields.update(refiner_controls(TAB, state.registry.checkpoint_titles()))
            override = build_override_box(TAB)
            scripts = build_script_inputs(state, True, TAB)
        with gr.Column(scale=1, elem_id=f"{TAB}_results"):
            panel = build_output_panel(TAB, open_folder_allowed(state.options))
    images.update({"mode": mode, "resize_tab": size.resize_tab, "scale_by": size.scale_by})
    for name, sub_tab in sub_tabs.items():
        sub_tab.select(mode_switcher(name), inputs=None, outputs=[mode, inpaint_group], queue=False,
                       api_visibility="private")
    wire_seed_reuse(seeds, panel)
    wire_stop_buttons(state, row, panel)
    wire_gallery_tools(state, panel, TAB)
    _wire_size_tools(images, size)

    def generate(values: dict[Any, Any]) -> Iterator[dict[Any, Any]]:
        image_values = collect_fields(images, values)
        chosen = image_values.get("mode") or "img2img"
        field_values = {**collect_fields(fields, values), **override_fields(override, values),
                        **scripts.request_fields(values)}
        if chosen == "batch":
            yield from run_batch_folder(state, field_values, image_values, panel)
            return
        field_values = requested_size(field_values, image_values.get("resize_tab"), image_values.get("scale_by"),
                                      active_image(chosen, image_values))
        request = img2img_request(field_values, chosen, image_values)
        yield from run_generation(state, "img2img", request, panel)

    row.generate.click(generate, inputs=set(fields.values()) | set(images.values()) | scripts.components() | {override},
                       outputs=panel.result_outputs(), show_progress="minimal", show_progress_on=[panel.status],
                       api_visibility="private", concurrency_limit=GENERATE_CONCURRENCY, concurrency_id="generate")

    def on_interrogate(values: dict[Any, Any]) -> str:
        image_values = collect_fields(images, values)
        return interrogate_clip(state, image_values.get("mode") or "img2img", image_values)

    # progress and errors on the status line: an error must not cover the prompt box with a badge
    interrogate.click(on_interrogate, inputs=set(images.values()), outputs=row.prompt, show_progress="minimal",
                      show_progress_on=[panel.status], api_visibility="private",
                      concurrency_limit=GENERATE_CONCURRENCY, concurrency_id="generate")
    return Img2ImgTab(fields=fields, images=images, row=row, panel=panel, tabs=tabs, inpaint_group=inpaint_group,
                      interrogate=interrogate, area=area, override=override)


def _wire_size_tools(images: dict[str, Any], size: SizeControls) -> None:
    """📐 sets width and height from the active sub-tab's image; Resize by shows the size it will give."""
    def auto_size(values: dict[Any, Any]) -> tuple[Any, Any]:
        image_values = collect_fields(images, values)
        detected = detected_size(active_image(image_values.get("mode") or "img2img", image_values))
        if detected is None:
            raise user_error("📐: put an image in the img2img tab first.")
        return detected

    def preview(values: dict[Any, Any]) -> str:
        image_values = collect_fields(images, values)
        return scale_text(active_image(image_values.get("mode") or "img2img", image_values),
                          float(image_values.get("scale_by") or 1.0))

    picture_inputs = set(images.values())
    size.auto_size.click(auto_size, inputs=picture_inputs, outputs=[size.fields["width"], size.fields["height"]],
                         api_visibility="private")
    size.scale_by.change(preview, inputs=picture_inputs, outputs=size.scale_label, show_progress="hidden",
                         trigger_mode="always_last", api_visibility="private")
    for name in ("init_img", "inpaint_base"):
        images[name].change(preview, inputs=picture_inputs, outputs=size.scale_label, show_progress="hidden",
                            api_visibility="private")
