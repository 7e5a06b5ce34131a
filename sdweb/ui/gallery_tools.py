"""The buttons under a result gallery, as A1111: 📂 open the output folder (on this machine only), 💾 save the
selected image to log/images with a log.csv row, 🗃️ save all shown images and a zip of them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from sdweb.config.launch_options import LaunchOptions
from sdweb.outputs.saved_log import save_to_log
from sdweb.state import AppState
from sdweb.ui.common import OutputPanel, user_error

log = logging.getLogger(__name__)


def folder_setting(settings: Any, tab: str) -> str:
    """The folder 📂 opens: `outdir_samples` when set, else the tab's own output folder."""
    return str(settings.get("outdir_samples") or settings.get(f"outdir_{tab}_samples") or f"outputs/{tab}-images")


def resolve_folder(data_dir: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else data_dir / path


def open_folder_allowed(options: LaunchOptions) -> bool:
    """A1111 shows 📂 only where the browser and the server are the same machine, and not when the folders
    are hidden (--hide-ui-dir-config)."""
    return not options.webui_is_non_local and not options.hide_ui_dir_config


def open_in_file_manager(folder: Path) -> None:
    """Open `folder` in the desktop's file manager (the server runs on the user's own machine)."""
    if not folder.is_dir():
        raise user_error(f"The folder {folder} does not exist yet; generate an image first.")
    if sys.platform == "win32":
        os.startfile(folder)  # type: ignore[attr-defined]  # noqa: S606 (Windows only)
        return
    command = ["open", str(folder)] if sys.platform == "darwin" else ["xdg-open", str(folder)]
    try:
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as error:
        raise user_error(f"Could not open {folder}: {command[0]} is not available ({error.strerror}).") from None


def gallery_image(entry: Any) -> Image.Image | None:
    image = entry[0] if isinstance(entry, tuple | list) else entry
    if isinstance(image, str):
        with Image.open(image) as opened:
            opened.load()
            copy = opened.copy()
            copy.info = dict(opened.info)
            return copy
    return image if isinstance(image, Image.Image) else None


def chosen_entries(gallery: Sequence[Any] | None, infotexts: Sequence[str] | None, selected: int | None,
                   only_selected: bool) -> list[tuple[Image.Image, str | None]]:
    """(image, infotext) for the selected gallery image, or for all of them."""
    entries = list(gallery or [])
    texts = list(infotexts or [])
    indexes = range(len(entries))
    if only_selected and entries:
        indexes = [selected if isinstance(selected, int) and 0 <= selected < len(entries) else 0]
    chosen = []
    for index in indexes:
        image = gallery_image(entries[index])
        if image is not None:
            chosen.append((image, texts[index] if index < len(texts) else image.info.get("parameters")))
    return chosen


def save_gallery(state: AppState, gallery: Sequence[Any] | None, infotexts: Sequence[str] | None,
                 selected: int | None, make_zip: bool) -> tuple[Any, str]:
    """What 💾 / 🗃️ do: (the File list to download, a status line)."""
    entries = chosen_entries(gallery, infotexts, selected, only_selected=not make_zip)
    if not entries:
        raise user_error("There is no image to save; generate one first.")
    settings = state.settings.as_dict()
    folder = resolve_folder(state.paths.data_dir, str(settings.get("outdir_save") or "log/images"))
    try:
        saved = save_to_log(entries, folder, settings, make_zip=make_zip)
    except OSError as error:
        raise user_error(f"Could not save to {folder}: {error.strerror or error}.") from None
    first = saved.zip_file or saved.images[0]
    return gr.File(value=[str(path) for path in saved.all_paths()], visible=True), f"Saved: {first.name}"


def wire_gallery_tools(state: AppState, panel: OutputPanel, tab: str) -> None:
    def open_folder() -> None:
        if not open_folder_allowed(state.options):
            raise user_error("Opening folders is only possible when the server runs on this machine.")
        open_in_file_manager(resolve_folder(state.paths.data_dir, folder_setting(state.settings, tab)))

    def save(gallery: Any, infotexts: Any, selected: Any) -> tuple[Any, str]:
        return save_gallery(state, gallery, infotexts, selected, make_zip=False)

    def save_zip(gallery: Any, infotexts: Any, selected: Any) -> tuple[Any, str]:
        return save_gallery(state, gallery, infotexts, selected, make_zip=True)

    panel.open_folder.click(open_folder, inputs=None, outputs=None, api_visibility="private", queue=False)
    for button, handler in ((panel.save, save), (panel.save_zip, save_zip)):
        button.click(handler, inputs=[panel.gallery, panel.infotexts, panel.selected],
                     outputs=[panel.download, panel.status], show_progress="hidden", api_visibility="private")
