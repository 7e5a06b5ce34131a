"""SD upscale (A1111's scripts/sd_upscale.py, img2img): the init image is upscaled, cut into overlapping tiles
of the job's width x height, each tile repainted by img2img (batch size tiles at a time), and the tiles put
back together. Batch count gives that many upscales, seed + n each.

`script_args`: info (a placeholder), overlap (64), upscaler (index into GET /upscalers, or its name; "None"),
scale_factor (2.0). `["", 8, "Lanczos", 2.0]` upscales twice with Lanczos, tiles overlapping by 8 pixels.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from sdweb.builtin_scripts.common.elem import elem_prefix
from sdweb.builtin_scripts.common.results import Collected, script_result
from sdweb.builtin_scripts.common.tiles import combine_tiles, split_tiles, tile_layout
from sdweb.extensions.api import ExtensionContext, GenerationResult, Processing, Script, UserError

log = logging.getLogger(__name__)
TITLE = "SD upscale"
INFO = "Will upscale the image by the selected scale factor; use width and height sliders to set tile size"


def upscaler_name(chosen: Any, names: list[str]) -> str:
    """A1111 sends the upscaler's index (its UI radio is type="index"); sdweb's page sends the name."""
    if isinstance(chosen, int | float) and not isinstance(chosen, bool) or str(chosen).strip().isdigit():
        index = int(chosen)
        if not 0 <= index < len(names):
            raise UserError(f"SD upscale: upscaler index {index} is not 0 to {len(names) - 1}.",
                            code="invalid_script_args", hint=f"Upscalers: {', '.join(names)}.")
        return names[index]
    wanted = str(chosen or "None").strip().casefold()
    found = next((name for name in names if name.casefold() == wanted), None)
    if found is None:
        raise UserError(f"SD upscale: upscaler {chosen!r} not found.", code="invalid_script_args",
                        hint=f"Upscalers: {', '.join(names)}.")
    return found


def _number(value: Any, name: str, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise UserError(f"SD upscale: {name} {value!r} is not a number.", code="invalid_script_args") from None


class SDUpscale(Script):
    def __init__(self, context: ExtensionContext) -> None:
        self.context = context

    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr
        prefix = elem_prefix(is_img2img, "sd_upscale")
        info = gr.HTML(f"<p style=\"margin-bottom:0.75em\">{INFO}</p>", elem_id=f"{prefix}_info")
        overlap = gr.Slider(minimum=0, maximum=256, step=16, label="Tile overlap", value=64,
                            elem_id=f"{prefix}_overlap")
        scale = gr.Slider(minimum=1.0, maximum=4.0, step=0.05, label="Scale Factor", value=2.0,
                          elem_id=f"{prefix}_scale_factor")
        names = self.context.services.upscaler_names() if self.context.services is not None else ["None"]
        upscaler = gr.Radio(label="Upscaler", choices=names, value=names[0], elem_id=f"{prefix}_upscaler_index")
        return [info, overlap, upscaler, scale]

    def run(self, p: Processing, _info: Any = "", overlap: Any = 64, upscaler: Any = "None",
            scale_factor: Any = 2.0, *_: Any) -> GenerationResult:
        if not p.init_images:
            raise UserError("SD upscale needs an init image.", code="missing_image")
        services = p.services
        name = upscaler_name(upscaler, services.upscaler_names())
        overlap_px, scale = int(_number(overlap, "overlap", 64)), _number(scale_factor, "scale factor", 2.0)
        if not 0 < scale <= 8:
            raise UserError(f"SD upscale: scale factor {scale:g} is not between 0 and 8.", code="invalid_script_args")
        p.fix_seed()
        p.extra_generation_params["SD upscale overlap"] = overlap_px
        p.extra_generation_params["SD upscale upscaler"] = name
        upscaled = services.upscale(p.init_images[0].convert("RGB"), name, scale)
        try:
            layout = tile_layout(upscaled.width, upscaled.height, p.width, p.height, overlap_px)
        except ValueError as error:
            raise UserError(f"SD upscale: {error}.", code="invalid_script_args",
                            hint="Width and height set the tile size: make them at most the upscaled size.") from None
        tiles = [tile.image for tile in split_tiles(upscaled, layout)]
        batch_size, upscale_count = p.batch_size, p.n_iter
        batches = math.ceil(len(tiles) / batch_size)
        log.info("SD upscale: %d tiles of %dx%d (%dx%d) per upscale, %d batches in all", len(tiles), p.width,
                 p.height, len(layout.xs), len(layout.ys), batches * upscale_count)
        p.plan_runs(batches * upscale_count)
        return self._upscale_all(p, tiles, layout, batch_size, upscale_count)

    def _upscale_all(self, p: Processing, tiles: list[Any], layout: Any, batch_size: int,
                     upscale_count: int) -> GenerationResult:
        collected, start_seed = Collected(), p.seed
        for number in range(upscale_count):
            seed, repainted, first_infotext = start_seed + number, [], None
            for start in range(0, len(tiles), batch_size):
                if p.interrupted:
                    collected.interrupted = True
                    return script_result(collected)
                run = p.copy()
                batch = tiles[start:start + batch_size]
                run.batch_size, run.n_iter, run.seed = len(batch), 1, seed  # before the images: validated
                run.init_images = batch
                run.do_not_save_grid, run.do_not_save_samples = True, True
                result = run.process_images()
                collected.note_run(result)
                if result.interrupted or not result.images:
                    collected.interrupted = True
                    return script_result(collected)
                first_infotext = first_infotext or result.infotexts[0]
                seed = result.seeds[0] + 1
                repainted += result.images
            combined = combine_tiles(repainted, layout)
            infotext = first_infotext or ""
            path = p.save_image(combined, infotext, seed=start_seed + number)
            if path is not None:
                collected.saved_paths.append(path)
            collected.add_image(combined, infotext, start_seed + number, p.subseed, p.prompt, p.negative_prompt)
        return script_result(collected)


def setup(context: ExtensionContext) -> None:
    context.add_script(SDUpscale(context))
