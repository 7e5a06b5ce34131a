"""Outpainting as an inpaint request: A1111's "Poor man's outpainting" canvas and mask, as pure functions.

The image is placed on a larger canvas (each side that grows gets its share of the extra pixels, the new
size rounded up to a multiple of 64 as A1111 does), the new area is masked white, and the mask reaches
`2 * mask_blur` pixels into the original on every grown side so the seam is repainted too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageDraw

DIRECTIONS = ("left", "right", "up", "down")
SCRIPT_TITLE = "Poor man's outpainting"
ROUND_TO = 64


@dataclass(frozen=True)
class OutpaintCanvas:
    image: Image.Image  # the original pasted on the larger canvas
    mask: Image.Image  # "L": white = area to paint
    offset: tuple[int, int]  # where the original's top-left corner sits on the canvas


def _split(extra_before: int, extra_after: int, size: int) -> tuple[int, int, int]:
    """(before, after, new size): the new size rounded up to ROUND_TO (also on a side that does not grow, as
    A1111 does; that rounding goes after the image), the growth shared in proportion."""
    target = math.ceil((size + extra_before + extra_after) / ROUND_TO) * ROUND_TO
    grow = target - size
    before = extra_before * grow // (extra_before + extra_after) if extra_before else 0
    return before, grow - before, target


def outpaint_canvas(image: Image.Image, pixels: int, directions: list[str] | tuple[str, ...],
                    mask_blur: int) -> OutpaintCanvas:
    """The grown canvas and its mask. Raises ValueError naming the field for a bad direction or size."""
    unknown = [direction for direction in directions if direction not in DIRECTIONS]
    if unknown:
        raise ValueError(f"outpainting direction {unknown[0]!r} is not one of {', '.join(DIRECTIONS)}")
    if not directions:
        raise ValueError("outpainting needs at least one direction (left, right, up or down)")
    if pixels < 8:
        raise ValueError(f"outpainting pixels must be at least 8 (got {pixels})")
    chosen = set(directions)
    left, right, width = _split(pixels if "left" in chosen else 0, pixels if "right" in chosen else 0,
                                image.width)
    top, bottom, height = _split(pixels if "up" in chosen else 0, pixels if "down" in chosen else 0, image.height)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(image.convert("RGB"), (left, top))
    mask = Image.new("L", (width, height), 255)
    reach = 2 * max(0, mask_blur)
    keep = (left + (reach if "left" in chosen else 0), top + (reach if "up" in chosen else 0),
            left + image.width - (reach if "right" in chosen else 0),
            top + image.height - (reach if "down" in chosen else 0))
    if keep[2] > keep[0] and keep[3] > keep[1]:
        ImageDraw.Draw(mask).rectangle((keep[0], keep[1], keep[2] - 1, keep[3] - 1), fill=0)
    return OutpaintCanvas(image=canvas, mask=mask, offset=(left, top))
