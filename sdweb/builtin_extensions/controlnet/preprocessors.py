"""ControlNet preprocessors that need no downloaded weights (sd-webui-controlnet's names and defaults).

Each takes an RGB image, the processor resolution (the short side it works at) and threshold a/b, and
returns the detected map (RGB). Pure numpy/scipy/PIL, so they run offline everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage


@dataclass(frozen=True)
class Slider:
    name: str
    value: float
    min: float
    max: float
    step: float = 1.0


@dataclass(frozen=True)
class Preprocessor:
    name: str
    run: Callable[[Image.Image, int, float, float], Image.Image]
    resolution: int = 512  # default processor_res; 0 = works at the input size
    threshold_a: Slider | None = None
    threshold_b: Slider | None = None
    aliases: tuple[str, ...] = ()
    needs_weights: bool = False


def resize_short_side(image: Image.Image, resolution: int) -> Image.Image:
    """Scale so the short side is `resolution` (multiples of 8, as the annotators expect)."""
    if resolution <= 0:
        return image
    scale = resolution / min(image.size)
    width, height = (max(8, round(side * scale / 8) * 8) for side in image.size)
    return image.resize((width, height), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def _gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def _to_rgb(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).convert("RGB")


def canny_edges(gray: np.ndarray, low: float, high: float) -> np.ndarray:
    """Canny as OpenCV computes it (3x3 Sobel, no pre-blur, thresholds on the unnormalised L2 magnitude):
    non-maximum suppression, then hysteresis. Boolean edge map."""
    gx, gy = ndimage.sobel(gray, axis=1), ndimage.sobel(gray, axis=0)
    magnitude = np.hypot(gx, gy)
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    direction = ((angle + 22.5) // 45).astype(int) % 4  # 0: horizontal gradient, 1: 45°, 2: vertical, 3: 135°
    offsets = {0: (0, 1), 1: (1, 1), 2: (1, 0), 3: (1, -1)}
    keep = np.zeros_like(magnitude, dtype=bool)
    padded = np.pad(magnitude, 1)
    height, width = magnitude.shape
    for code, (dy, dx) in offsets.items():
        ahead = padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
        behind = padded[1 - dy:1 - dy + height, 1 - dx:1 - dx + width]
        keep |= (direction == code) & (magnitude >= ahead) & (magnitude >= behind)
    thin = magnitude * keep
    strong, weak = thin >= high, thin >= low
    labels, count = ndimage.label(weak, structure=np.ones((3, 3)))
    if count == 0:
        return np.zeros_like(weak)
    connected = np.zeros(count + 1, dtype=bool)
    connected[np.unique(labels[strong])] = True
    connected[0] = False
    return connected[labels]


def _none(image: Image.Image, resolution: int, a: float, b: float) -> Image.Image:
    return image


def _invert(image: Image.Image, resolution: int, a: float, b: float) -> Image.Image:
    return _to_rgb(255 - _gray(resize_short_side(image, resolution)))


def _canny(image: Image.Image, resolution: int, low: float, high: float) -> Image.Image:
    edges = canny_edges(_gray(resize_short_side(image, resolution)), low, high)
    return _to_rgb(edges.astype(np.float32) * 255)


def _threshold(image: Image.Image, resolution: int, level: float, b: float) -> Image.Image:
    return _to_rgb((_gray(resize_short_side(image, resolution)) > level).astype(np.float32) * 255)


def _blur(image: Image.Image, resolution: int, sigma: float, b: float) -> Image.Image:
    return resize_short_side(image, resolution).filter(ImageFilter.GaussianBlur(radius=sigma))


def _tile_resample(image: Image.Image, resolution: int, down_sampling: float, b: float) -> Image.Image:
    factor = max(1.0, down_sampling)
    small = image.resize((max(8, int(image.width / factor)), max(8, int(image.height / factor))),
                         Image.Resampling.BICUBIC)
    return small.resize(image.size, Image.Resampling.BICUBIC) if factor > 1 else image


def _shuffle(image: Image.Image, resolution: int, a: float, b: float) -> Image.Image:
    """Content shuffle: pixels moved along a smooth random flow (deterministic per image size)."""
    source = np.asarray(resize_short_side(image, resolution).convert("RGB"))
    height, width = source.shape[:2]
    rng = np.random.default_rng(width * 65_537 + height)
    flow = [ndimage.gaussian_filter(rng.standard_normal((height, width)), max(height, width) / 16) for _ in "xy"]
    flow = [f / (np.abs(f).max() + 1e-8) * max(height, width) / 4 for f in flow]
    ys, xs = np.mgrid[0:height, 0:width]
    yy = np.clip(ys + flow[1], 0, height - 1).astype(int)
    xx = np.clip(xs + flow[0], 0, width - 1).astype(int)
    return Image.fromarray(source[yy, xx])


def _scribble_xdog(image: Image.Image, resolution: int, threshold: float, b: float) -> Image.Image:
    gray = _gray(resize_short_side(image, resolution))
    dog = ndimage.gaussian_filter(gray, 0.5) - ndimage.gaussian_filter(gray, 5.0)
    peak = dog.max() if dog.max() > 0 else 1.0
    return _to_rgb(((dog / peak * 255) > threshold).astype(np.float32) * 255)


def _lineart_standard(image: Image.Image, resolution: int, a: float, b: float) -> Image.Image:
    """Dark lines on a white background become white lines on black (sd-webui-controlnet's "standard")."""
    rgb = np.asarray(resize_short_side(image, resolution).convert("RGB"), dtype=np.float32)
    blurred = ndimage.gaussian_filter(rgb, sigma=(6.0, 6.0, 0))
    intensity = np.clip(blurred - rgb, 0, 255).min(axis=2)
    intensity /= max(16.0, float(np.median(intensity[intensity > np.percentile(intensity, 95)])) if
                     (intensity > 0).any() else 16.0)
    return _to_rgb(np.clip(intensity, 0, 1) * 255)


def _color_grid(image: Image.Image, resolution: int, a: float, b: float) -> Image.Image:
    """t2ia_color_grid: the image shrunk 64x then scaled back up with nearest neighbour."""
    resized = resize_short_side(image, resolution)
    small = resized.resize((max(1, resized.width // 64), max(1, resized.height // 64)), Image.Resampling.BICUBIC)
    return small.resize(resized.size, Image.Resampling.NEAREST)


def _needs_weights(name: str) -> Callable[[Image.Image, int, float, float], Image.Image]:
    def refuse(image: Image.Image, resolution: int, a: float, b: float) -> Image.Image:
        raise LookupError(name)

    return refuse


PREPROCESSORS: tuple[Preprocessor, ...] = (
    Preprocessor("none", _none, resolution=0),
    Preprocessor("invert", _invert, aliases=("invert (from white bg & black line)",)),
    Preprocessor("canny", _canny, threshold_a=Slider("Low Threshold", 100, 1, 255),
                 threshold_b=Slider("High Threshold", 200, 1, 255)),
    Preprocessor("threshold", _threshold, threshold_a=Slider("Binarization Threshold", 127, 0, 255)),
    Preprocessor("blur_gaussian", _blur, threshold_a=Slider("Sigma", 9.0, 0.01, 64.0, 0.01)),
    Preprocessor("tile_resample", _tile_resample, resolution=0,
                 threshold_a=Slider("Down Sampling Rate", 1.0, 1.0, 8.0, 0.01)),
    Preprocessor("shuffle", _shuffle),
    Preprocessor("scribble_xdog", _scribble_xdog, threshold_a=Slider("XDoG Threshold", 32, 1, 64)),
    Preprocessor("lineart_standard", _lineart_standard,
                 aliases=("lineart_standard (from white bg & black line)",)),
    Preprocessor("color", _color_grid, aliases=("t2ia_color_grid",)),
    Preprocessor("openpose", _needs_weights("openpose"), needs_weights=True),
    Preprocessor("depth_midas", _needs_weights("depth_midas"), needs_weights=True, aliases=("depth",)),
)
BY_NAME: dict[str, Preprocessor] = {alias: pre for pre in PREPROCESSORS for alias in (pre.name, *pre.aliases)}
