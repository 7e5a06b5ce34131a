"""The img2img tab: sub-tabs img2img / Sketch / Inpaint / Inpaint upload, the same controls and output panel."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from sdweb.core.requests import Img2ImgRequest
from sdweb.state import AppState
from sdweb.ui.common import (
    OutputPanel,
    PromptRow,
    build_output_panel,
    build_prompt_row,
    collect_fields,
    make_request,
    run_generation,
    wire_stop_buttons,
)
from sdweb.ui.controls import cfg_control, sampler_controls, seed_controls, size_controls, wire_seed_reuse
from sdweb.ui.tabs.txt2img import GENERATE_CONCURRENCY

TAB = "img2img"
MODES = ("img2img", "sketch", "inpaint", "inpaint_upload")
MODE_LABELS = {"img2img": "img2img", "sketch": "Sketch", "inpaint": "Inpaint", "inpaint_upload": "Inpaint upload"}
INPAINT_MODES = ("inpaint", "inpaint_upload")
RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")
MASK_MODES = ("Inpaint masked", "Inpaint not masked")
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
INPAINT_AREAS = ("Whole picture", "Only masked")
SKETCH_COLOURS = ["#000000", "#ffffff", "#ff0000", "#00a000", "#0000ff", "#ffff00"]


@dataclass
class Img2ImgTab:
    fields: dict[str, Any]  # request field name -> component
    images: dict[str, Any]  # image inputs and UI-only values by name (mode, init_img, sketch, ...)
    row: PromptRow
    panel: OutputPanel
    tabs: gr.Tabs  # the sub-tabs (ids: MODES)
    inpaint_group: gr.Group  # inpaint-only controls, shown in the inpaint modes


# -- pure helpers (tested without a browser) -------------------------------------------------------------------
def mask_from_editor(value: Mapping[str, Any] | None) -> Image.Image | None:
    """The painted mask of an ImageMask value: white where any layer's alpha > 0, at the background's size."""
    if not value:
        return None
    layers = [layer for layer in (value.get("layers") or []) if layer is not None]
    background = value.get("background")
    painted = None
    for layer in layers:
        alpha = np.asarray(layer.convert("RGBA"))[..., 3] > 0
        painted = alpha if painted is None or painted.shape != alpha.shape else painted | alpha
    if painted is None or not painted.any():
        return None
    mask = Image.fromarray(painted.astype(np.uint8) * 255, mode="L")
    if background is not None and mask.size != background.size:
        mask = mask.resize(background.size, Image.Resampling.NEAREST)
    return mask


def _rgb(image: Image.Image | None) -> Image.Image | None:
    return None if image is None else image.convert("RGB")


def images_for_mode(mode: str, images: Mapping[str, Any]) -> tuple[Image.Image, Image.Image | None]:
    """(init image, mask or None) from the active sub-tab; gr.Error when the user has not given enough."""
    if mode == "sketch":
        sketch = images.get("sketch") or {}
        init = _rgb(sketch.get("composite") or sketch.get("background"))
        if init is None:
            raise gr.Error("Upload or draw an image in the Sketch tab first.")
        return init, None
    if mode == "inpaint":
        editor = images.get("inpaint") or {}
        init = _rgb(editor.get("background"))
        if init is None:
            raise gr.Error("Upload an image in the Inpaint tab first.")
        mask = mask_from_editor(editor)
        if mask is None:
            raise gr.Error("Paint the area to change on the image in the Inpaint tab (the mask is empty).")
        return init, mask
    if mode == "inpaint_upload":
        init, mask = _rgb(images.get("inpaint_base")), images.get("inpaint_mask")
        if init is None or mask is None:
            raise gr.Error("Inpaint upload needs both an image and a mask.")
        return init, mask
    init = _rgb(images.get("init_img"))
    if init is None:
        raise gr.Error("Upload an image in the img2img tab first.")
    return init, None


def img2img_request(values: Mapping[str, Any], mode: str, images: Mapping[str, Any]) -> Img2ImgRequest:
    """`{field name: value}` + the active sub-tab's images -> the typed request."""
    init, mask = images_for_mode(mode, images)
    fields = dict(values)
    blur = fields.pop("mask_blur", 4)
    if mode not in INPAINT_MODES:
        mask = None
    fields.update({"init_images": [init], "mask": mask, "mask_blur_x": blur, "mask_blur_y": blur})
    return make_request(Img2ImgRequest, fields)


