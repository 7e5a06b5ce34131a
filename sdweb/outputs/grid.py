"""Image grids as A1111 lays them out (``images.image_grid``), and labelled ones (``draw_grid_annotations``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageFont

__all__ = ["GridAnnotation", "draw_grid_annotations", "grid_size", "label_font", "make_grid"]


def grid_size(count: int, rows: int | None = None, *, n_rows: int = -1, batch_size: int = 1,
              prevent_empty_spots: bool = False) -> tuple[int, int]:
    """(rows, cols) for ``count`` images.

    ``rows`` given wins; else setting ``n_rows``: > 0 fixed, 0 = batch size, -1 = round(sqrt(count)), or
    with ``grid_prevent_empty_spots`` the largest divisor of count not above sqrt(count).
    """
    if count <= 0:
        return 0, 0
    if rows is None:
        if n_rows > 0:
            rows = n_rows
        elif n_rows == 0:
            rows = batch_size
        elif prevent_empty_spots:
            rows = math.floor(math.sqrt(count))
            while count % rows != 0:
                rows -= 1
        else:
            rows = round(math.sqrt(count))
    rows = max(1, min(rows, count))
    return rows, math.ceil(count / rows)


def make_grid(images: Sequence[Image.Image], rows: int | None = None, *, n_rows: int = -1, batch_size: int = 1,
              prevent_empty_spots: bool = False, background: str = "#ffffff") -> Image.Image:
    """Paste ``images`` row by row into cells as large as the largest image; smaller ones are centred."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    rows, cols = grid_size(len(images), rows, n_rows=n_rows, batch_size=batch_size,
                           prevent_empty_spots=prevent_empty_spots)
    width = max(image.width for image in images)
    height = max(image.height for image in images)
    grid = Image.new("RGB", (cols * width, rows * height), color=ImageColor.getcolor(background, "RGB"))
    for index, image in enumerate(images):
        x_offset = 0 if image.width == width else (width - image.width) // 2
        y_offset = 0 if image.height == height else (height - image.height) // 2
        grid.paste(image, box=(index % cols * width + x_offset, index // cols * height + y_offset))
    return grid


# -- labelled grids (X/Y/Z plot, prompt matrix): A1111's layout of images.draw_grid_annotations ---------------
ACTIVE_TEXT = (0, 0, 0)
INACTIVE_TEXT = (153, 153, 153)


@dataclass(frozen=True)
class GridAnnotation:
    """One label line; an inactive one (a prompt matrix part left out) is grey and struck through."""

    text: str = ""
    is_active: bool = True


@dataclass(frozen=True)
class _Line:
    text: str
    is_active: bool
    size: tuple[int, int]
    allowed_width: int


def label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at `size` pixels (no file, no network); its bitmap font without FreeType."""
    return ImageFont.load_default(size=max(1, size))


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Any) -> tuple[int, int]:
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> list[str]:
    """Words joined into lines no wider than `width` (a single long word stays on its own line)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split(" "):
            candidate = f"{current} {word}".strip() if current else word
            if current and _text_size(draw, candidate, font)[0] > width:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
    return lines


def _layout(draw: ImageDraw.ImageDraw, labels: Sequence[GridAnnotation], font: Any, width: int) -> list[_Line]:
    laid: list[_Line] = []
    for label in labels:
        for text in _wrap(draw, label.text, font, width):
            laid.append(_Line(text, label.is_active, _text_size(draw, text, font), width))
    return laid


def _block_height(lines: Sequence[_Line], spacing: int) -> int:
    return sum(line.size[1] + spacing for line in lines) - spacing if lines else 0


def _draw_block(draw: ImageDraw.ImageDraw, center_x: float, top: float, lines: Sequence[_Line], font_size: int,
                spacing: int) -> None:
    """Lines centred on `center_x` from `top` down; a line too wide for its cell gets a smaller font."""
    for line in lines:
        size, font = font_size, label_font(font_size)
        while size > 1 and _text_size(draw, line.text, font)[0] > line.allowed_width:
            size -= 1
            font = label_font(size)
        color = ACTIVE_TEXT if line.is_active else INACTIVE_TEXT
        middle_y = top + line.size[1] / 2
        draw.multiline_text((center_x, middle_y), line.text, font=font, fill=color, anchor="mm", align="center")
        if not line.is_active:
            half = line.size[0] // 2
            draw.line((center_x - half, middle_y, center_x + half, middle_y), fill=INACTIVE_TEXT, width=4)
        top += line.size[1] + spacing


def draw_grid_annotations(grid: Image.Image, cell_width: int, cell_height: int,
                          columns: Sequence[Sequence[GridAnnotation]], rows: Sequence[Sequence[GridAnnotation]],
                          margin: int = 0) -> Image.Image:
    """`grid` (cells of cell_width x cell_height) with a label block above each column and left of each row.

    As A1111: font size (cell width + height) // 25, line spacing half of it; the left band is 3/4 of a cell
    wide when any row has a label, the top band as tall as the tallest column label plus two spacings; cells
    are `margin` pixels apart. A grid without labels keeps its size (with the margins added)."""
    count_x, count_y = grid.width // cell_width, grid.height // cell_height
    if len(columns) != count_x or len(rows) != count_y:
        raise ValueError(f"{len(columns)} column and {len(rows)} row labels for a {count_x}x{count_y} grid")
    font_size = (cell_width + cell_height) // 25
    spacing = font_size // 2
    font = label_font(font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad_left = cell_width * 3 // 4 if any(label.text for labels in rows for label in labels) else 0
    column_lines = [_layout(measure, labels, font, cell_width) for labels in columns]
    row_lines = [_layout(measure, labels, font, pad_left) for labels in rows]
    column_heights = [_block_height(lines, spacing) for lines in column_lines]
    row_heights = [_block_height(lines, spacing) for lines in row_lines]
    pad_top = max(column_heights) + spacing * 2 if any(column_heights) else 0
    result = Image.new("RGB", (grid.width + pad_left + margin * (count_x - 1),
                               grid.height + pad_top + margin * (count_y - 1)), "white")
    for row in range(count_y):
        for col in range(count_x):
            cell = grid.crop((cell_width * col, cell_height * row, cell_width * (col + 1), cell_height * (row + 1)))
            result.paste(cell, (pad_left + (cell_width + margin) * col, pad_top + (cell_height + margin) * row))
    draw = ImageDraw.Draw(result)
    for col, lines in enumerate(column_lines):
        center_x = pad_left + (cell_width + margin) * col + cell_width / 2
        _draw_block(draw, center_x, pad_top / 2 - column_heights[col] / 2, lines, font_size, spacing)
    for row, lines in enumerate(row_lines):
        top = pad_top + (cell_height + margin) * row + cell_height / 2 - row_heights[row] / 2
        _draw_block(draw, pad_left / 2, top, lines, font_size, spacing)
    return result
