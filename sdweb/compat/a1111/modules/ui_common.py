"""A1111's `modules.ui_common`: the refresh button, plaintext_to_html and the gallery's save_files, which extensions
reuse."""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from sdweb.compat.a1111 import gradio3 as gr
from sdweb.compat.a1111.modules.ui_components import ToolButton
from sdweb.compat.a1111.world import WORLD
from sdweb.outputs.saved_log import save_to_log

refresh_symbol = "\U0001f504"
folder_symbol = "\U0001f4c2"


def create_refresh_button(refresh_component: Any, refresh_method: Callable[[], None],
                          refreshed_args: Any, elem_id: str) -> Any:
    """A button that calls `refresh_method`, then updates the component(s) with `refreshed_args`."""
    components = refresh_component if isinstance(refresh_component, list) else [refresh_component]

    def refresh() -> list[Any]:
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        return [gr.update(**(args or {})) for _ in components]

    button = ToolButton(value=refresh_symbol, elem_id=elem_id)
    button.click(fn=refresh, inputs=[], outputs=components)
    return button


def plaintext_to_html(text: str, classname: str | None = None) -> str:
    import html

    content = "<br>\n".join(html.escape(line) for line in (text or "").split("\n"))
    return f"<p class='{classname}'>{content}</p>" if classname else f"<p>{content}</p>"


def _gallery_image(item: Any) -> Image.Image | None:
    """One gallery entry as extensions hand it to save_files: a PIL image, an (image, caption) tuple, a file path,
    a Gradio file dict, or base64 (with or without a data: prefix)."""
    if isinstance(item, tuple | list) and item:
        return _gallery_image(item[0])
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, dict):
        return _gallery_image(item.get("path") or item.get("name") or item.get("image"))
    if not isinstance(item, str | Path):
        return None
    text = str(item)
    if Path(text).is_file():
        with Image.open(text) as opened:
            opened.load()
            return opened.copy()
    try:
        raw = base64.b64decode(text.split(",", 1)[1] if text.startswith("data:") else text, validate=True)
        with Image.open(io.BytesIO(raw)) as opened:
            opened.load()
            return opened.copy()
    except (binascii.Error, OSError, ValueError):
        return None


def save_files(js_data: str, images: list[Any], do_make_zip: bool, index: int) -> tuple[Any, str]:
    """A1111's Save / Zip of the output gallery: the images (only the selected one with `save_selected_only`)
    written to `outdir_save` (default log/images in the data folder) with a log.csv row, as sdweb's own Save
    button does (outputs.saved_log). Returns (an update showing the saved files, an HTML status line)."""
    data = json.loads(js_data or "{}")
    infotexts = list(data.get("infotexts") or [])
    start = 0
    only_selected = bool(WORLD.settings.get("save_selected_only", True)) if WORLD.settings is not None else True
    if index > -1 and only_selected and index >= int(data.get("index_of_first_image", 0)):
        images, start = [images[index]], index
    entries = []
    for offset, item in enumerate(images):
        image = _gallery_image(item)
        if image is not None:
            number = start + offset
            entries.append((image, infotexts[number] if number < len(infotexts) else image.info.get("parameters")))
    if not entries:
        return gr.update(visible=False), plaintext_to_html("There is no image to save.")
    settings = WORLD.settings.as_dict() if WORLD.settings is not None else {}
    folder = Path(str(settings.get("outdir_save") or "log/images"))
    if not folder.is_absolute() and WORLD.paths is not None:
        folder = Path(WORLD.paths.data_dir) / folder
    saved = save_to_log(entries, folder, settings, make_zip=do_make_zip)
    first = saved.zip_file or saved.images[0]
    return gr.update(value=[str(path) for path in saved.all_paths()], visible=True), plaintext_to_html(
        f"Saved: {first.name}")

