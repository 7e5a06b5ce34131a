"""X/Y/Z plot (A1111's scripts/xyz_grid.py): one image per combination of up to three axes' values, laid out
in a labelled grid that is saved (xyz_grid-NNNN.png) with the first image's infotext and the axes' keys.

`script_args` in A1111's order: x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown,
z_type, z_values, z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds,
vary_seeds_x, vary_seeds_y, vary_seeds_z, margin_size, csv_mode. Axis types are A1111's indexes for the tab
(or labels). The result: the grid first (then sub-grids, then the images when asked), as A1111.
"""

from __future__ import annotations

import logging
from typing import Any

from PIL import Image

from sdweb.builtin_scripts.common.axis_values import join_values, split_values
from sdweb.builtin_scripts.common.elem import elem_prefix
from sdweb.builtin_scripts.common.results import Collected, script_result
from sdweb.builtin_scripts.common.xyz_axes import AXES, apply_value, axis_labels
from sdweb.builtin_scripts.common.xyz_plan import (
    DEFAULT_MAX_GRID_MP,
    TITLE,
    PlotAxis,
    XYZArgs,
    build_grids,
    cell_index,
    cell_order,
    check_grid_size,
    estimate,
    plan_axes,
)
from sdweb.extensions.api import (
    ExtensionContext,
    GenerationResult,
    Processing,
    Script,
    add_infotext_params,
)

log = logging.getLogger(__name__)
FILL_SYMBOL = "📒"


