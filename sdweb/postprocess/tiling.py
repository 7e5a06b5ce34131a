"""Tiled inference for image-to-image networks: overlapping tiles, blended with linear ramps across the overlaps.

Pure torch; the network is any callable from a (1, C, h, w) tensor to a (1, C', h*scale, w*scale) tensor.
A pixel far from every tile edge (farther than the network's receptive field) gets exactly the untiled
value; pixels in an overlap are a weighted mean of the neighbouring tiles, the weight of each tile falling
towards its own edge, where zero padding made its output least like the untiled one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["tile_starts", "tiled_apply"]

TileProgress = Callable[[int, int], None]  # (tiles done, tiles in all)


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``size`` with at least ``overlap`` (at most half a
    tile) between neighbours.

    The last tile ends at the image's edge (it overlaps its neighbour more), so every tile is full-size.
    """
    if size <= tile:
        return [0]
    stride = max(1, tile - max(0, min(overlap, tile // 2)))
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def _ramp(length: int, band: int, fade_start: bool, fade_end: bool) -> torch.Tensor:
    """1 in the middle, rising over ``band`` pixels at an end that has a neighbour (never reaching 0)."""
    weights = torch.ones(length)
    band = min(band, length // 2)
    if band > 0:
        rise = (torch.arange(band, dtype=torch.float32) + 0.5) / band
        if fade_start:
            weights[:band] = rise
        if fade_end:
            weights[length - band:] = rise.flip(0)
    return weights


def tiled_apply(run: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, scale: int, tile: int,
                overlap: int, progress: TileProgress | None = None) -> torch.Tensor:
    """``run(image)`` computed tile by tile (``tile`` <= 0 or an image that fits one tile: in one call).

    ``image`` is (1, C, H, W); the result is float32 on the CPU, (1, C', H*scale, W*scale).
    """
    _, _, height, width = image.shape
    if tile <= 0 or (height <= tile and width <= tile):
        result = run(image).float().cpu()
        if progress is not None:
            progress(1, 1)
        return result
    overlap = max(0, min(overlap, tile // 2))
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    tile_h, tile_w = min(tile, height), min(tile, width)
    output: torch.Tensor | None = None
    weight = torch.zeros(1, 1, height * scale, width * scale)
    done, total = 0, len(ys) * len(xs)
    for y in ys:
        for x in xs:
            result = run(image[:, :, y:y + tile_h, x:x + tile_w]).float().cpu()
            if output is None:
                output = torch.zeros(1, result.shape[1], height * scale, width * scale)
            band = overlap * scale
            rows = _ramp(tile_h * scale, band, y > 0, y + tile_h < height)
            cols = _ramp(tile_w * scale, band, x > 0, x + tile_w < width)
            mask = rows[:, None] * cols[None, :]
            top, left = y * scale, x * scale
            region = (slice(None), slice(None), slice(top, top + tile_h * scale), slice(left, left + tile_w * scale))
            output[region] += result * mask
            weight[region] += mask
            done += 1
            if progress is not None:
                progress(done, total)
    assert output is not None
    return output / weight
