"""Overlapping tiles of an image and their recombination, for SD upscale. Pure PIL / numpy.

The layout is A1111's (images.split_grid): along each side, as many tiles as needed for the given overlap,
spread evenly so the first starts at 0 and the last ends at the edge. Recombining blends each overlap with a
linear ramp, so no seam shows where two repainted tiles meet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Tile:
    x: int
    y: int
    image: Image.Image


@dataclass(frozen=True)
class TileLayout:
    width: int
    height: int
    tile_width: int
    tile_height: int
    xs: tuple[int, ...]
    ys: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.xs) * len(self.ys)


def _starts(size: int, tile: int, overlap: int) -> tuple[int, ...]:
    if size <= tile:
        return (0,)
    count = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (count - 1) if count > 1 else 0
    return tuple(min(int(index * step), size - tile) for index in range(count))


def tile_layout(width: int, height: int, tile_width: int, tile_height: int, overlap: int) -> TileLayout:
    """Where the tiles go; ValueError when the tiles cannot cover the image with that overlap."""
    if tile_width > width or tile_height > height:
        raise ValueError(f"a {tile_width}x{tile_height} tile is larger than the {width}x{height} image")
    if overlap < 0 or overlap >= min(tile_width, tile_height):
        raise ValueError(f"the overlap ({overlap}) must be at least 0 and smaller than a tile "
                         f"({tile_width}x{tile_height})")
    return TileLayout(width, height, tile_width, tile_height, _starts(width, tile_width, overlap),
                      _starts(height, tile_height, overlap))


def split_tiles(image: Image.Image, layout: TileLayout) -> list[Tile]:
    """Row by row, left to right."""
    return [Tile(x, y, image.crop((x, y, x + layout.tile_width, y + layout.tile_height)))
            for y in layout.ys for x in layout.xs]


def _ramp(length: int, starts: tuple[int, ...], index: int, tile: int) -> np.ndarray:
    """A tile's weight along one side: 1, falling linearly to 0 over the part it shares with a neighbour."""
    weights = np.ones(length, dtype=np.float64)
    start = starts[index]
    if index > 0:
        shared = starts[index - 1] + tile - start
        if shared > 0:
            weights[:shared] = (np.arange(shared) + 0.5) / shared
    if index + 1 < len(starts):
        shared = start + tile - starts[index + 1]
        if shared > 0:
            weights[tile - shared:] = np.minimum(weights[tile - shared:], (np.arange(shared)[::-1] + 0.5) / shared)
    return weights


def combine_tiles(tiles: list[Image.Image], layout: TileLayout) -> Image.Image:
    """The image again from its (repainted) tiles, in split_tiles' order, overlaps blended."""
    total = np.zeros((layout.height, layout.width, 3), dtype=np.float64)
    weight = np.zeros((layout.height, layout.width, 1), dtype=np.float64)
    index = 0
    for row, y in enumerate(layout.ys):
        down = _ramp(layout.tile_height, layout.ys, row, layout.tile_height)
        for col, x in enumerate(layout.xs):
            across = _ramp(layout.tile_width, layout.xs, col, layout.tile_width)
            tile = tiles[index].convert("RGB").resize((layout.tile_width, layout.tile_height))
            mask = (down[:, None] * across[None, :])[..., None]
            total[y:y + layout.tile_height, x:x + layout.tile_width] += np.asarray(tile, dtype=np.float64) * mask
            weight[y:y + layout.tile_height, x:x + layout.tile_width] += mask
            index += 1
    pixels = total / np.maximum(weight, 1e-8)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")