class XYZPlot(Script):
    def __init__(self, context: ExtensionContext) -> None:
        self.context = context

    def title(self) -> str:
        return TITLE

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr
        prefix = elem_prefix(is_img2img, "xyz_plot")
        labels = axis_labels(is_img2img)
        axes = [_axis_row(prefix, name, labels, default) for name, default in (("x", "Seed"), ("y", "Nothing"),
                                                                                 ("z", "Nothing"))]
        with gr.Row(elem_id=f"{prefix}_options"):
            with gr.Column(min_width=160):
                draw_legend = gr.Checkbox(label="Draw legend", value=True, elem_id=f"{prefix}_draw_legend")
                no_fixed_seeds = gr.Checkbox(label="Keep -1 for seeds", value=False, elem_id=f"{prefix}_no_fixed_seeds")
            with gr.Column(min_width=160):
                vary = [gr.Checkbox(label=f"Vary seeds for {name}", value=False, elem_id=f"{prefix}_vary_seeds_{name}")
                        for name in ("x", "y", "z")]
            with gr.Column(min_width=160):
                lone = gr.Checkbox(label="Include Sub Images", value=False, elem_id=f"{prefix}_include_lone_images")
                sub_grids = gr.Checkbox(label="Include Sub Grids", value=False, elem_id=f"{prefix}_include_sub_grids")
                csv_mode = gr.Checkbox(label="Use text inputs instead of dropdowns", value=False,
                                       elem_id=f"{prefix}_csv_mode")
            margin = gr.Slider(label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2,
                               elem_id=f"{prefix}_margin_size")
        cost = gr.Markdown(estimate(XYZArgs(), is_img2img), elem_id=f"{prefix}_cost")
        flat = [component for row in axes for component in row[:3]]
        inputs = [*flat, draw_legend, lone, sub_grids, no_fixed_seeds, *vary, margin, csv_mode]
        self._wire(axes, csv_mode, cost, flat, is_img2img)
        return inputs

    def _wire(self, axes: list[tuple[Any, ...]], csv_mode: Any, cost: Any, flat: list[Any], is_img2img: bool) -> None:
        services = self.context.services

        def show_estimate(*values: Any) -> str:
            return estimate(XYZArgs.from_list([*values[:9], *([None] * 8), values[9]]), is_img2img)

        for axis_type, values, dropdown, fill in axes:
            axis_type.change(lambda label, text, chosen, csv: _switch(services, label, text, chosen, csv),
                             inputs=[axis_type, values, dropdown, csv_mode], outputs=[values, dropdown, fill],
                             queue=False, api_visibility="private")
            fill.click(lambda label, csv: _fill(services, label, csv), inputs=[axis_type, csv_mode],
                       outputs=[values, dropdown], queue=False, api_visibility="private")
        for axis_type, values, dropdown, fill in axes:
            csv_mode.change(lambda label, text, chosen, csv: _switch(services, label, text, chosen, csv),
                            inputs=[axis_type, values, dropdown, csv_mode], outputs=[values, dropdown, fill],
                            queue=False, api_visibility="private")
        for component in [*flat, csv_mode]:
            component.change(show_estimate, inputs=[*flat, csv_mode], outputs=cost, queue=False,
                             api_visibility="private", show_progress="hidden")

    def run(self, p: Processing, *script_args: Any) -> GenerationResult:
        args = XYZArgs.from_list(script_args)
        services = p.services
        if not args.no_fixed_seeds:
            p.fix_seed()
        if not services.setting("return_grid", True):
            p.batch_size = 1
        axes = plan_axes(args, p, services)
        check_grid_size(axes, p, float(services.setting("img_max_size_mp", DEFAULT_MAX_GRID_MP)))
        order = cell_order(axes)
        counts = [len(axis.values) for axis in axes]
        log.info("X/Y/Z plot will create %d images on %d %dx%d grid%s.", len(order) * p.batch_size * p.n_iter,
                 counts[2], counts[0], counts[1], "s" if counts[2] > 1 else "")
        p.plan_runs(len(order))
        cells, collected = self._run_cells(p, axes, order, args)
        if collected.first is None:
            return script_result(collected)
        main, sub_grids = build_grids(axes, cells.images, args.draw_legend, args.margin_size)
        fixed = not args.no_fixed_seeds
        grid_keys = {"Script": TITLE, **axes[0].infotext_keys(fixed), **axes[1].infotext_keys(fixed)}
        sub_infotexts = [add_infotext_params(cells.infotext_of_z(iz, axes), grid_keys) for iz in range(counts[2])]
        main_infotext = add_infotext_params(sub_infotexts[0], axes[2].infotext_keys(fixed))
        subs = list(zip(sub_grids, sub_infotexts, strict=True)) if args.include_sub_grids else []
        saved = [(main, main_infotext), *(subs if counts[2] > 1 else [])]  # A1111 saves sub-grids of a Z only
        for grid, infotext in saved:
            path = p.save_image(grid, infotext, "xyz_grid", seed=collected.seeds[0], grid=True)
            if path is not None:
                collected.saved_paths.append(path)
        return script_result(collected, [(main, main_infotext), *subs], include_images=args.include_lone_images)

    def _run_cells(self, p: Processing, axes: list[PlotAxis], order: list[tuple[int, int, int]], args: XYZArgs
                   ) -> tuple[_Cells, Collected]:
        cells = _Cells(len(order))
        collected = Collected()
        for ix, iy, iz in order:
            if p.interrupted:
                collected.interrupted = True
                break
            cell = p.copy()
            for axis, index in zip(axes, (ix, iy, iz), strict=True):
                apply_value(axis.axis, cell, axis.values[index], axis.values)
            _vary_seed(cell, axes, (ix, iy, iz))
            result = cell.process_images()
            collected.note_run(result)
            if result.images:
                image = result.grid if result.grid is not None else result.images[0]
                cells.put(cell_index(axes, ix, iy, iz), image, result)
            if result.interrupted:
                break
        for image, ran in zip(cells.images, cells.results, strict=True):
            if image is not None and ran is not None:
                collected.add_image(image, ran.infotexts[0], ran.seeds[0], ran.subseeds[0], ran.prompts[0],
                                    ran.negative_prompts[0])
        return cells, collected


