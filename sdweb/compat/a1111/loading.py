"""Loading one A1111 extension: its scripts/*.py imported in the A1111 scope, its Script subclasses wrapped as
sdweb Scripts (one instance per tab), its on_ui_settings / on_before_ui callbacks run."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from sdweb.compat.a1111.adapter import A1111ScriptAdapter
from sdweb.compat.a1111.internals import describe, model_internals
from sdweb.compat.a1111.modules import scripts as a1111_scripts
from sdweb.compat.a1111.modules.scripts import Script as A1111Script
from sdweb.compat.a1111.scope import (
    IncompatibleExtension,
    add_extension_root,
    model_internals_reason,
    prepare_module,
)
from sdweb.compat.a1111.world import WORLD
from sdweb.extensions.api import Script

log = logging.getLogger(__name__)

CALLED_AT_LOAD = ("ui_settings", "before_ui")


def bind(paths: Any, settings: Any, launch_options: Any, services: Any) -> None:
    """A new app is loading its extensions: A1111's singletons now stand for its settings, paths and services."""
    WORLD.bind(paths, settings, launch_options, services)
    a1111_scripts.scripts_txt2img.scripts.clear()
    a1111_scripts.scripts_img2img.scripts.clear()


def _import_script(path: Path, unique: str, folder: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    prepare_module(module)
    sys.path.insert(0, str(folder))  # A1111 puts the extension folder on sys.path while its scripts import
    try:
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique, None)
        raise
    finally:
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
    return module


class _PreloadParser(argparse.ArgumentParser):
    """The parser an extension's preload(parser) fills: exact flag names only (sdweb accepted exactly those), and
    a bad value raises instead of exiting the process."""

    def __init__(self) -> None:
        super().__init__(add_help=False, allow_abbrev=False)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(message)


def _run_preload(folder: Path, unique: str) -> None:
    """A1111 calls `preload(parser)` of an extension's preload.py before anything loads, so that its command-line
    flags exist. sdweb kept the arguments naming them (LaunchOptions.extension_args); they are parsed here with
    that parser, and the values (or the defaults) become `cmd_opts` values."""
    path = folder / "preload.py"
    if not path.is_file():
        return
    parser = _PreloadParser()
    try:
        preload = getattr(_import_script(path, unique, folder), "preload", None)
        if callable(preload):
            preload(parser)
    except Exception:  # A1111 reports a broken preload.py and goes on; so does this layer
        log.exception("preload.py of %s failed; its command-line flags read as None", folder.name)
    given = tuple(getattr(WORLD.launch_options, "extension_args", ()))
    try:
        values = vars(parser.parse_known_args(given)[0])
    except ValueError as error:
        log.warning("%s: %s in COMMANDLINE_ARGS; its flags keep their defaults", folder.name, error)
        values = {action.dest: action.default for action in parser._actions}  # no public list of arguments
    for dest, value in values.items():
        if dest != "help":
            WORLD.preload_values.setdefault(dest, value)


def _script_classes(modules: list[ModuleType]) -> list[type[A1111Script]]:
    """A1111's rule: every Script subclass in a script module's namespace (defined or imported), once each."""
    found: list[type[A1111Script]] = []
    for module in modules:
        for value in vars(module).values():
            if (inspect.isclass(value) and issubclass(value, A1111Script) and value is not A1111Script
                    and "title" in _own_members(value) and value not in found):
                found.append(value)
    return found


def _own_members(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ if klass is not A1111Script and klass is not object
            for name in vars(klass)}


def _run_load_callbacks(before: dict[str, int]) -> None:
    for kind in CALLED_AT_LOAD:
        for callback in WORLD.callbacks.get(kind, [])[before.get(kind, 0):]:
            callback()


def load_extension(name: str, folder: Path, context: Any) -> list[Script]:
    """Import the extension's scripts in the A1111 scope and return its scripts as sdweb Scripts. Raises what the
    extension raised (scope.reason_for tells an incompatible extension from a broken one), or
    IncompatibleExtension naming the model internals its code reaches for (internals.py) whatever failed first;
    whatever it registered with this layer is dropped then."""
    folder = Path(folder)
    add_extension_root(folder)
    before = {kind: len(callbacks) for kind, callbacks in WORLD.callbacks.items()}
    safe = "".join(char if char.isalnum() else "_" for char in name)
    try:
        with WORLD.loading_extension(name, folder, context):
            _run_preload(folder, f"sdweb_a1111_{safe}_preload")
            modules = [_import_script(path, f"sdweb_a1111_{safe}_{path.stem}", folder)
                       for path in sorted((folder / "scripts").glob("*.py"))]
            adapters: list[Script] = []
            for cls in _script_classes(modules):
                txt2img, img2img = cls(), cls()
                for script in (txt2img, img2img):
                    script.filename = str(Path(inspect.getfile(cls)))
                adapters += [A1111ScriptAdapter(txt2img, False), A1111ScriptAdapter(img2img, True)]
            _run_load_callbacks(before)
    except BaseException as error:
        for kind, callbacks in WORLD.callbacks.items():
            del callbacks[before.get(kind, 0):]
        found = model_internals(folder) if isinstance(error, Exception) else {}
        if found:
            reason = model_internals_reason(describe(found))
            raise IncompatibleExtension(reason, next(iter(found))) from error
        raise
    for adapter in adapters:
        runner = a1111_scripts.scripts_img2img if adapter.for_img2img else a1111_scripts.scripts_txt2img
        runner.scripts.append(adapter.script)
    log.info("A1111 extension %s: %d script(s)", name, len(adapters) // 2)
    return adapters
