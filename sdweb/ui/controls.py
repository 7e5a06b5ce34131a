"""Generation controls shared by txt2img and img2img; each builder returns `{request field name: component}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.samplers.resolve import sampler_names, scheduler_labels
from sdweb.ui.common import OutputPanel

DEFAULT_SAMPLER = "DPM++ 2M"
DEFAULT_SCHEDULER = "Automatic"


def sampler_controls(tab: str) -> dict[str, Any]:
    with gr.Row():
        sampler = gr.Dropdown(label="Sampling method", choices=sampler_names(), value=DEFAULT_SAMPLER,
                              elem_id=f"{tab}_sampling")
        scheduler = gr.Dropdown(label="Schedule type", choices=scheduler_labels(), value=DEFAULT_SCHEDULER,
                                elem_id=f"{tab}_scheduler")
    steps = gr.Slider(label="Sampling steps", minimum=1, maximum=150, step=1, value=20, elem_id=f"{tab}_steps")
    return {"sampler_name": sampler, "scheduler": scheduler, "steps": steps}


MIN_SIDE, MAX_SIDE, SIDE_STEP = 64, 2048, 8


def swap_values(first: float, second: float) -> tuple[float, float]:
    return second, first


def snapped_size(value: Any, minimum: int = MIN_SIDE, maximum: int = MAX_SIDE) -> int | None:
    """The nearest allowed size (a multiple of 8 within the slider's range) when `value` is not one; None when
    it is fine or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return minimum
    snapped = min(maximum, max(minimum, int(number / SIDE_STEP + 0.5) * SIDE_STEP))
    return None if snapped == number else snapped


def size_checker(label: str, minimum: int = MIN_SIDE, maximum: int = MAX_SIDE):
    """A change handler (run without Gradio's range check, which would refuse 7 with a message that names no
    field) that puts a size the model cannot take right at once and says so."""

    def check(value: Any) -> Any:
        fixed = snapped_size(value, minimum, maximum)
        if fixed is None:
            return gr.skip()
        if float(value) < minimum:
            why = f"is below the smallest size, {minimum}"
        elif float(value) > maximum:
            why = f"is above the largest size, {maximum}"
        else:
            why = f"is not a multiple of {SIDE_STEP}"
        gr.Warning(f"{label} {value:g} {why}: it is set to {fixed}." if isinstance(value, int | float)
                   else f"{label}: set to {fixed}.")
        return fixed

    return check


def wire_size_checks(sliders: dict[str, Any], minimum: int = MIN_SIDE, maximum: int = MAX_SIDE) -> None:
    for label, slider in sliders.items():
        # through the queue: gr.Warning reaches the page only from queued events
        slider.change(size_checker(label, minimum, maximum), inputs=slider, outputs=slider, preprocess=False,
                      show_progress="hidden", api_visibility="private")


def width_height(tab: str) -> tuple[gr.Slider, gr.Slider]:
    width = gr.Slider(label="Width", minimum=MIN_SIDE, maximum=MAX_SIDE, step=SIDE_STEP, value=512,
                      elem_id=f"{tab}_width")
    height = gr.Slider(label="Height", minimum=MIN_SIDE, maximum=MAX_SIDE, step=SIDE_STEP, value=512,
                       elem_id=f"{tab}_height")
    wire_size_checks({"Width": width, "Height": height})
    return width, height


def batch_controls(tab: str) -> dict[str, Any]:
    n_iter = gr.Slider(label="Batch count", minimum=1, maximum=100, step=1, value=1, elem_id=f"{tab}_batch_count")
    batch_size = gr.Slider(label="Batch size", minimum=1, maximum=8, step=1, value=1, elem_id=f"{tab}_batch_size")
    return {"n_iter": n_iter, "batch_size": batch_size}


def size_controls(tab: str) -> dict[str, Any]:
    """Width / height with the ⇅ swap button, batch count and batch size."""
    with gr.Row():
        with gr.Column(scale=4, min_width=160):
            width, height = width_height(tab)
        swap = gr.Button("⇅", size="sm", min_width=40, scale=0, elem_id=f"{tab}_res_switch_btn")
        with gr.Column(scale=3, min_width=160):
            batch = batch_controls(tab)
    swap.click(swap_values, inputs=[width, height], outputs=[width, height], queue=False, api_visibility="private")
    return {"width": width, "height": height, **batch}


def cfg_control(tab: str) -> dict[str, Any]:
    cfg = gr.Slider(label="CFG Scale", minimum=1, maximum=30, step=0.5, value=7.0, elem_id=f"{tab}_cfg_scale")
    # Forge's: models with guidance distilled in (Flux dev); shown only for them (ui/family_presets.py)
    distilled = gr.Slider(label="Distilled CFG Scale", minimum=0, maximum=30, step=0.1, value=3.5, visible=False,
                          elem_id=f"{tab}_distilled_cfg_scale")
    return {"cfg_scale": cfg, "distilled_cfg_scale": distilled}


@dataclass
class SeedControls:
    seed: gr.Number
    random_seed: gr.Button
    reuse_seed: gr.Button
    subseed: gr.Number
    random_subseed: gr.Button
    reuse_subseed: gr.Button
    subseed_strength: gr.Slider
    seed_resize_from_w: gr.Slider
    seed_resize_from_h: gr.Slider

    def fields(self) -> dict[str, Any]:
        return {"seed": self.seed, "subseed": self.subseed, "subseed_strength": self.subseed_strength,
                "seed_resize_from_w": self.seed_resize_from_w, "seed_resize_from_h": self.seed_resize_from_h}


def seed_controls(tab: str) -> SeedControls:
    with gr.Row(elem_id=f"{tab}_seed_row"):
        seed = gr.Number(label="Seed", value=-1, precision=0, scale=4, elem_id=f"{tab}_seed")
        random_seed = gr.Button("🎲", size="sm", min_width=40, scale=0, elem_id=f"{tab}_random_seed")
        reuse_seed = gr.Button("♻️", size="sm", min_width=40, scale=0, elem_id=f"{tab}_reuse_seed")
    with gr.Accordion("Extra", open=False, elem_id=f"{tab}_subseed_show"):
        with gr.Row():
            subseed = gr.Number(label="Variation seed", value=-1, precision=0, scale=4, elem_id=f"{tab}_subseed")
            random_subseed = gr.Button("🎲", size="sm", min_width=40, scale=0, elem_id=f"{tab}_random_subseed")
            reuse_subseed = gr.Button("♻️", size="sm", min_width=40, scale=0, elem_id=f"{tab}_reuse_subseed")
            subseed_strength = gr.Slider(label="Variation strength", minimum=0, maximum=1, step=0.01, value=0,
                                         scale=4, elem_id=f"{tab}_subseed_strength")
        with gr.Row():
            resize_w = gr.Slider(label="Resize seed from width", minimum=0, maximum=2048, step=8, value=0,
                                 elem_id=f"{tab}_seed_resize_from_w")
            resize_h = gr.Slider(label="Resize seed from height", minimum=0, maximum=2048, step=8, value=0,
                                 elem_id=f"{tab}_seed_resize_from_h")
    for button, target in ((random_seed, seed), (random_subseed, subseed)):
        button.click(lambda: -1, inputs=None, outputs=target, queue=False, api_visibility="private")
    return SeedControls(seed, random_seed, reuse_seed, subseed, random_subseed, reuse_subseed, subseed_strength,
                        resize_w, resize_h)


def reused_seed(seeds: list[Any] | None, selected: int | None, which: int) -> int:
    """The seed (which=0) or variation seed (which=1) of the selected result image; -1 when there is none."""
    if not seeds:
        return -1
    index = selected if isinstance(selected, int) and 0 <= selected < len(seeds) else 0
    return int(seeds[index][which])


def wire_seed_reuse(seeds: SeedControls, panel: OutputPanel) -> None:
    seeds.reuse_seed.click(lambda pairs, index: reused_seed(pairs, index, 0), inputs=[panel.seeds, panel.selected],
                           outputs=seeds.seed, queue=False, api_visibility="private")
    seeds.reuse_subseed.click(lambda pairs, index: reused_seed(pairs, index, 1),
                              inputs=[panel.seeds, panel.selected], outputs=seeds.subseed, queue=False,
                              api_visibility="private")


def refiner_controls(tab: str, checkpoint_titles: list[str]) -> dict[str, Any]:
    """A1111's Refiner accordion: the checkpoint that finishes the schedule and where it takes over."""
    with gr.Accordion("Refiner", open=False, elem_id=f"{tab}_refiner"), gr.Row():
        checkpoint = gr.Dropdown(label="Checkpoint", choices=["None", *checkpoint_titles], value="None",
                                 elem_id=f"{tab}_refiner_checkpoint", scale=3)
        switch_at = gr.Slider(label="Switch at", minimum=0.01, maximum=1.0, step=0.01, value=0.8,
                              elem_id=f"{tab}_refiner_switch_at", scale=2)
    return {"refiner_checkpoint": checkpoint, "refiner_switch_at": switch_at}
