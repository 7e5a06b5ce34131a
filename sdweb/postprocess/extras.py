"""The Extras tab as a service: upscale (by a factor or to a size, optional crop, second upscaler blended by
visibility), GFPGAN and CodeFormer face restoration; single image, a batch, or a folder in and out.

Order: with ``upscale_first`` the image is upscaled and then faces are restored (A1111 v1.10's fixed order);
without, faces are restored first, on the smaller image (older A1111), then it is upscaled.

Saved results go to outputs/extras-images (setting ``outdir_extras_samples``) as ``NNNNN.png`` (batches with
file names keep the name: ``use_original_name_batch``). A PNG keeps the source's text chunks (its
``parameters`` infotext untouched) and gets the postprocessing text in ``postprocessing`` and ``extras``
chunks, as A1111 writes it; JPEG/WebP, which hold one text, get the source infotext with the postprocessing
keys appended to its parameter line.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from sdweb.core.errors import UserError, WriteFailedError
from sdweb.infotext import quote
from sdweb.outputs.filenames import build_extras_path
from sdweb.outputs.guard import OutputGuard
from sdweb.outputs.save import read_infotext, save_image
from sdweb.postprocess.faces import FaceRestoration
from sdweb.postprocess.upscalers import UpscalerRegistry, target_size

log = logging.getLogger(__name__)

__all__ = [
    "IMAGE_SUFFIXES",
    "ExtrasInput",
    "ExtrasRequest",
    "ExtrasResult",
    "format_postprocess_info",
    "postprocess_image",
    "run_extras",
    "run_extras_folder",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif")
MAX_SCALE = 16.0
MAX_SIDE = 16384
_SAVE_LOCK = threading.Lock()

ExtrasProgress = Callable[[int, int], None]  # (images done, images in all)


class ExtrasRequest(BaseModel):
    """A1111's ExtrasBaseRequest fields and defaults (the API's); ``max_side_length`` is the UI's extra."""

    model_config = ConfigDict(extra="forbid")

    resize_mode: Literal[0, 1] = 0
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0.0, ge=0.0, le=1.0)
    codeformer_visibility: float = Field(0.0, ge=0.0, le=1.0)
    codeformer_weight: float = Field(0.0, ge=0.0, le=1.0)
    upscaling_resize: float = Field(2.0, gt=0.0, le=MAX_SCALE)
    upscaling_resize_w: int = Field(512, ge=1, le=MAX_SIDE)
    upscaling_resize_h: int = Field(512, ge=1, le=MAX_SIDE)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(0.0, ge=0.0, le=1.0)
    upscale_first: bool = False
    max_side_length: int = Field(0, ge=0, le=MAX_SIDE)


@dataclass(frozen=True)
class ExtrasInput:
    image: Image.Image
    name: str | None = None  # the file name it came from (kept for saving when use_original_name_batch)


@dataclass
class ExtrasResult:
    images: list[Image.Image] = field(default_factory=list)  # each with info["postprocessing"]
    infotexts: list[str] = field(default_factory=list)  # the postprocessing text of each image
    saved_paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # inputs that were skipped, and why

    @property
    def html_info(self) -> str:
        """The last image's postprocessing text as HTML (what A1111 returns as html_info)."""
        text = self.infotexts[-1] if self.infotexts else ""
        return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"


def format_postprocess_info(info: Mapping[str, Any]) -> str:
    return ", ".join(key if key == value else f"{key}: {quote(value)}" for key, value in info.items()
                     if value is not None)


def _check_upscalers(request: ExtrasRequest, upscalers: UpscalerRegistry) -> None:
    for name in (request.upscaler_1, request.upscaler_2):
        if name and name != "None":
            upscalers.find(name)  # NotFoundError lists the names


def _size_plan(request: ExtrasRequest, width: int, height: int, info: dict[str, Any]
               ) -> tuple[int, int, tuple[int, int] | None]:
    """(upscaled width, height, crop size or None) and the infotext keys that describe them."""
    if request.resize_mode == 1:
        target_w, target_h = request.upscaling_resize_w, request.upscaling_resize_h
        scale = max(target_w / width, target_h / height)
        info["Postprocess upscale to"] = f"{target_w}x{target_h}"
        cover_w, cover_h = target_size(width, height, scale)
        if request.upscaling_crop:  # cover the box, then cut the centre
            return max(cover_w, target_w), max(cover_h, target_h), (target_w, target_h)
        return cover_w, cover_h, None
    scale = request.upscaling_resize
    info["Postprocess upscale by"] = int(scale) if float(scale).is_integer() else scale  # "2", as A1111 writes
    new_w, new_h = target_size(width, height, scale)
    limit = request.max_side_length
    if limit and max(new_w, new_h) > limit:
        ratio = limit / max(new_w, new_h)
        new_w, new_h = max(1, round(new_w * ratio)), max(1, round(new_h * ratio))
        info["Max side length"] = limit
    return new_w, new_h, None


