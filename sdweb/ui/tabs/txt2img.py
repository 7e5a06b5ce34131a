"""The txt2img tab: prompt row, generation controls (left), gallery and info (right)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.hires import LATENT_MODES, PIXEL_RESAMPLERS
from sdweb.state import AppState
from sdweb.ui.common import (
    OutputPanel,
    PromptRow,
    build_output_panel,
    collect_fields,
    make_request,
    marked_choices,
    run_generation,
    wire_stop_buttons,
)
from sdweb.ui.controls import (
    cfg_control,
    refiner_controls,
    sampler_controls,
    seed_controls,
    size_controls,
    wire_seed_reuse,
)
from sdweb.ui.gallery_tools import open_folder_allowed, wire_gallery_tools
from sdweb.ui.overrides import build_override_box
from sdweb.ui.prompt_area import PromptArea, build_prompt_area, override_fields
from sdweb.ui.scripts import build_script_inputs

TAB = "txt2img"
GENERATE_CONCURRENCY = 16  # handlers only poll the job queue; the queue runs one job at a time


@dataclass
class Txt2ImgTab:
    fields: dict[str, Any]  # request field name -> component
    row: PromptRow
    panel: OutputPanel
    area: PromptArea  # prompt row, style editor, Extra Networks panel
    override: gr.Dropdown  # Override settings (chips from pasted parameters)


def hires_upscalers(upscalers: Sequence[str] = tuple(PIXEL_RESAMPLERS)) -> list[str]:
    """The latent modes, then the upscaler registry's names (None, Lanczos, Nearest, then the models)."""
    return [*LATENT_MODES, *(name for name in upscalers if name not in LATENT_MODES)]


def hires_controls(upscalers: Sequence[str] = tuple(PIXEL_RESAMPLERS),
                   problems: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Hires fix controls; `problems` marks upscalers whose file cannot be read (see marked_choices)."""
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{TAB}_hr"):
        enable_hr = gr.Checkbox(label="Enable Hires. fix", value=False, elem_id=f"{TAB}_enable_hr")
        with gr.Row():
            upscaler = gr.Dropdown(label="Upscaler", choices=marked_choices(hires_upscalers(upscalers), problems or {}),
                                   value="Latent",
                                   elem_id=f"{TAB}_hr_upscaler")
            hr_steps = gr.Slider(label="Hires steps", minimum=0, maximum=150, step=1, value=0,
                                 elem_id=f"{TAB}_hires_steps")
            denoising = gr.Slider(label="Denoising strength", minimum=0, maximum=1, step=0.01, value=0.7,
                                  elem_id=f"{TAB}_denoising_strength")
        with gr.Row():
            scale = gr.Slider(label="Upscale by", minimum=1, maximum=4, step=0.05, value=2.0,
                              elem_id=f"{TAB}_hr_scale")
            resize_x = gr.Slider(label="Resize width to", minimum=0, maximum=2048, step=8, value=0,
                                 elem_id=f"{TAB}_hr_resize_x")
            resize_y = gr.Slider(label="Resize height to", minimum=0, maximum=2048, step=8, value=0,
                                 elem_id=f"{TAB}_hr_resize_y")
    return {"enable_hr": enable_hr, "hr_upscaler": upscaler, "hr_second_pass_steps": hr_steps,
            "denoising_strength": denoising, "hr_scale": scale, "hr_resize_x": resize_x, "hr_resize_y": resize_y}


def txt2img_request(values: Mapping[str, Any]) -> Txt2ImgRequest:
    """`{field name: value}` -> the typed request (gr.Error naming the field when a value is bad)."""
    return make_request(Txt2ImgRequest, values)


def build_txt2img_tab(state: AppState) -> Txt2ImgTab:
    area = build_prompt_area(state, TAB)
    row = area.row
    with gr.Row(equal_height=False, elem_id=f"{TAB}_settings_row"):
        with gr.Column(scale=1, variant="panel", elem_id=f"{TAB}_settings"):
            fields: dict[str, Any] = {"prompt": row.prompt, "negative_prompt": row.negative_prompt,
                                      "styles": row.styles}
            fields.update(sampler_controls(TAB))
            upscaler_registry = state.service.postprocess.upscalers
            fields.update(hires_controls(upscaler_registry.names(), upscaler_registry.problems()))
            fields.update(size_controls(TAB))
            fields.update(cfg_control(TAB))
            seeds = seed_controls(TAB)
            fields.update(seeds.fields())
            fields["tiling"] = gr.Checkbox(label="Tiling", value=False, elem_id=f"{TAB}_tiling")
            fields.update(refiner_controls(TAB, state.registry.checkpoint_titles()))
            override = build_override_box(TAB)
            scripts = build_script_inputs(state, False, TAB)
        with gr.Column(scale=1, elem_id=f"{TAB}_results"):
            panel = build_output_panel(TAB, open_folder_allowed(state.options))
    wire_seed_reuse(seeds, panel)
    wire_stop_buttons(state, row, panel)
    wire_gallery_tools(state, panel, TAB)

    def generate(values: dict[Any, Any]) -> Iterator[dict[Any, Any]]:
        request = txt2img_request({**collect_fields(fields, values), **override_fields(override, values),
                                   **scripts.request_fields(values)})
        yield from run_generation(state, "txt2img", request, panel)

    row.generate.click(generate, inputs=set(fields.values()) | scripts.components() | {override},
                       outputs=panel.result_outputs(), show_progress="minimal", show_progress_on=[panel.status],
                       api_name="txt2img", concurrency_limit=GENERATE_CONCURRENCY, concurrency_id="generate")
    return Txt2ImgTab(fields=fields, row=row, panel=panel, area=area, override=override)
