"""img2img's size controls as A1111: "Resize to" (width, height, ⇅ swap, 📐 the input image's own size) and
"Resize by" (a scale of the input image, with the size it gives shown), then batch count and size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from sdweb.ui.controls import MAX_SIDE, MIN_SIDE, SIDE_STEP, batch_controls, swap_values, width_height

RESIZE_TABS = ("resize_to", "resize_by")


@dataclass
class SizeControls:
    fields: dict[str, Any]  # width, height, n_iter, batch_size
    resize_tab: gr.State  # "resize_to" / "resize_by"
    scale_by: gr.Slider
    scale_label: gr.Markdown
    auto_size: gr.Button  # 📐


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """A1111's Resize by: each side times the scale, down to a multiple of 8, kept within 64..2048."""
    return tuple(min(MAX_SIDE, max(MIN_SIDE, int(side * scale) // SIDE_STEP * SIDE_STEP))  # type: ignore[return-value]
                 for side in size)


def detected_size(image: Image.Image | None) -> tuple[int, int] | None:
    """📐: the image's own size, to the nearest multiple of 8 within 64..2048."""
    if image is None:
        return None
    return tuple(min(MAX_SIDE, max(MIN_SIDE, int(side / SIDE_STEP + 0.5) * SIDE_STEP))  # type: ignore[return-value]
                 for side in image.size)


def scale_text(image: Image.Image | None, scale: float) -> str:
    if image is None:
        return "Resize by: put an image in the img2img tab to see the size."
    width, height = scaled_size(image.size, scale)
    return f"Resize: from {image.width}x{image.height} to {width}x{height}"


def size_controls_img2img(tab: str) -> SizeControls:
    with gr.Tabs(elem_id=f"{tab}_tabs_resize"):
        with gr.Tab("Resize to", id="resize_to", elem_id=f"{tab}_tab_resize_to") as to_tab, gr.Row():
            with gr.Column(scale=4, min_width=160):
                width, height = width_height(tab)
            with gr.Column(scale=0, min_width=44):
                swap = gr.Button("⇅", size="sm", min_width=40, elem_id=f"{tab}_res_switch_btn")
                auto_size = gr.Button("📐", size="sm", min_width=40, elem_id=f"{tab}_detect_image_size_btn")
        with gr.Tab("Resize by", id="resize_by", elem_id=f"{tab}_tab_resize_by") as by_tab:
            scale_by = gr.Slider(label="Scale", minimum=0.05, maximum=4.0, step=0.05, value=1.0,
                                 elem_id=f"{tab}_scale")
            scale_label = gr.Markdown("", elem_id=f"{tab}_scale_resolution_preview")
    with gr.Row():
        batch = batch_controls(tab)
    resize_tab = gr.State(RESIZE_TABS[0])
    for sub_tab, name in ((to_tab, RESIZE_TABS[0]), (by_tab, RESIZE_TABS[1])):
        sub_tab.select(lambda name=name: name, inputs=None, outputs=resize_tab, queue=False,
                       api_visibility="private")
    swap.click(swap_values, inputs=[width, height], outputs=[width, height], queue=False, api_visibility="private")
    return SizeControls(fields={"width": width, "height": height, **batch}, resize_tab=resize_tab,
                        scale_by=scale_by, scale_label=scale_label, auto_size=auto_size)


def requested_size(values: Mapping[str, Any], resize_tab: str | None, scale: float | None,
                   image: Image.Image | None) -> dict[str, Any]:
    """The request's width and height: as typed, or the input image scaled (Resize by)."""
    if resize_tab != RESIZE_TABS[1] or image is None:
        return dict(values)
    width, height = scaled_size(image.size, float(scale or 1.0))
    return {**values, "width": width, "height": height}
