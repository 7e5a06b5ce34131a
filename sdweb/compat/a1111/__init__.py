"""Run AUTOMATIC1111 extensions unchanged on sdweb's extension API (issue 21).

The extension loader calls `bind` once per start, `is_a1111_extension` for each user extension, then
`load_extension` for A1111 ones; an exception it raises is classified with `incompatibility` (A1111 model
internals, torchvision, a part of A1111 not provided) or reported as an ordinary failure. `page_javascript`
gives A1111's page helpers (`gradioApp`, `onUiLoaded`, `opts`, ...) that extensions' javascript expects.

Layout: scope.py (the import scope: `modules.*`, `launch`, Gradio 3 aliases only for extension code),
modules/ (A1111's modules over sdweb), launch.py, gradio3.py, adapter.py (A1111 hooks from sdweb's), loading.py,
install_script.py (install.py runner). This file imports them only when called, so `python -m
sdweb.compat.a1111.install_script` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bind(paths: Any, settings: Any, launch_options: Any, services: Any) -> None:
    from sdweb.compat.a1111.loading import bind as bind_world

    bind_world(paths, settings, launch_options, services)


def extension_flags() -> dict[str, Any]:
    """The command-line flags A1111 extensions' preload.py added, with the values given or their defaults (as
    `shared.cmd_opts` reads them; A1111's /cmd-flags lists them too)."""
    from sdweb.compat.a1111.world import WORLD

    return dict(WORLD.preload_values)


def is_a1111_extension(folder: Path) -> bool:
    from sdweb.compat.a1111.detect import is_a1111_extension as detect

    return detect(folder)


def load_extension(name: str, folder: Path, context: Any) -> list[Any]:
    from sdweb.compat.a1111.loading import load_extension as load

    return load(name, folder, context)


def incompatibility(error: BaseException) -> str | None:
    """Why the extension that raised `error` while loading cannot run on sdweb, or None (an ordinary bug)."""
    from sdweb.compat.a1111.scope import reason_for

    return reason_for(error)


def page_javascript() -> str:
    from sdweb.compat.a1111.page import page_javascript as javascript

    return javascript()


def file_route(data_dir: Path, extension_folders: list[Path]) -> Any:
    """An app-started callback serving A1111's `file=` route for the loaded A1111 extensions (files.py)."""
    from sdweb.compat.a1111.files import file_route as route

    return route(data_dir, extension_folders)