# -- layout ------------------------------------------------------------------------------------------------------
def _image_inputs() -> tuple[dict[str, Any], gr.Tabs, dict[str, gr.Tab]]:
    with gr.Tabs(elem_id="mode_img2img") as tabs:
        with gr.Tab("img2img", id="img2img", elem_id="img2img_img2img_tab") as tab_img:
            init_img = gr.Image(label="Image for img2img", type="pil", image_mode="RGBA", format="png",
                                sources=["upload", "clipboard"], height=420, elem_id="img2img_image")
        with gr.Tab("Sketch", id="sketch", elem_id="img2img_img2img_sketch_tab") as tab_sketch:
            sketch = gr.ImageEditor(label="Image for img2img", type="pil", format="png", height=420,
                                    sources=["upload", "clipboard"], layers=False, elem_id="img2img_sketch",
                                    brush=gr.Brush(colors=SKETCH_COLOURS, color_mode="defaults"))
        with gr.Tab("Inpaint", id="inpaint", elem_id="img2img_inpaint_tab") as tab_inpaint:
            inpaint = gr.ImageMask(label="Image for inpainting with mask", type="pil", format="png", height=420,
                                   sources=["upload", "clipboard"], layers=False, elem_id="img2maskimg",
                                   brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=24))
        with gr.Tab("Inpaint upload", id="inpaint_upload", elem_id="img2img_inpaint_upload_tab") as tab_upload, \
                gr.Row():
                inpaint_base = gr.Image(label="Image for img2img", type="pil", image_mode="RGBA", format="png",
                                        sources=["upload", "clipboard"], elem_id="img_inpaint_base")
                inpaint_mask = gr.Image(label="Mask", type="pil", image_mode="RGBA", format="png",
                                        sources=["upload", "clipboard"], elem_id="img_inpaint_mask")
    images = {"init_img": init_img, "sketch": sketch, "inpaint": inpaint, "inpaint_base": inpaint_base,
              "inpaint_mask": inpaint_mask}
    sub_tabs = {"img2img": tab_img, "sketch": tab_sketch, "inpaint": tab_inpaint, "inpaint_upload": tab_upload}
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


def build_img2img_tab(state: AppState) -> Img2ImgTab:
    row = build_prompt_row(TAB)
    mode = gr.State("img2img")
    with gr.Row(equal_height=False, elem_id=f"{TAB}_settings_row"):
        with gr.Column(scale=1, variant="panel", elem_id=f"{TAB}_settings"):
            images, tabs, sub_tabs = _image_inputs()
            fields: dict[str, Any] = {"prompt": row.prompt, "negative_prompt": row.negative_prompt}
            fields.update(_img2img_controls())
            inpaint_fields, inpaint_group = _inpaint_controls()
            fields.update(inpaint_fields)
            fields.update(sampler_controls(TAB))
            fields.update(size_controls(TAB))
            fields.update(cfg_control(TAB))
            seeds = seed_controls(TAB)
            fields.update(seeds.fields())
            fields["tiling"] = gr.Checkbox(label="Tiling", value=False, elem_id=f"{TAB}_tiling")
        with gr.Column(scale=1, elem_id=f"{TAB}_results"):
            panel = build_output_panel(TAB)
    images["mode"] = mode
    for name, sub_tab in sub_tabs.items():
        sub_tab.select(mode_switcher(name), inputs=None, outputs=[mode, inpaint_group], queue=False,
                       api_visibility="private")
    wire_seed_reuse(seeds, panel)
    wire_stop_buttons(state, row, panel)

    def generate(values: dict[Any, Any]) -> Iterator[dict[Any, Any]]:
        image_values = collect_fields(images, values)
        request = img2img_request(collect_fields(fields, values), image_values.get("mode") or "img2img",
                                  image_values)
        yield from run_generation(state, "img2img", request, panel)

    row.generate.click(generate, inputs=set(fields.values()) | set(images.values()),
                       outputs=panel.result_outputs(), show_progress="minimal", show_progress_on=[panel.status],
                       api_visibility="private", concurrency_limit=GENERATE_CONCURRENCY, concurrency_id="generate")
    return Img2ImgTab(fields=fields, images=images, row=row, panel=panel, tabs=tabs, inpaint_group=inpaint_group)
