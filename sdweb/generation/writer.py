"""Infotext parameters and saved files of a job (A1111's names, order, folders and counters).

Saves to one folder are serialised so two images never pick the same counter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from sdweb.config.launch_options import LaunchOptions
from sdweb.config.paths import DataPaths
from sdweb.core.errors import WriteFailedError, write_failure_message
from sdweb.core.requests import GenerationRequest, Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.hires import hires_infotext
from sdweb.generation.prompting import PreparedPrompt
from sdweb.infotext import format_infotext, order_params
from sdweb.models.manager import LoadedModel
from sdweb.models.registry import CheckpointEntry
from sdweb.outputs.filenames import FilenameContext, Taken, build_grid_path, build_image_path
from sdweb.outputs.grid import make_grid
from sdweb.outputs.guard import OutputGuard, OutputPathError
from sdweb.outputs.save import save_image, write_params_txt, write_sidecar_txt
from sdweb.samplers.resolve import scheduler_for_infotext
from sdweb.samplers.rng import recorded_source

log = logging.getLogger(__name__)

_SAVE_LOCK = threading.Lock()
SAVE_ERRORS = (WriteFailedError, OutputPathError)  # a save that failed: the image is kept, the job goes on


def infotext_params(request: GenerationRequest, model: LoadedModel, prepared: PreparedPrompt, resolution: Any,
                    seed: int, subseed: int, settings: Mapping[str, Any], version: str,
                    device: str = "cuda") -> dict[str, Any]:
    """One image's parameter line, in A1111's order (None values are left out)."""
    clip_skip = int(settings.get("CLIP_stop_at_last_layers", 1))
    params: dict[str, Any] = {
        "Steps": request.steps,
        "Sampler": resolution.sampler.name,
        "Schedule type": scheduler_for_infotext(resolution.sampler, resolution.scheduler),
        "CFG scale": request.cfg_scale,
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model hash": model.entry.shorthash if settings.get("add_model_hash_to_info", True) else None,
        "Model": model.entry.name_for_extra if settings.get("add_model_name_to_info", True) else None,
        "Variation seed": subseed if request.subseed_strength > 0 else None,
        "Variation seed strength": request.subseed_strength if request.subseed_strength > 0 else None,
        "Seed resize from": f"{request.seed_resize_from_w}x{request.seed_resize_from_h}"
        if request.seed_resize_from_w > 0 and request.seed_resize_from_h > 0 else None,
        "Denoising strength": request.denoising_strength if isinstance(request, Img2ImgRequest) else None,
        "Clip skip": clip_skip if clip_skip > 1 else None,
        "ENSD": int(settings["eta_noise_seed_delta"]) if settings.get("eta_noise_seed_delta") and
        resolution.sampler.uses_ensd else None,
        "RNG": recorded_source(str(settings.get("randn_source") or "GPU"), device),
        "Tiling": True if request.tiling else None,
    }
    if isinstance(request, Txt2ImgRequest) and request.enable_hr:
        params.update(hires_infotext(request))
    if isinstance(request, Img2ImgRequest) and request.mask is not None:
        params["Mask blur"] = request.mask_blur_x
        if request.inpainting_mask_invert:
            params["Mask mode"] = "Inpaint not masked"
        if request.inpaint_full_res:
            params["Inpaint area"] = "Only masked"
            params["Masked area padding"] = request.inpaint_full_res_padding
    params.update(prepared.extra_params)
    if settings.get("add_version_to_infotext", True):
        params["Version"] = f"sdweb-v{version}"
    return order_params({k: v for k, v in params.items() if v is not None})


class OutputWriter:
    """Saves a job's images, grids and params.txt. A failed save raises one of SAVE_ERRORS (a clear message
    naming the file); a failed params.txt is only logged."""

    def __init__(self, paths: DataPaths, settings: Mapping[str, Any], options: LaunchOptions, mode: str,
                 job_time: datetime, guard: OutputGuard | None = None) -> None:
        self.paths = paths
        self.settings = settings
        self.options = options
        self.mode = mode
        self.job_time = job_time
        self.guard = guard or OutputGuard(paths.data_dir)

    def format(self, prompt: str, negative: str, params: Mapping[str, Any]) -> str:
        return format_infotext(prompt, negative, params)

    def _outdir(self, kind: str) -> Path:
        key = "outdir_samples" if kind == "images" else "outdir_grids"
        folder = self.settings.get(key) or ""
        if not folder:
            key = f"outdir_{self.mode}_{'samples' if kind == 'images' else 'grids'}"
            folder = self.settings.get(key) or f"outputs/{self.mode}-{kind}"
        return self.guard.output_folder(str(folder), key)

    def _context(self, request: GenerationRequest, checkpoint: CheckpointEntry | None, prompt: str, seed: int,
                 batch_index: int = 0, index: int = 0) -> FilenameContext:
        return FilenameContext(
            seed=seed, steps=request.steps, cfg_scale=request.cfg_scale, width=request.width,
            height=request.height, sampler=request.sampler_name, scheduler=request.scheduler,
            model_hash=checkpoint.shorthash if checkpoint else None,
            model_name=checkpoint.model_name if checkpoint else None, prompt=prompt, main_prompt=request.prompt,
            negative_prompt=request.negative_prompt, styles=tuple(request.styles), job_timestamp=self.job_time,
            batch_number=batch_index + 1, batch_size=request.batch_size, n_iter=request.n_iter,
            generation_number=batch_index * request.batch_size + index + 1,
            clip_skip=int(self.settings.get("CLIP_stop_at_last_layers", 1)),
            denoising=getattr(request, "denoising_strength", None))

    def _save(self, image: Image.Image, kind: str, path_of: Callable[[Path, Taken], Path], infotext: str,
              fmt_key: str) -> Path:
        outdir = self._outdir(kind)
        save_txt = bool(self.settings.get("save_txt"))
        with _SAVE_LOCK:
            path = self.guard.inside(path_of(outdir, self.guard.taken_with_sidecar(save_txt)), outdir)
            try:
                saved = save_image(image, path, infotext if self.settings.get("enable_pnginfo", True) else None,
                                   path.suffix.lstrip(".") or str(self.settings.get(fmt_key, "png")),
                                   jpeg_quality=int(self.settings.get("jpeg_quality", 80)),
                                   webp_lossless=bool(self.settings.get("webp_lossless", False)))
                self.guard.record(saved)
                if save_txt:
                    path = saved.with_suffix(".txt")
                    self.guard.record(write_sidecar_txt(saved, infotext))
            except OSError as error:
                raise WriteFailedError(error, path) from error
        return saved

    def save_sample(self, image: Image.Image, infotext: str, request: GenerationRequest,
                    checkpoint: CheckpointEntry | None, prompt: str, seed: int, batch_index: int, index: int = 0
                    ) -> Path:
        context = self._context(request, checkpoint, prompt, seed, batch_index, index)
        limit = self.options.filenames_max_length or 128
        unix = self.options.unix_filenames_sanitization

        def path_of(outdir: Path, taken: Taken) -> Path:
            return build_image_path(outdir, context, self.settings, max_length=limit, unix_sanitization=unix,
                                    taken=taken)

        return self._save(image, "images", path_of, infotext, "samples_format")

    def make_grid(self, images: list[Image.Image], batch_size: int) -> Image.Image:
        return make_grid(images, n_rows=int(self.settings.get("n_rows", -1)), batch_size=batch_size,
                         prevent_empty_spots=bool(self.settings.get("grid_prevent_empty_spots", False)))

    def save_grid(self, grid: Image.Image, infotext: str, request: GenerationRequest, seed: int,
                  basename: str = "grid") -> Path:
        context = self._context(request, None, request.prompt, seed)

        def path_of(outdir: Path, taken: Taken) -> Path:
            return build_grid_path(outdir, context, self.settings, taken=taken, basename=basename)

        return self._save(grid, "grids", path_of, infotext, "grid_format")

    def write_params(self, infotext: str) -> None:
        """params.txt (the last job's infotext); a failure to write it never fails the job."""
        if self.options.no_prompt_history:
            return
        try:
            self.guard.record(write_params_txt(self.paths.params_file, infotext))
        except OSError as error:
            log.warning("params.txt not written: %s", write_failure_message(error, self.paths.params_file))
