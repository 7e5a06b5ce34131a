"""The X/Y/Z plot's plan, without running anything: its arguments in A1111's order, each axis's values, the
order the cells run in, the grids built from the cells, and the "N images" line the page shows beforehand."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from PIL import Image

from sdweb.builtin_scripts.common.axis_values import (
    AxisValueError,
    join_values,
    parse_axis_values,
    split_values,
)
from sdweb.builtin_scripts.common.xyz_axes import NOTHING, Axis, find_axis
from sdweb.extensions.api import (
    GridAnnotation,
    Processing,
    UserError,
    draw_grid_annotations,
    make_grid,
    resolve_seed,
)

TITLE = "X/Y/Z plot"
SEED_AXES = ("Seed", "Var. seed")
DEFAULT_MAX_GRID_MP = 200  # A1111's img_max_size_mp


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


@dataclass
class XYZArgs:
    """`script_args` in A1111's order (its UI components); missing trailing values keep these defaults."""

    x_type: Any = "Seed"
    x_values: str = ""
    x_values_dropdown: Any = None
    y_type: Any = "Nothing"
    y_values: str = ""
    y_values_dropdown: Any = None
    z_type: Any = "Nothing"
    z_values: str = ""
    z_values_dropdown: Any = None
    draw_legend: bool = True
    include_lone_images: bool = False
    include_sub_grids: bool = False
    no_fixed_seeds: bool = False
    vary_seeds_x: bool = False
    vary_seeds_y: bool = False
    vary_seeds_z: bool = False
    margin_size: int = 0
    csv_mode: bool = False

    @classmethod
    def from_list(cls, values: tuple[Any, ...] | list[Any]) -> XYZArgs:
        args = cls()
        for spec, value in zip(fields(cls), values, strict=False):
            if value is None and spec.name.endswith("_type"):
                continue
            setattr(args, spec.name, value)
        for name in ("draw_legend", "include_lone_images", "include_sub_grids", "no_fixed_seeds", "vary_seeds_x",
                     "vary_seeds_y", "vary_seeds_z", "csv_mode"):
            setattr(args, name, _flag(getattr(args, name)))
        try:
            args.margin_size = max(0, min(500, int(float(args.margin_size or 0))))
        except (TypeError, ValueError):
            raise UserError(f"X/Y/Z plot: margin_size {args.margin_size!r} is not a number.",
                            code="invalid_script_args") from None
        return args

    def axis_inputs(self, name: str) -> tuple[Any, str, list[str]]:
        dropdown = getattr(self, f"{name}_values_dropdown")
        items = [str(item) for item in dropdown] if isinstance(dropdown, list | tuple) else []
        return getattr(self, f"{name}_type"), str(getattr(self, f"{name}_values") or ""), items


@dataclass
class PlotAxis:
    name: str  # "X" / "Y" / "Z"
    axis: Axis
    values: list[Any]
    text: str  # what the infotext's "X Values" says
    vary_seeds: bool = False

    @property
    def labels(self) -> list[str]:
        return [self.axis.legend_text(value) for value in self.values]

    def infotext_keys(self, fixed_seeds: bool) -> dict[str, Any]:
        if self.axis is NOTHING:
            return {}
        keys: dict[str, Any] = {f"{self.name} Type": self.axis.label, f"{self.name} Values": self.text}
        if self.axis.label in SEED_AXES and fixed_seeds:
            keys[f"Fixed {self.name} Values"] = ", ".join(str(value) for value in self.values)
        return keys


def axis_items(axis: Axis, text: str, dropdown: list[str], csv_mode: bool) -> tuple[list[str], str]:
    """The raw items of an axis and its infotext text: the dropdown's choices for an axis that has them (as
    A1111), else the text box; API callers that send only the text box are read from it."""
    if axis.choices is not None and not csv_mode and dropdown:
        return dropdown, join_values(dropdown)
    return split_values(text), text


def read_axis(name: str, chosen: Any, text: str, dropdown: list[str], csv_mode: bool, is_img2img: bool
              ) -> tuple[Axis, list[Any], str]:
    """(axis, parsed values, infotext text) without checking names against the models (for the estimate)."""
    axis = find_axis(chosen, is_img2img, f"{name} type")
    if axis is NOTHING:
        return axis, [None], ""
    items, shown = axis_items(axis, text, dropdown, csv_mode)
    try:
        values = parse_axis_values(items, axis.kind)
    except AxisValueError as error:
        raise UserError(f"X/Y/Z plot: {name} values ({axis.label}): {error}", code="invalid_script_args") from None
    if not values:
        raise UserError(f"X/Y/Z plot: {name} values are empty for {axis.label}.", code="invalid_script_args",
                        hint="Give comma-separated values or a range such as 1-5.")
    return axis, values, shown


