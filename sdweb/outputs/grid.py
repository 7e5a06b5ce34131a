"""Image grids as A1111 lays them out (``images.image_grid``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageColor

__all__ = ["grid_size", "make_grid"]


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