class _Cells:
    """Each cell's image and the run it came from, by A1111's index (x fastest, then y, then z)."""

    def __init__(self, count: int) -> None:
        self.images: list[Image.Image | None] = [None] * count
        self.results: list[GenerationResult | None] = [None] * count

    def put(self, index: int, image: Image.Image, result: GenerationResult) -> None:
        self.images[index], self.results[index] = image, result

    def infotext_of_z(self, iz: int, axes: list[PlotAxis]) -> str:
        """The infotext of the Z value's first cell (or of the first cell that ran, when interrupted)."""
        per_z = len(axes[0].values) * len(axes[1].values)
        candidates = [*self.results[iz * per_z:(iz + 1) * per_z], *self.results]
        return next(result.infotexts[0] for result in candidates if result is not None)


def _vary_seed(cell: Processing, axes: list[PlotAxis], indexes: tuple[int, int, int]) -> None:
    """"Vary seeds for X/Y/Z": each value of the axis gets its own seed (seed + index, counted over the axes)."""
    if cell.seed == -1:
        return
    offset, stride = 0, 1
    for axis, index in zip(axes, indexes, strict=True):
        if axis.vary_seeds:
            offset += index * stride
            stride *= len(axis.values)
    cell.seed = cell.seed + offset


def _axis_row(prefix: str, name: str, labels: list[str], default: str) -> tuple[Any, Any, Any, Any]:
    import gradio as gr
    upper = name.upper()
    with gr.Row(elem_id=f"{prefix}_{name}_row"):
        axis_type = gr.Dropdown(label=f"{upper} type", choices=labels, value=default, scale=2, min_width=160,
                                elem_id=f"{prefix}_{name}_type")
        values = gr.Textbox(label=f"{upper} values", lines=1, scale=5, elem_id=f"{prefix}_{name}_values",
                            placeholder="1, 2, 3 or 1-5 or 1-10 (+2) or 0.5-1 [5]")
        dropdown = gr.Dropdown(label=f"{upper} values", choices=[], value=[], multiselect=True, visible=False,
                               scale=5, elem_id=f"{prefix}_{name}_values_dropdown")
        fill = gr.Button(FILL_SYMBOL, visible=False, scale=0, min_width=44, elem_id=f"{prefix}_fill_{name}")
    return axis_type, values, dropdown, fill


def _choices(services: Any, label: str) -> list[str] | None:
    axis = AXES.get(label)
    return axis.choices(services) if axis is not None and axis.choices is not None else None


def _switch(services: Any, label: str, text: str, chosen: list[str] | None, csv_mode: bool) -> tuple[Any, Any, Any]:
    """An axis with choices (samplers, checkpoints, ...) gets a multi-select unless text inputs are asked for;
    the values move between the two."""
    import gradio as gr
    choices = _choices(services, label)
    if choices is None:
        return gr.Textbox(visible=True), gr.Dropdown(visible=False, choices=[], value=[]), gr.Button(visible=False)
    if csv_mode:
        moved = join_values([item for item in chosen or [] if item in choices]) if chosen else text
        return (gr.Textbox(visible=True, value=moved), gr.Dropdown(visible=False, choices=choices, value=[]),
                gr.Button(visible=True))
    kept = [item for item in (chosen or split_values(text)) if item in choices]
    return (gr.Textbox(visible=False, value=""), gr.Dropdown(visible=True, choices=choices, value=kept),
            gr.Button(visible=True))


def _fill(services: Any, label: str, csv_mode: bool) -> tuple[Any, Any]:
    """📒: every choice of the axis (every sampler, every checkpoint, ...)."""
    import gradio as gr
    choices = _choices(services, label)
    if choices is None:
        return gr.Textbox(), gr.Dropdown()
    if csv_mode:
        return gr.Textbox(value=join_values(choices)), gr.Dropdown()
    return gr.Textbox(), gr.Dropdown(choices=choices, value=choices)


def setup(context: ExtensionContext) -> None:
    context.add_script(XYZPlot(context))
