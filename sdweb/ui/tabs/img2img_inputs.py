"""Pure helpers of the img2img tab: the active sub-tab's images and mask, batch folders.

Tested without a browser; gr.Error carries the message the user reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from sdweb.core.requests import Img2ImgRequest
from sdweb.ui.common import make_request, user_error

MODES = ("img2img", "sketch", "inpaint", "inpaint_sketch", "inpaint_upload", "batch")
INPAINT_MODES = ("inpaint", "inpaint_sketch", "inpaint_upload")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def painted_area(layers: list[Any], size: tuple[int, int] | None) -> np.ndarray | None:
    """True where any editor layer has paint (alpha > 0), at `size`; None when nothing is painted."""
    painted = None
    for layer in layers:
        if layer is None:
            continue
        alpha = np.asarray(layer.convert("RGBA"))[..., 3] > 0
        painted = alpha if painted is None or painted.shape != alpha.shape else painted | alpha
    if painted is None or not painted.any():
        return None
    if size is not None and (painted.shape[1], painted.shape[0]) != size:
        resized = Image.fromarray(painted.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
        painted = np.asarray(resized) > 0
    return painted


def mask_from_editor(value: Mapping[str, Any] | None) -> Image.Image | None:
    """The painted mask of an ImageMask/ImageEditor value: white where paint is, at the background's size."""
    if not value:
        return None
    background = value.get("background")
    painted = painted_area(list(value.get("layers") or []), background.size if background is not None else None)
    if painted is None:
        return None
    return Image.fromarray(painted.astype(np.uint8) * 255, mode="L")


def _rgb(image: Image.Image | None) -> Image.Image | None:
    return None if image is None else image.convert("RGB")


def _editor_images(value: Mapping[str, Any] | None, tab: str, composite: bool) -> tuple[Image.Image, Any]:
    editor = value or {}
    init = _rgb(editor.get("composite") if composite else editor.get("background")) or _rgb(editor.get("background"))
    if init is None:
        raise user_error(f"Upload an image in the {tab} tab first.")
    return init, mask_from_editor(editor)


def images_for_mode(mode: str, images: Mapping[str, Any]) -> tuple[Image.Image, Image.Image | None]:
    """(init image, mask or None) from the active sub-tab; gr.Error when the user has not given enough."""
    if mode == "sketch":
        init, _ = _editor_images(images.get("sketch"), "Sketch", composite=True)
        return init, None
    if mode in ("inpaint", "inpaint_sketch"):
        tab = "Inpaint" if mode == "inpaint" else "Inpaint sketch"
        # Inpaint sketch: the coloured strokes are both new content (composite) and the mask.
        init, mask = _editor_images(images.get(mode), tab, composite=mode == "inpaint_sketch")
        if mask is None:
            raise user_error(f"Paint the area to change on the image in the {tab} tab (the mask is empty).")
        return init, mask
    if mode == "inpaint_upload":
        init, mask = _rgb(images.get("inpaint_base")), images.get("inpaint_mask")
        if init is None or mask is None:
            raise user_error("Inpaint upload needs both an image and a mask.")
        return init, mask
    init = _rgb(images.get("init_img"))
    if init is None:
        raise user_error("Upload an image in the img2img tab first.")
    return init, None


def active_image(mode: str, images: Mapping[str, Any]) -> Image.Image | None:
    """The active sub-tab's picture (sketches with their strokes), or None when there is none."""
    if mode in ("sketch", "inpaint", "inpaint_sketch"):
        editor = images.get(mode) or {}
        image = editor.get("composite") if editor.get("composite") is not None else editor.get("background")
    elif mode == "inpaint_upload":
        image = images.get("inpaint_base")
    else:
        image = images.get("init_img")
    return image if isinstance(image, Image.Image) else None


def upload_mask(mask: Image.Image) -> Image.Image:
    """An uploaded mask as "L": white = change. A transparent PNG counts by alpha, else by brightness."""
    if mask.mode in ("RGBA", "LA") and np.asarray(mask.getchannel("A")).min() < 255:
        return mask.getchannel("A")
    return mask.convert("L")


def img2img_request(values: Mapping[str, Any], mode: str, images: Mapping[str, Any]) -> Img2ImgRequest:
    """`{field name: value}` + the active sub-tab's images -> the typed request."""
    init, mask = images_for_mode(mode, images)
    fields = dict(values)
    blur = int(fields.pop("mask_blur", 4) or 0)
    if mode not in INPAINT_MODES:
        mask = None
    elif mode == "inpaint_upload" and mask is not None:
        mask = upload_mask(mask)
    fields.update({"init_images": [init], "mask": mask, "mask_blur_x": blur, "mask_blur_y": blur})
    return make_request(Img2ImgRequest, fields)


@dataclass(frozen=True)
class BatchItem:
    source: Path
    image: Image.Image
    mask: Image.Image | None


@dataclass(frozen=True)
class BatchFolder:
    items: list[BatchItem]
    skipped: list[str]  # "name: why" for each file that could not be read (never touched)

    def skipped_note(self) -> str:
        return f"Skipped {len(self.skipped)} unreadable file(s): {'; '.join(self.skipped)}." if self.skipped else ""


def batch_items(input_dir: str, mask_dir: str = "") -> BatchFolder:
    """The images of a batch input folder (sorted by name), each with the same-stem mask from `mask_dir`; the
    files that cannot be read are listed, not silently dropped."""
    folder = Path((input_dir or "").strip()).expanduser()
    if not str(input_dir or "").strip() or not folder.is_dir():
        raise user_error(f"Batch input directory {input_dir!r} does not exist; type the path of a folder of images.")
    masks_folder = Path(mask_dir.strip()).expanduser() if mask_dir and mask_dir.strip() else None
    if masks_folder is not None and not masks_folder.is_dir():
        raise user_error(f"Batch mask directory {mask_dir!r} does not exist; leave it empty for plain img2img.")
    items, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        image, problem = _open(path)
        if image is None:
            skipped.append(f"{path.name} ({problem})")
            continue
        mask = None
        if masks_folder is not None:
            candidates = [m for m in masks_folder.iterdir() if m.stem == path.stem and m.suffix.lower() in
                          IMAGE_SUFFIXES]
            mask, problem = _open(candidates[0]) if candidates else (None, "")
            if candidates and mask is None:
                skipped.append(f"mask {candidates[0].name} ({problem}); {path.name} done without a mask")
        items.append(BatchItem(source=path, image=image.convert("RGB"), mask=upload_mask(mask) if mask else None))
    if not items:
        note = f" {BatchFolder([], skipped).skipped_note()}" if skipped else ""
        raise user_error(f"No images (.png, .jpg, .webp, .bmp) found in {folder}.{note}")
    return BatchFolder(items, skipped)


def _open(path: Path) -> tuple[Image.Image | None, str]:
    """(a readable image, "") or (None, why): an unreadable file is reported, never touched."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy(), ""
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        return None, str(error).split(" (", 1)[0] if "cannot identify" in str(error) else type(error).__name__


def batch_output_settings(output_dir: str, source: Path, several: bool) -> dict[str, object]:
    """A1111's batch naming: `<output dir>/<input name>.png` (`<name>-<n>` when a run makes several images), no
    date folder, no counter."""
    stem = source.stem.replace("[", "(").replace("]", ")")  # brackets would read as pattern tags
    return {"outdir_samples": output_dir, "save_to_dirs": False, "save_images_add_number": False,
            "samples_filename_pattern": f"{stem}-[generation_number]" if several else stem}
