"""The ControlNet accordion's unit tabs; the components' order is units.UI_FIELDS for every unit."""

from __future__ import annotations

from typing import Any

import gradio as gr

from sdweb.builtin_extensions.controlnet.models import ControlNetModels
from sdweb.builtin_extensions.controlnet.preprocessors import PREPROCESSORS
from sdweb.builtin_extensions.controlnet.units import RESIZE_MODES, UNIT_DEFAULTS
from sdweb.extensions.api import CONTROL_MODES


def _unit(index: int, is_img2img: bool, models: ControlNetModels) -> list[Any]:
    tab = "img2img" if is_img2img else "txt2img"
    prefix = f"{tab}_controlnet_unit_{index}"
    with gr.Tab(f"ControlNet Unit {index}", elem_id=f"{prefix}_tab"):
        image = gr.Image(label="Control image" + (" (empty: the img2img image)" if is_img2img else ""),
                         type="pil", sources=["upload", "clipboard"], height=260, elem_id=f"{prefix}_image")
        with gr.Row():
            enabled = gr.Checkbox(label="Enable", value=UNIT_DEFAULTS["enabled"], elem_id=f"{prefix}_enable")
            low_vram = gr.Checkbox(label="Low VRAM", value=UNIT_DEFAULTS["low_vram"], elem_id=f"{prefix}_low_vram")
            pixel_perfect = gr.Checkbox(label="Pixel Perfect", value=UNIT_DEFAULTS["pixel_perfect"], elem_id=f"{prefix}_pixel_perfect")
        with gr.Row():
            module = gr.Dropdown(label="Preprocessor", choices=[p.name for p in PREPROCESSORS if not p.needs_weights],
                                 value=UNIT_DEFAULTS["module"], elem_id=f"{prefix}_preprocessor")
            model = gr.Dropdown(label="Model", choices=models.titles(), value=UNIT_DEFAULTS["model"], elem_id=f"{prefix}_model")
            refresh = gr.Button("🔄", size="sm", scale=0, min_width=40, elem_id=f"{prefix}_refresh_models")
        with gr.Row():
            weight = gr.Slider(label="Control Weight", minimum=0, maximum=2, step=0.05, value=UNIT_DEFAULTS["weight"],
                               elem_id=f"{prefix}_weight")
            start = gr.Slider(label="Starting Control Step", minimum=0, maximum=1, step=0.01, value=UNIT_DEFAULTS["guidance_start"],
                              elem_id=f"{prefix}_guidance_start")
            end = gr.Slider(label="Ending Control Step", minimum=0, maximum=1, step=0.01, value=UNIT_DEFAULTS["guidance_end"],
                            elem_id=f"{prefix}_guidance_end")
        with gr.Row():
            resolution = gr.Slider(label="Preprocessor resolution (-1: default)", minimum=-1, maximum=2048, step=1,
                                   value=UNIT_DEFAULTS["processor_res"], elem_id=f"{prefix}_processor_res")
            threshold_a = gr.Slider(label="Threshold A (-1: default)", minimum=-1, maximum=256, step=1,
                                    value=UNIT_DEFAULTS["threshold_a"], elem_id=f"{prefix}_threshold_a")
            threshold_b = gr.Slider(label="Threshold B (-1: default)", minimum=-1, maximum=256, step=1,
                                    value=UNIT_DEFAULTS["threshold_b"], elem_id=f"{prefix}_threshold_b")
        control_mode = gr.Radio(label="Control Mode", choices=list(CONTROL_MODES), value=UNIT_DEFAULTS["control_mode"],
                                elem_id=f"{prefix}_control_mode")
        resize_mode = gr.Radio(label="Resize Mode", choices=list(RESIZE_MODES), value=UNIT_DEFAULTS["resize_mode"],
                               elem_id=f"{prefix}_resize_mode")

    def refresh_models() -> gr.Dropdown:
        models.refresh()
        return gr.Dropdown(choices=models.titles())

    refresh.click(refresh_models, outputs=model, queue=False, api_visibility="private")
    return [enabled, image, low_vram, pixel_perfect, module, model, weight, start, end, resolution, threshold_a,
            threshold_b, control_mode, resize_mode]


def unit_controls(count: int, is_img2img: bool, models: ControlNetModels) -> list[Any]:
    components: list[Any] = []
    with gr.Tabs():
        for index in range(max(1, count)):
            components += _unit(index, is_img2img, models)
    return components