def _crop_centre(image: Image.Image, size: tuple[int, int] | None) -> Image.Image:
    if size is None or image.size == size:
        return image
    left, top = (image.width - size[0]) // 2, (image.height - size[1]) // 2
    return image.crop((left, top, left + size[0], top + size[1]))


def _upscale(image: Image.Image, request: ExtrasRequest, upscalers: UpscalerRegistry, settings: Mapping[str, Any],
             info: dict[str, Any]) -> Image.Image:
    if request.upscaler_1 in ("", "None"):
        return image  # A1111: no first upscaler, no upscaling (the second is not used alone)
    width, height, crop = _size_plan(request, image.width, image.height, info)
    upscaled = _crop_centre(upscalers.upscale_to(image, request.upscaler_1, width, height, settings), crop)
    if crop is not None:
        info["Postprocess crop to"] = f"{crop[0]}x{crop[1]}"
    info["Postprocess upscaler"] = upscalers.find(request.upscaler_1).name
    if request.upscaler_2 not in ("", "None") and request.extras_upscaler_2_visibility > 0:
        second = _crop_centre(upscalers.upscale_to(image, request.upscaler_2, width, height, settings), crop)
        upscaled = Image.blend(upscaled, second.convert(upscaled.mode), request.extras_upscaler_2_visibility)
        info["Postprocess upscaler 2"] = upscalers.find(request.upscaler_2).name
    return upscaled


def _restore_faces(image: Image.Image, request: ExtrasRequest, faces: FaceRestoration,
                   info: dict[str, Any]) -> Image.Image:
    if request.gfpgan_visibility > 0:
        image = faces.restore(image, "GFPGAN", request.gfpgan_visibility)
        info["GFPGAN visibility"] = round(request.gfpgan_visibility, 3)
    if request.codeformer_visibility > 0:
        image = faces.restore(image, "CodeFormer", request.codeformer_visibility, request.codeformer_weight)
        info["CodeFormer visibility"] = round(request.codeformer_visibility, 3)
        info["CodeFormer weight"] = round(request.codeformer_weight, 3)
    return image


def postprocess_image(image: Image.Image, request: ExtrasRequest, upscalers: UpscalerRegistry,
                      faces: FaceRestoration, settings: Mapping[str, Any]) -> tuple[Image.Image, str]:
    """One image through the Extras steps: (result in RGB, its postprocessing text)."""
    info: dict[str, Any] = {}
    result = image.convert("RGB")
    if request.upscale_first:
        result = _restore_faces(_upscale(result, request, upscalers, settings, info), request, faces, info)
    else:
        result = _upscale(_restore_faces(result, request, faces, info), request, upscalers, settings, info)
    return result, format_postprocess_info(info)


def _outdir(paths: Any, settings: Mapping[str, Any], guard: OutputGuard) -> Path:
    key = "outdir_samples" if settings.get("outdir_samples") else "outdir_extras_samples"
    return guard.output_folder(str(settings.get(key) or "outputs/extras-images"), key)


def _save(result: Image.Image, source: Image.Image, postprocess: str, name: str | None, folder: Path,
          settings: Mapping[str, Any], guard: OutputGuard) -> Path:
    source_infotext, items = read_infotext(source)
    keep_name = name if name and settings.get("use_original_name_batch", True) else None
    fmt = str(settings.get("samples_format", "png")).lower()
    with _SAVE_LOCK:
        path = guard.inside(build_extras_path(folder, settings, width=result.width, height=result.height,
                                              forced_filename=Path(keep_name).stem if keep_name else None,
                                              taken=guard.is_taken), folder)
        try:
            saved = _write(result, path, source_infotext, items, postprocess, settings, fmt)
        except OSError as error:
            raise WriteFailedError(error, path) from error
        guard.record(saved)
        return saved


