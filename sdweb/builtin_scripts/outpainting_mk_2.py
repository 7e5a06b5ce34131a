"""Outpainting mk2 (A1111's scripts/outpainting_mk_2.py, img2img): the image grows one side at a time; the new
strip is first filled with noise matching the picture (common/matched_noise.py), then repainted by an inpaint
job over a window of at most the job's width x height at that edge. Canvas sizes are rounded up to multiples
of 64 as A1111 does, and cut back to the grown size after each side.

`script_args`: info (a placeholder), pixels (128), mask_blur (8; the inpaint mask is blurred 4x that, as in
A1111), direction (left/right/up/down), noise_q (1.0, "fall-off exponent"), color_variation (0.05).
sdweb has no separate latent mask: the blurred mask serves both (A1111 uses a sharper one for the latents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from sdweb.builtin_scripts.common.elem import elem_prefix
from sdweb.builtin_scripts.common.matched_noise import matched_noise
from sdweb.builtin_scripts.common.results import Collected, script_result
from sdweb.extensions.api import (
    OUTPAINT_DIRECTIONS,
    GenerationResult,
    Processing,
    Script,
    UserError,
    make_grid,
)

TITLE = "Outpainting mk2"
INFO = "Recommended settings: Sampling Steps: 80-100, Sampler: Euler a, Denoising strength: 0.8"
ROUND_TO = 64


@dataclass(frozen=True)
class Growth:
    left: int
    right: int
    up: int
    down: int

    def sides(self) -> list[tuple[str, int]]:
        return [(side, amount) for side, amount in (("left", self.left), ("right", self.right), ("up", self.up),
                                                    ("down", self.down)) if amount > 0]


def plan_growth(width: int, height: int, pixels: int, directions: list[str]) -> Growth:
    """Pixels per side: the grown size rounded up to 64, shared between the two sides of an axis (A1111)."""
    def share(before: int, after: int, size: int) -> tuple[int, int]:
        if not before and not after:
            return 0, 0
        grow = math.ceil((size + before + after) / ROUND_TO) * ROUND_TO - size
        first = before * grow // (before + after) if before else 0
        return first, (grow - first) if after else 0

    left, right = share(pixels if "left" in directions else 0, pixels if "right" in directions else 0, width)
    up, down = share(pixels if "up" in directions else 0, pixels if "down" in directions else 0, height)
    return Growth(left, right, up, down)


@dataclass(frozen=True)
class SideCanvas:
    """One image grown on one side: the noise-filled canvas, the inpaint mask, the window that is repainted."""

    canvas: Image.Image
    mask: Image.Image
    window: tuple[int, int, int, int]
    grown_size: tuple[int, int]


def side_canvas(image: Image.Image, side: str, amount: int, blur: int, process_size: tuple[int, int],
                noise_q: float, color_variation: float) -> SideCanvas:
    horizontal = side in ("left", "right")
    grown = (image.width + (amount if horizontal else 0), image.height + (0 if horizontal else amount))
    canvas_size = (math.ceil(grown[0] / ROUND_TO) * ROUND_TO, math.ceil(grown[1] / ROUND_TO) * ROUND_TO)
    offset = (amount if side == "left" else 0, amount if side == "up" else 0)
    canvas = Image.new("RGB", canvas_size)
    canvas.paste(image.convert("RGB"), offset)
    mask = Image.new("L", canvas_size, 255)
    keep = (offset[0] + (blur if side == "left" else 0), offset[1] + (blur if side == "up" else 0),
            offset[0] + image.width - (blur if side == "right" else 0),
            offset[1] + image.height - (blur if side == "down" else 0))
    ImageDraw.Draw(mask).rectangle((keep[0], keep[1], keep[2] - 1, keep[3] - 1), fill=0)
    noised = matched_noise(np.asarray(canvas, dtype=np.float64) / 255, np.asarray(mask, dtype=np.float64) / 255,
                           noise_q, color_variation)
    filled = Image.fromarray(np.clip(noised * 255, 0, 255).astype(np.uint8), "RGB")
    window_w = canvas_size[0] if not horizontal else max(64, min(process_size[0], grown[0]) // 8 * 8)
    window_h = canvas_size[1] if horizontal else max(64, min(process_size[1], grown[1]) // 8 * 8)
    x0 = 0 if side == "left" else canvas_size[0] - window_w
    y0 = 0 if side == "up" else canvas_size[1] - window_h
    return SideCanvas(filled, mask, (x0, y0, x0 + window_w, y0 + window_h), grown)


class OutpaintingMk2(Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr
        prefix = elem_prefix(is_img2img, "outpainting_mk2")
        info = gr.HTML(f"<p style=\"margin-bottom:0.75em\">{INFO}</p>", elem_id=f"{prefix}_info")
        pixels = gr.Slider(label="Pixels to expand", minimum=8, maximum=256, step=8, value=128,
                           elem_id=f"{prefix}_pixels")
        mask_blur = gr.Slider(label="Mask blur", minimum=0, maximum=64, step=1, value=8, elem_id=f"{prefix}_mask_blur")
        direction = gr.CheckboxGroup(label="Outpainting direction", choices=list(OUTPAINT_DIRECTIONS),
                                     value=list(OUTPAINT_DIRECTIONS), elem_id=f"{prefix}_direction")
        noise_q = gr.Slider(label="Fall-off exponent (lower=higher detail)", minimum=0.0, maximum=4.0, step=0.01,
                            value=1.0, elem_id=f"{prefix}_noise_q")
        color_variation = gr.Slider(label="Color variation", minimum=0.0, maximum=1.0, step=0.01, value=0.05,
                                    elem_id=f"{prefix}_color_variation")
        return [info, pixels, mask_blur, direction, noise_q, color_variation]

    def run(self, p: Processing, _info: Any = "", pixels: Any = 128, mask_blur: Any = 8,
            direction: Any = OUTPAINT_DIRECTIONS, noise_q: Any = 1.0, color_variation: Any = 0.05,
            *_: Any) -> GenerationResult:
        if not p.init_images:
            raise UserError("Outpainting mk2 needs an init image.", code="missing_image")
        directions = [direction] if isinstance(direction, str) else list(direction or [])
        unknown = [name for name in directions if name not in OUTPAINT_DIRECTIONS]
        try:
            amount, blur, fall_off, variation = int(pixels), int(mask_blur), float(noise_q), float(color_variation)
        except (TypeError, ValueError):
            amount = -1
        if unknown or not directions or not 8 <= amount <= 1024 or not 0 <= blur <= 64:
            raise UserError("Outpainting mk2: pixels must be 8 to 1024, mask blur 0 to 64 and the directions "
                            f"some of {', '.join(OUTPAINT_DIRECTIONS)} (got {pixels!r}, {mask_blur!r}, {direction!r}).",
                            code="invalid_script_args")
        init = p.init_images[0].convert("RGB")
        growth = plan_growth(init.width, init.height, amount, directions)
        p.plan_runs(p.n_iter * len(growth.sides()))
        collected, process_size = Collected(), (p.width, p.height)
        for _batch in range(p.n_iter):
            images = [init] * p.batch_size
            for side, side_amount in growth.sides():
                if p.interrupted:
                    collected.interrupted = True
                    return script_result(collected)
                images = self._grow(p, images, side, side_amount, blur, process_size, (fall_off, variation),
                                    collected)
                if images is None:
                    return script_result(collected)
            infotext = collected.first.infotexts[0] if collected.first is not None else ""
            for image in images:
                collected.add_image(image, infotext, collected.first.seeds[0], collected.first.subseeds[0],
                                    p.prompt, p.negative_prompt)
        return self._finish(p, collected)

    def _grow(self, p: Processing, images: list[Image.Image], side: str, amount: int, blur: int,
              process_size: tuple[int, int], noise: tuple[float, float], collected: Collected
              ) -> list[Image.Image] | None:
        canvases = [side_canvas(image, side, amount, blur, process_size, noise[0], noise[1]) for image in images]
        window = canvases[0].window
        run = p.copy()
        run.init_images = [canvas.canvas.crop(window) for canvas in canvases]
        run.batch_size, run.n_iter = len(canvases), 1
        run.width, run.height = window[2] - window[0], window[3] - window[1]
        run.mask = canvases[0].mask.crop(window)
        run.mask_blur_x = run.mask_blur_y = blur * 4
        run.inpaint_full_res, run.inpainting_fill, run.inpainting_mask_invert = False, 1, 0
        run.do_not_save_samples, run.do_not_save_grid = True, True
        result = run.process_images()
        collected.note_run(result)
        if result.interrupted or len(result.images) < len(canvases):
            collected.interrupted = collected.interrupted or result.interrupted
            return None
        grown = []
        for canvas, painted in zip(canvases, result.images, strict=False):
            whole = canvas.canvas.copy()
            whole.paste(painted.convert("RGB"), window[:2])
            grown.append(whole.crop((0, 0, *canvas.grown_size)))
        return grown

    def _finish(self, p: Processing, collected: Collected) -> GenerationResult:
        for image, infotext, seed in zip(collected.images, collected.infotexts, collected.seeds, strict=True):
            path = p.save_image(image, infotext, seed=seed)
            if path is not None:
                collected.saved_paths.append(path)
        if len(collected.images) < 2:
            return script_result(collected)
        grid = make_grid(collected.images)
        path = p.save_image(grid, collected.infotexts[0], "grid", seed=collected.seeds[0], grid=True)
        if path is not None:
            collected.saved_paths.append(path)
        grids = [(grid, collected.infotexts[0])] if p.services.setting("return_grid", True) else []
        return script_result(collected, grids)
