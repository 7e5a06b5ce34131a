"""A1111's `modules.extras`: `run_pnginfo`, what the PNG Info tab shows for an image (sdweb's reader)."""

from __future__ import annotations

import html
from typing import Any

from PIL import Image

from sdweb.outputs.save import read_infotext


def run_pnginfo(image: Image.Image | None) -> tuple[str, str | None, str]:
    """('', the infotext or None, HTML listing the infotext and the other text chunks), as A1111's."""
    if image is None:
        return "", None, ""
    geninfo, items = read_infotext(image)
    shown: dict[str, Any] = {"parameters": geninfo, **items} if geninfo is not None else dict(items)
    parts = [f"<div><p><b>{html.escape(str(key))}</b></p><p>{html.escape(str(value))}</p></div>"
             for key, value in shown.items() if isinstance(value, str | int | float)]
    info = "\n".join(parts) or "<div><p>Nothing found in the image.</p></div>"
    return "", geninfo, info
