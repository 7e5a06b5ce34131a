"""A1111's `modules.scripts`: the `Script` base class extensions subclass, `AlwaysVisible`, `basedir()`, the
hook argument classes, and `scripts_txt2img` / `scripts_img2img` (the loaded A1111 scripts of each tab).

Script subclasses defined while an extension's scripts are imported are collected by loading.py and run by
adapter.py, which calls A1111's hooks in A1111's order from sdweb's job hooks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdweb.compat.a1111.world import WORLD
from sdweb.extensions.api import AlwaysVisible

__all__ = ["AlwaysVisible", "PostprocessBatchListArgs", "PostprocessImageArgs", "Script", "ScriptRunner", "basedir"]


class Script:
    """A1111's script base class (see reference/a1111.md §14.4): every hook is a no-op until overridden."""

    name: str | None = None
    section: str | None = None
    filename: str | None = None
    args_from: int | None = None
    args_to: int | None = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    group = None
    create_group = True
    infotext_fields: list[Any] | None = None
    paste_field_names: list[str] | None = None
    api_info = None
    setup_for_ui_only = False
    controls = None

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if WORLD.loading is not None:
            WORLD.loading.script_classes.append(cls)

    def title(self) -> str:
        raise NotImplementedError()

    def ui(self, is_img2img: bool) -> Any:
        return None

    def show(self, is_img2img: bool) -> Any:
        return True

    def run(self, p: Any, *args: Any) -> Any:
        return None

    def setup(self, p: Any, *args: Any) -> None:
        return None

    def before_process(self, p: Any, *args: Any) -> None:
        return None

    def process(self, p: Any, *args: Any) -> None:
        return None

    def before_process_batch(self, p: Any, *args: Any, **batch: Any) -> None:
        return None

    def after_extra_networks_activate(self, p: Any, *args: Any, **batch: Any) -> None:
        return None

    def process_batch(self, p: Any, *args: Any, **batch: Any) -> None:
        return None

    def process_before_every_sampling(self, p: Any, *args: Any, **tensors: Any) -> None:
        return None

    def postprocess_batch(self, p: Any, *args: Any, **batch: Any) -> None:
        return None

    def postprocess_batch_list(self, p: Any, pp: Any, *args: Any, **batch: Any) -> None:
        return None

    def on_mask_blend(self, p: Any, mba: Any, *args: Any) -> None:
        return None

    def post_sample(self, p: Any, ps: Any, *args: Any) -> None:
        return None

    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        return None

    def postprocess_maskoverlay(self, p: Any, ppmo: Any, *args: Any) -> None:
        return None

    def postprocess_image_after_composite(self, p: Any, pp: Any, *args: Any) -> None:
        return None

    def postprocess(self, p: Any, processed: Any, *args: Any) -> None:
        return None

    def before_hr(self, p: Any, *args: Any) -> None:
        return None

    def before_component(self, component: Any, **kwargs: Any) -> None:
        return None

    def after_component(self, component: Any, **kwargs: Any) -> None:
        return None

    def on_before_component(self, callback: Any, *, elem_id: str) -> None:
        return None

    def on_after_component(self, callback: Any, *, elem_id: str) -> None:
        return None

    def describe(self) -> str:
        return ""

    def elem_id(self, item_id: str) -> str:
        """A1111's element id scheme: script_<tab>_<title as identifier>_<item_id>."""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        tab = "img2img" if self.is_img2img else "txt2img"
        return f"script_{tab}_{title}_{item_id}"


def basedir() -> str:
    """The folder of the extension whose scripts are being imported (then: the last one imported)."""
    if WORLD.loading is not None:
        return str(WORLD.loading.path)
    return str(WORLD.last_basedir or Path.cwd())


@dataclass
class PostprocessImageArgs:
    image: Any


@dataclass
class PostprocessBatchListArgs:
    images: list[Any] = field(default_factory=list)


@dataclass
class ScriptFile:
    basedir: str
    filename: str
    path: str


class ScriptRunner:
    """`scripts_txt2img` / `scripts_img2img`: the A1111 scripts of a tab (read-only lists)."""

    def __init__(self, is_img2img: bool) -> None:
        self.is_img2img = is_img2img
        self.scripts: list[Script] = []

    @property
    def alwayson_scripts(self) -> list[Script]:
        return [script for script in self.scripts if script.alwayson]

    @property
    def selectable_scripts(self) -> list[Script]:
        return [script for script in self.scripts if not script.alwayson]

    @property
    def titles(self) -> list[str]:
        return [script.title() for script in self.scripts]


scripts_txt2img = ScriptRunner(is_img2img=False)
scripts_img2img = ScriptRunner(is_img2img=True)
scripts_data: list[ScriptFile] = []


def list_scripts(scriptdirname: str, extension: str, *, include_extensions: bool = True) -> list[ScriptFile]:
    folder = os.path.join(basedir(), scriptdirname)
    if not os.path.isdir(folder):
        return []
    return [ScriptFile(basedir(), name, os.path.join(folder, name)) for name in sorted(os.listdir(folder))
            if name.endswith(extension)]