def _write(result: Image.Image, path: Path, source_infotext: str | None, items: Mapping[str, Any],
           postprocess: str, settings: Mapping[str, Any], fmt: str) -> Path:
    if not settings.get("enable_pnginfo", True):
        return save_image(result, path, None, path.suffix.lstrip(".") or fmt)
    if path.suffix.lower() == ".png":
        chunks = {key: value for key, value in items.items() if isinstance(value, str)
                  and key not in ("postprocessing", "extras")}
        if postprocess:
            chunks.update({"postprocessing": postprocess, "extras": postprocess})
        return save_image(result, path, source_infotext, "png", extra_text=chunks)
    text = source_infotext or ""
    if postprocess:
        text = f"{text}, {postprocess}" if text else postprocess
    return save_image(result, path, text or None, path.suffix.lstrip("."),
                      jpeg_quality=int(settings.get("jpeg_quality", 80)),
                      webp_lossless=bool(settings.get("webp_lossless", False)))


def run_extras(request: ExtrasRequest, inputs: Sequence[ExtrasInput], upscalers: UpscalerRegistry,
               faces: FaceRestoration, settings: Mapping[str, Any], paths: Any, *, save: bool,
               output_dir: Path | None = None, progress: ExtrasProgress | None = None,
               guard: OutputGuard | None = None) -> ExtrasResult:
    """Process every input; ``save`` writes each result (to ``output_dir`` or outputs/extras-images).

    ``show_extras_results`` false: nothing is returned in ``images`` (the files are still saved).
    Names are checked before any work: an unknown upscaler is a NotFoundError naming it, a folder this server
    may not write an OutputPathError. A save that fails (a full disk) is a note; the image is still returned.
    """
    _check_upscalers(request, upscalers)
    if not inputs:
        raise UserError("No image to process.", code="no_image", hint="Add an image (or a folder with images).")
    guard = guard or OutputGuard(Path(paths.data_dir))
    result = ExtrasResult()
    folder = None
    if save:
        folder = guard.output_folder(output_dir, "Output directory") if output_dir else \
            _outdir(paths, settings, guard)
    for index, item in enumerate(inputs):
        image, postprocess = postprocess_image(item.image, request, upscalers, faces, settings)
        if postprocess:
            image.info["postprocessing"] = postprocess
        source_infotext, _ = read_infotext(item.image)
        if source_infotext:
            image.info["parameters"] = source_infotext
        if folder is not None:
            try:
                result.saved_paths.append(_save(image, item.image, postprocess, item.name, folder, settings, guard))
            except WriteFailedError as error:
                note = f"Not saved: {error.message}"
                if note not in result.notes:
                    log.warning("%s", note)
                    result.notes.append(note)
                if not request.show_extras_results:
                    result.images.append(image)  # nothing on disk: the result must not be lost
        if request.show_extras_results:
            result.images.append(image)
        result.infotexts.append(postprocess)
        if progress is not None:
            progress(index + 1, len(inputs))
    return result


def folder_inputs(input_dir: Path) -> tuple[list[ExtrasInput], list[str]]:
    """The images in a folder (sorted by name, not recursive) and a note for each file that is not one."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise UserError(f"Input folder {folder} does not exist.", code="bad_folder",
                        hint="Give the path of a folder that holds the images.")
    inputs, notes = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.copy()
                image.info = dict(opened.info)
        except (OSError, UnidentifiedImageError, ValueError) as error:
            notes.append(f"{path.name} skipped: not a readable image ({error})")
            continue
        inputs.append(ExtrasInput(image, path.name))
    return inputs, notes


def run_extras_folder(request: ExtrasRequest, input_dir: Path, output_dir: Path | None,
                      upscalers: UpscalerRegistry, faces: FaceRestoration, settings: Mapping[str, Any], paths: Any,
                      progress: ExtrasProgress | None = None, guard: OutputGuard | None = None) -> ExtrasResult:
    """"Batch from Directory": every image in ``input_dir`` saved to ``output_dir`` (empty: extras-images)."""
    guard = guard or OutputGuard(Path(paths.data_dir))
    inputs, notes = folder_inputs(guard.input_folder(input_dir, "Input directory"))
    if not inputs:
        raise UserError(f"No images in {input_dir}.", code="no_image",
                        hint=f"The folder needs {', '.join(IMAGE_SUFFIXES)} files.")
    result = run_extras(request, inputs, upscalers, faces, settings, paths, save=True, output_dir=output_dir,
                        progress=progress, guard=guard)
    result.notes[:0] = notes
    return result