def plan_axes(args: XYZArgs, p: Processing, services: Any) -> list[PlotAxis]:
    """X, Y, Z with checked values; -1 seeds fixed unless "Keep -1 for seeds"."""
    planned = []
    for name in ("x", "y", "z"):
        chosen, text, dropdown = args.axis_inputs(name)
        axis, values, shown = read_axis(name.upper(), chosen, text, dropdown, args.csv_mode, p.is_img2img)
        if axis.check is not None:
            values = axis.check(services, values, p)
        if axis.label in SEED_AXES and not args.no_fixed_seeds:
            values = [resolve_seed(value) if value in (None, "", -1) else value for value in values]
        planned.append(PlotAxis(name.upper(), axis, values, shown, bool(getattr(args, f"vary_seeds_{name}"))))
    return planned


def check_grid_size(axes: list[PlotAxis], p: Processing, limit_mp: float) -> None:
    cells = math.prod(len(axis.values) for axis in axes)
    megapixels = round(cells * p.width * p.height / 1_000_000)
    if megapixels >= limit_mp:
        raise UserError(f"X/Y/Z plot: the grid would be {megapixels} megapixels; the limit is {limit_mp:g}.",
                        code="grid_too_large", hint="Use fewer values or a smaller size.")


def cell_order(axes: list[PlotAxis]) -> list[tuple[int, int, int]]:
    """(ix, iy, iz) in the order the cells run: the costliest axis outermost (a checkpoint is loaded once per
    value), else Z, then Y, then X innermost, as A1111."""
    x, y, z = (axis.axis.cost for axis in axes)
    outer, middle = 2, 1
    if x > y and x > z:
        outer, middle = 0, (1 if y > z else 2)
    elif y > x and y > z:
        outer, middle = 1, (0 if x > z else 2)
    elif z > x and z > y:
        outer, middle = 2, (0 if x > y else 1)
    inner = 3 - outer - middle
    counts = [len(axis.values) for axis in axes]
    order = []
    for a in range(counts[outer]):
        for b in range(counts[middle]):
            for c in range(counts[inner]):
                index = [0, 0, 0]
                index[outer], index[middle], index[inner] = a, b, c
                order.append((index[0], index[1], index[2]))
    return order


def cell_index(axes: list[PlotAxis], ix: int, iy: int, iz: int) -> int:
    nx, ny = len(axes[0].values), len(axes[1].values)
    return ix + iy * nx + iz * nx * ny


def build_grids(axes: list[PlotAxis], cells: list[Image.Image | None], draw_legend: bool,
                margin: int) -> tuple[Image.Image, list[Image.Image]]:
    """(main grid, one sub-grid per Z value): X across, Y down; Z sub-grids side by side under their labels.
    A cell that did not run (interrupted) is black."""
    produced = next(image for image in cells if image is not None)
    size = produced.size
    filled = [image if image is not None else Image.new("RGB", size) for image in cells]
    x_axis, y_axis, z_axis = axes
    per_z = len(x_axis.values) * len(y_axis.values)
    columns = [[GridAnnotation(label)] for label in x_axis.labels]
    rows = [[GridAnnotation(label)] for label in y_axis.labels]
    sub_grids = []
    for iz in range(len(z_axis.values)):
        grid = make_grid(filled[iz * per_z:(iz + 1) * per_z], rows=len(y_axis.values))
        if draw_legend:
            grid = draw_grid_annotations(grid, size[0], size[1], columns, rows, margin)
        sub_grids.append(grid)
    main = make_grid(sub_grids, rows=1)
    if draw_legend:
        titles = [[GridAnnotation(label)] for label in z_axis.labels]
        main = draw_grid_annotations(main, sub_grids[0].width, sub_grids[0].height, titles, [[GridAnnotation()]])
    return main, sub_grids


def estimate(args: XYZArgs, is_img2img: bool) -> str:
    """What the page shows before Generate: the image count and grid shape, or what is wrong."""
    try:
        counts = []
        for name in ("x", "y", "z"):
            chosen, text, dropdown = args.axis_inputs(name)
            counts.append(len(read_axis(name.upper(), chosen, text, dropdown, args.csv_mode, is_img2img)[1]))
    except UserError as error:
        return f"⚠️ {error.message}"
    images = math.prod(counts)
    grids = f"{counts[2]} grids" if counts[2] > 1 else "one grid"
    return f"X/Y/Z plot will create **{images} image{'s' if images != 1 else ''}** on {grids} of " \
           f"{counts[0]}×{counts[1]} (each times the batch size and count)."
