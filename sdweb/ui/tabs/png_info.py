"""The PNG Info tab: drop an image, read its generation parameters and other metadata."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from sdweb.outputs.save import read_infotext


@dataclass
class PngInfoTab:
    image: gr.Image
    parameters: gr.Textbox
    items: gr.HTML
    send_txt2img: gr.Button
    send_img2img: gr.Button
    send_inpaint: gr.Button
    send_extras: gr.Button


def describe_image(image: Image.Image | None) -> tuple[str, str]:
    """(raw infotext, HTML table of the other metadata items) for the tab."""
    if image is None:
        return "", ""
    infotext, items = read_infotext(image)
    rows = "".join(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(_short(value))}</td></tr>"
                   for key, value in items.items())
    table = f"<table class='sdweb-pnginfo'>{rows}</table>" if rows else ""
    if infotext is None and not rows:
        table = "<p>No generation parameters or other text found in this image.</p>"
    return infotext or "", table


def _short(value: Any, limit: int = 2000) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def build_png_info_tab() -> PngInfoTab:
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            image = gr.Image(label="Source", type="pil", image_mode=None, sources=["upload", "clipboard"],
                             height=480, elem_id="pnginfo_image")
        with gr.Column():
            parameters = gr.Textbox(label="Parameters", lines=6, max_lines=20, interactive=False, buttons=["copy"],
                                    elem_id="pnginfo_generation_info")
            items = gr.HTML("", elem_id="pnginfo_html")
            with gr.Row():
                send_txt2img = gr.Button("Send to txt2img", size="sm", min_width=100, elem_id="pnginfo_send_txt2img")
                send_img2img = gr.Button("Send to img2img", size="sm", min_width=100, elem_id="pnginfo_send_img2img")
                send_inpaint = gr.Button("Send to inpaint", size="sm", min_width=100, elem_id="pnginfo_send_inpaint")
                send_extras = gr.Button("Send to extras", size="sm", min_width=100, elem_id="pnginfo_send_extras")
    image.change(describe_image, inputs=image, outputs=[parameters, items], api_visibility="private")
    return PngInfoTab(image=image, parameters=parameters, items=items, send_txt2img=send_txt2img,
                      send_img2img=send_img2img, send_inpaint=send_inpaint, send_extras=send_extras)
