"""A1111's `modules.paths` / `modules.paths_internal`: sdweb's data folders under A1111's names.

`script_path` (A1111: the webui folder, which is also the data folder unless --data-dir moves it) is sdweb's data
folder: extensions write there (tagcomplete's tmp/, old wildcards' scripts/wildcards) and read it back through
the file= route, so it must be the user's data folder, never sdweb's own checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdweb.compat.a1111.world import WORLD

paths: dict[str, str] = {}
FOLDERS = {"script_path": "data_dir", "sd_path": "data_dir", "data_path": "data_dir", "models_path": "models_dir",
           "extensions_dir": "extensions", "default_output_dir": "outputs"}


def __getattr__(name: str) -> Any:
    if WORLD.paths is not None and name in FOLDERS:
        return str(getattr(WORLD.paths, FOLDERS[name]))
    if WORLD.paths is not None and name == "extensions_builtin_dir":
        return str(Path(WORLD.paths.data_dir) / "extensions-builtin")
    raise AttributeError(f"module 'modules.paths' has no attribute {name!r}")
