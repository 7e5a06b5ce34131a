"""Command-line flags that installed A1111 extensions declare in their preload.py, found without running it.

A1111 runs every extension's `preload(parser)` before it parses the command line, so a user's COMMANDLINE_ARGS may
hold an extension's flag (`--civitai-api-key ...`). sdweb parses its own flags first; a flag it does not know is
accepted when an installed extension's preload.py names it in an `add_argument(...)` call. The arguments are kept
as they are and parsed later by the extension's own parser (compat.a1111.loading), when its preload runs.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

MAX_PRELOAD_BYTES = 1 << 20  # a preload.py is a few lines; a bigger file is not read at start


def declared_flags(extensions_dir: Path) -> dict[str, str]:
    """Flag name -> the extension folder whose preload.py declares it (hidden folders skipped; the first folder
    by name wins a flag two extensions declare)."""
    found: dict[str, str] = {}
    try:
        folders = sorted(extensions_dir.iterdir()) if extensions_dir.is_dir() else []
    except OSError as error:
        log.warning("Cannot list %s: %s", extensions_dir, error)
        return found
    for folder in folders:
        preload = folder / "preload.py"
        if folder.name.startswith(".") or not preload.is_file():
            continue
        for name in _flags_in(preload):
            found.setdefault(name, folder.name)
    return found


def _flags_in(path: Path) -> list[str]:
    try:
        if path.stat().st_size > MAX_PRELOAD_BYTES:
            return []
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError) as error:
        log.warning("Cannot read the flags of %s: %s", path, error)
        return []
    return [arg.value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
            for arg in node.args
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-")]


def split_extension_args(args: Sequence[str], declared: dict[str, str]) -> tuple[list[str], list[str]]:
    """(sdweb's arguments, the extensions' arguments): each declared flag (`--flag` or `--flag=value`) goes to the
    extensions with the values that follow it up to the next flag."""
    own: list[str] = []
    theirs: list[str] = []
    taking = False
    for arg in args:
        if arg.startswith("-") and not _is_number(arg):
            taking = arg.split("=", 1)[0] in declared
        (theirs if taking else own).append(arg)
    return own, theirs


def _is_number(arg: str) -> bool:
    try:
        float(arg)
    except ValueError:
        return False
    return True
