"""A1111's `modules.paths` / `modules.paths_internal`: sdweb's data folders under A1111's names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdweb.compat.a1111.world import WORLD

script_path = str(Path(__file__).resolve().parents[4])  # the checkout (A1111: the webui folder)
sd_path = script_path
paths: dict[str, str] = {}


def __getattr__(name: str) -> Any:
    folders = {"models_path": "models_dir", "data_path": "data_dir", "extensions_dir": "extensions",
               "default_output_dir": "outputs"}
    if name in folders and WORLD.paths is not None:
        return str(getattr(WORLD.paths, folders[name]))
    if name == "extensions_builtin_dir":
        return str(Path(script_path) / "extensions-builtin")
    raise AttributeError(f"module 'modules.paths' has no attribute {name!r}")
