"""A1111's `modules.images`: `save_image` (sdweb's atomic writer, infotext embedded), `read_info_from_image`,
`FilenameGenerator` (a small subset of A1111's [tags]), `image_grid`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PIL import Image

from sdweb.compat.a1111.world import WORLD
from sdweb.outputs.filenames import next_counter
from sdweb.outputs.filenames import sanitize_filename_part as sanitize
from sdweb.outputs.grid import make_grid
from sdweb.outputs.save import read_infotext
from sdweb.outputs.save import save_image as write_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".avif", ".gif")


class FilenameGenerator:
    """The [seed], [prompt_words], [model_name], [width], [height], [datetime] tags of A1111's file names."""

    def __init__(self, p: Any, seed: Any, prompt: str, image: Image.Image | None, zip: bool = False,  # noqa: A002
                 basename: str = "") -> None:
        self.p, self.seed, self.prompt, self.image, self.basename = p, seed, prompt, image, basename

    def apply(self, x: str) -> str:
        from datetime import datetime

        values = {"seed": self.seed, "prompt": self.prompt, "width": getattr(self.image, "width", ""),
                  "height": getattr(self.image, "height", ""), "basename": self.basename,
                  "prompt_words": " ".join((self.prompt or "").split()[:8]),
                  "datetime": datetime.now().strftime("%Y%m%d%H%M%S"),
                  "model_name": getattr(getattr(self.p, "sd_model", None), "sd_checkpoint_info", None)}
        values["model_name"] = getattr(values["model_name"], "model_name", "")

        def tag(match: re.Match) -> str:
            name = match.group(1).lower()
            return sanitize(str(values[name])) if name in values else match.group(0)

        return re.sub(r"\[(\w+)]", tag, x)


def save_image(image: Image.Image, path: str, basename: str, seed: Any = None, prompt: str | None = None,
               extension: str = "png", info: str | None = None, short_filename: bool = False,
               no_prompt: bool = False, grid: bool = False, pnginfo_section_name: str = "parameters",
               p: Any = None, existing_info: dict | None = None, forced_filename: str | None = None,
               suffix: str = "", save_to_dirs: bool | None = None) -> tuple[str, str | None]:
    """Write `image` into `path` as `<counter>-<basename>-<seed><suffix>.<extension>` (or forced_filename),
    atomically, infotext embedded; (full path, None) as A1111 returns (no .txt sidecar here)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    extension = extension.lstrip(".") or "png"
    if forced_filename:
        stem = forced_filename
    else:
        parts = [f"{next_counter(folder, ''):05}", basename, "" if seed is None else str(seed)]
        stem = "-".join(part for part in parts if part) + suffix
    target = folder / f"{sanitize(stem, replace_spaces=False)}.{extension}"
    quality = int(WORLD.settings.get("jpeg_quality", 80)) if WORLD.settings is not None else 80
    written = write_image(image, target, info, extension, jpeg_quality=quality)
    return str(written), None


def read_info_from_image(image: Image.Image) -> tuple[str | None, dict[str, Any]]:
    return read_infotext(image)


def image_grid(imgs: list[Image.Image], batch_size: int = 1, rows: int | None = None) -> Image.Image:
    return make_grid(imgs, rows, batch_size=batch_size)


def resize_image(resize_mode: int, im: Image.Image, width: int, height: int, upscaler_name: str | None = None) -> Any:
    return im.resize((width, height), Image.LANCZOS)


def sanitize_filename_part(text: str, replace_spaces: bool = True) -> str:
    return sanitize(text, replace_spaces)
