"""The gallery's 💾 Save and 🗃️ Zip buttons, as A1111: copies of the shown images in ``log/images`` (setting
``outdir_save``), one row per click in ``log.csv`` there, and optionally a zip of them.

Every file is written atomically: the images and the zip through a temp file, the CSV rewritten whole with
the new row appended (an older ``log.csv`` with fewer columns gets the missing ones added, as A1111 does).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image

from sdweb.core.atomic import atomic_write_bytes
from sdweb.infotext import parse_infotext
from sdweb.outputs.filenames import FilenameContext, apply_pattern, build_image_path
from sdweb.outputs.save import save_image

LOG_FIELDS = ("prompt", "seed", "width", "height", "sampler", "cfgs", "steps", "filename", "negative_prompt",
              "sd_model_name", "sd_model_hash")
ZIP_PATTERN = "[datetime]_[[model_name]]_[seed]-[seed_last]"


@dataclass(frozen=True)
class SavedFiles:
    images: list[Path]
    log_csv: Path
    zip_file: Path | None = None

    def all_paths(self) -> list[Path]:
        return ([self.zip_file] if self.zip_file else []) + self.images


def _int(value: object, default: int | None = None) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _context(params: Mapping[str, object], image: Image.Image, all_seeds: tuple[int, ...] = ()) -> FilenameContext:
    return FilenameContext(seed=_int(params.get("Seed")), all_seeds=all_seeds, batch_size=max(1, len(all_seeds)),
                           steps=_int(params.get("Steps")),
                           width=image.width, height=image.height, sampler=str(params.get("Sampler") or "") or None,
                           model_hash=str(params.get("Model hash") or "") or None,
                           model_name=str(params.get("Model") or "") or None, prompt=str(params.get("Prompt") or ""),
                           main_prompt=str(params.get("Prompt") or ""),
                           negative_prompt=str(params.get("Negative prompt") or ""), now=datetime.now())


def _log_row(params: Mapping[str, object], image: Image.Image, filename: str) -> list[str]:
    return [str(params.get("Prompt", "")), str(params.get("Seed", "")), str(image.width), str(image.height),
            str(params.get("Sampler", "")), str(params.get("CFG scale", "")), str(params.get("Steps", "")), filename,
            str(params.get("Negative prompt", "")), str(params.get("Model", "")), str(params.get("Model hash", ""))]


def appended_log(existing: str, row: Sequence[str]) -> str:
    """``log.csv`` text with ``row`` added: the header written first in a new file; an older header with fewer
    columns is replaced by the current one and its rows padded (A1111's update_logfile)."""
    rows = list(csv.reader(io.StringIO(existing))) if existing.strip() else []
    if not rows or rows[0] != list(LOG_FIELDS):
        body = rows[1:] if rows and rows[0] and rows[0][0] == LOG_FIELDS[0] else rows
        rows = [list(LOG_FIELDS)] + [old + [""] * (len(LOG_FIELDS) - len(old)) for old in body]
    rows.append(list(row))
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def save_to_log(images: Sequence[tuple[Image.Image, str | None]], folder: Path, settings: Mapping[str, object],
                make_zip: bool = False) -> SavedFiles:
    """Save each (image, infotext) in ``folder`` with A1111's names (``00012-<seed>.png``, no date folder),
    add one ``log.csv`` row for the first, and with ``make_zip`` a zip of them all."""
    if not images:
        raise ValueError("there are no images to save")
    folder = Path(folder)
    # no date folder; the name decoration still follows the save_to_dirs setting, as A1111's Save button does
    pattern = settings.get("samples_filename_pattern") or (
        "[seed]" if settings.get("save_to_dirs", True) else "[seed]-[prompt_spaces]")
    names = {**settings, "save_to_dirs": False, "samples_filename_pattern": pattern}
    fmt = str(settings.get("samples_format", "png"))
    parsed = [parse_infotext(text or "") for _, text in images]
    saved: list[Path] = []
    for (image, infotext), params in zip(images, parsed, strict=True):
        path = build_image_path(folder, _context(params, image), names)
        text = infotext if settings.get("enable_pnginfo", True) else None
        saved.append(save_image(image, path, text, path.suffix.lstrip(".") or fmt,
                                jpeg_quality=_int(settings.get("jpeg_quality"), 80) or 80))
    log_csv = folder / "log.csv"
    existing = log_csv.read_text(encoding="utf-8") if log_csv.is_file() else ""
    first_image = images[0][0]
    atomic_write_bytes(log_csv, appended_log(existing, _log_row(parsed[0], first_image, saved[0].name)).encode())
    zip_file = None
    if make_zip:
        seeds = tuple(seed for seed in (_int(p.get("Seed")) for p in parsed) if seed is not None)
        stem = apply_pattern(ZIP_PATTERN, _context(parsed[0], first_image, seeds)) or "images"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for path in saved:
                archive.write(path, arcname=path.name)
        zip_file = atomic_write_bytes(folder / f"{stem}.zip", buffer.getvalue())
    return SavedFiles(images=saved, log_csv=log_csv, zip_file=zip_file)
