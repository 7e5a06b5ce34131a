"""Extension discovery and loading: built-ins (sdweb/builtin_extensions/<name>/) then extensions/<name>/,
enable/disable from config.json and flags, scripts/*.py imported, `setup(context)` called, JS and CSS
collected. A failing extension is reported (log and Extensions tab) and skipped; it never stops the start.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sdweb.config.launch_options import LaunchOptions
from sdweb.config.options import OptionInfo, make_option
from sdweb.extensions.api import Callbacks, ExtensionContext, OptionSpec, Script
from sdweb.extensions.attention import attention_file, mark_attention
from sdweb.extensions.installer import cleanup_leftovers
from sdweb.extensions.installer import run_install_script as run_extension_install_script
from sdweb.extensions.preload_flags import declared_flags
from sdweb.extensions.scripts import LoadedScript, ScriptRunner

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "builtin_extensions"
BUILTIN_SCRIPTS_DIR = Path(__file__).resolve().parents[1] / "builtin_scripts"
BUILTIN_SCRIPTS_OWNER = "built-in"  # LoadedScript.extension of A1111's own scripts
INSTALL_TIMEOUT_S = 600


@dataclass
class Extension:
    name: str
    path: Path
    builtin: bool
    enabled: bool = True
    loaded: bool = False
    error: str | None = None  # why loading failed (shown in the Extensions tab)
    api: str = "sdweb"  # "sdweb" or "A1111" (run through sdweb.compat.a1111)
    incompatible: str | None = None  # why it cannot run on sdweb (A1111 model internals, torchvision, ...)
    install_error: str | None = None  # install.py failed; the extension still loads if its scripts import
    scripts: list[str] = field(default_factory=list)  # titles
    javascript: list[Path] = field(default_factory=list)
    css: Path | None = None


@dataclass
class ExtensionSet:
    extensions: list[Extension]
    runner: ScriptRunner
    callbacks: Callbacks
    options: list[OptionSpec]
    # page helpers that loaded extensions' javascript expects (A1111's gradioApp, onUiLoaded, opts), or None
    page_helpers: Callable[[], str] | None = None
    # flags loaded A1111 extensions added (preload.py) with their values, for /cmd-flags; None: no such extension
    extension_flags: Callable[[], dict[str, Any]] | None = None

    def javascript_files(self) -> list[str]:
        """The page's extension javascript, one text per file (each gets its own <script>, as A1111 does, so
        an error in one does not stop the others): the page helpers first, then each loaded extension's."""
        parts = [self.page_helpers()] if self.page_helpers is not None else []
        for extension in self.extensions:
            for path in extension.javascript if extension.loaded else []:
                parts.append(f"// {extension.name}/{path.name}\n{_read(path)}")
        return parts

    def javascript(self) -> str:
        return "\n".join(self.javascript_files())

    def css(self) -> str:
        return "\n".join(_read(ext.css) for ext in self.extensions if ext.loaded and ext.css is not None)

    def find(self, name: str) -> Extension | None:
        return next((ext for ext in self.extensions if ext.name == name), None)

    def option_infos(self) -> list[OptionInfo]:
        return [make_option(spec.key, spec.default, spec.section, spec.label, spec.kind, choices=spec.choices,
                            minimum=spec.minimum, maximum=spec.maximum, secret=spec.secret, is_path=spec.path)
                for spec in self.options]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        log.warning("Cannot read %s: %s", path, error)
        return ""


def discover(user_dir: Path) -> list[Extension]:
    """Built-ins (packages), then the user's folders, each sorted by name; hidden folders skipped."""
    found = [Extension(name=path.name, path=path, builtin=True) for path in sorted(BUILTIN_DIR.iterdir())
             if path.is_dir() and (path / "__init__.py").exists() and not path.name.startswith(("_", "."))]
    if user_dir.is_dir():
        found += [Extension(name=path.name, path=path, builtin=False) for path in sorted(user_dir.iterdir())
                  if path.is_dir() and not path.name.startswith(".")]
    return found


def apply_enabled(extensions: list[Extension], settings: Any, options: LaunchOptions) -> None:
    """A1111's rules: `disabled_extensions`, `disable_all_extensions` (none/extra/all) and the two flags."""
    disabled = set(settings.get("disabled_extensions", []) or [])
    mode = str(settings.get("disable_all_extensions", "none"))
    if options.disable_all_extensions:
        mode = "all"
    elif options.disable_extra_extensions and mode == "none":
        mode = "extra"
    for extension in extensions:
        off_by_mode = mode == "all" or (mode == "extra" and not extension.builtin)
        extension.enabled = not off_by_mode and extension.name not in disabled


def _script_classes(module: ModuleType) -> list[type[Script]]:
    """The module's own Script subclasses, in definition order (the order the page shows them)."""
    return [obj for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Script) and obj is not Script
            and obj.__module__ == module.__name__]


def _import_file(path: Path, unique: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent.parent)
    sys.path.insert(0, folder)  # an extension may import its own modules (A1111 does the same)
    try:
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(unique, None)
        raise
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _modules(extension: Extension) -> list[ModuleType]:
    if extension.builtin:
        return [importlib.import_module(f"sdweb.builtin_extensions.{extension.name}")]
    scripts = sorted((extension.path / "scripts").glob("*.py")) if (extension.path / "scripts").is_dir() else []
    safe = "".join(char if char.isalnum() else "_" for char in extension.name)
    return [_import_file(path, f"sdweb_extension_{safe}_{path.stem}") for path in scripts]


def run_install_script(extension: Extension, cache_file: Path, attention_file: Path,
                       python: str = sys.executable) -> None:
    """Run install.py when it is new or changed since its last run (A1111 runs it every start), held to sdweb's
    pip constraints (installer.run_install_script); a refused requirement marks the extension as needing
    attention. RuntimeError when install.py fails."""
    install = extension.path / "install.py"
    if extension.builtin or not install.is_file():
        return
    digest = hashlib.sha256(install.read_bytes()).hexdigest()
    done = _read_json(cache_file)
    if done.get(extension.name) == digest:
        return
    log.info("Running install.py of %s", extension.name)
    lines: list[str] = []
    script = run_extension_install_script(extension.path, python=python, progress=lines.append,
                                          timeout=INSTALL_TIMEOUT_S)
    if script is not None and script.conflict:
        mark_attention(attention_file, extension.name, f"install.py: {script.conflict}")
    if script is not None and script.returncode != 0:
        raise RuntimeError(f"install.py failed ({script.returncode}): {chr(10).join(lines[-10:])[-500:]}")
    done[extension.name] = digest
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(done, indent=1), encoding="utf-8")


def mark_install_script_done(name: str, folder: Path, cache_file: Path) -> None:
    """Record that install.py ran (the installer ran it), so the next start does not run it again."""
    install = folder / "install.py"
    if not install.is_file():
        return
    done = _read_json(cache_file)
    done[name] = hashlib.sha256(install.read_bytes()).hexdigest()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(done, indent=1), encoding="utf-8")


def install_cache_file(paths: Any) -> Path:
    return Path(paths.cache_dir) / "extensions-installed.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _needs_arguments(cls: type) -> bool:
    """True when a Script class cannot be built with no arguments (setup() adds such scripts itself)."""
    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return False
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               for p in parameters)


def _module_scripts(module: ModuleType, context: ExtensionContext, owner: str) -> list[LoadedScript]:
    """What setup() added, then the module's no-argument Script classes it did not add an instance of."""
    setup = getattr(module, "setup", None)
    if callable(setup):
        setup(context)
    added = context.take_added_scripts()
    built = {type(script) for script in added}
    return [LoadedScript(script, owner) for script in added] + [
        LoadedScript(cls(), owner) for cls in _script_classes(module)
        if cls not in built and not _needs_arguments(cls)]


def _load_one(extension: Extension, context: ExtensionContext, scripts: list[LoadedScript]) -> None:
    found: list[LoadedScript] = []
    if extension.api == "A1111":
        from sdweb.compat import a1111

        found = [LoadedScript(script, extension.name)
                 for script in a1111.load_extension(extension.name, extension.path, context)]
    for module in _modules(extension) if extension.api != "A1111" else []:
        found += _module_scripts(module, context, extension.name)
    for loaded in found:
        if loaded.script.title() not in extension.scripts:  # one title may have a txt2img and an img2img script
            extension.scripts.append(loaded.script.title())
    scripts.extend(found)
    if not extension.builtin:
        folder = extension.path / "javascript"
        extension.javascript = sorted(folder.glob("*.js")) if folder.is_dir() else []
        css = extension.path / "style.css"
        extension.css = css if css.is_file() else None
    extension.loaded = True


def _builtin_scripts(paths: Any, settings: Any, options: LaunchOptions, services: Any) -> list[LoadedScript]:
    """A1111's own scripts (X/Y/Z plot, SD upscale, ...): always on, listed before the extensions' scripts."""
    scripts: list[LoadedScript] = []
    context = ExtensionContext(BUILTIN_SCRIPTS_OWNER, BUILTIN_SCRIPTS_DIR, Callbacks(), [], paths, options,
                               settings, services=services)
    for path in sorted(BUILTIN_SCRIPTS_DIR.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"sdweb.builtin_scripts.{path.stem}")
            scripts += _module_scripts(module, context, BUILTIN_SCRIPTS_OWNER)
        except Exception:  # a broken script must not stop the start; the log names it
            log.exception("Built-in script %s failed to load and is skipped", path.name)
    return scripts


def load_extensions(paths: Any, settings: Any, options: LaunchOptions,
                    refresh_models: Callable[[], None] | None = None, services: Any = None,
                    in_worker: bool = False) -> ExtensionSet:
    """`in_worker`: for a worker process (a Ray actor), which runs the scripts and hooks of the jobs it is given
    but leaves the extensions folder to the head: no clean-up of interrupted installs, no install steps."""
    if not in_worker:
        cleanup_leftovers(Path(paths.extensions))  # half-finished installs/removals of an earlier run
    extensions = discover(Path(paths.extensions))
    apply_enabled(extensions, settings, options)
    callbacks, option_specs = Callbacks(), []
    scripts = _builtin_scripts(paths, settings, options, services)
    install_cache = install_cache_file(paths)
    attention = attention_file(paths)
    a1111 = _bind_a1111(extensions, paths, settings, options, services)
    for extension in extensions:
        if not extension.enabled:
            continue
        # a failing extension must not stop the others: what it registered so far is dropped with it
        own_callbacks, own_options, own_scripts = Callbacks(), [], []
        context = ExtensionContext(extension.name, extension.path, own_callbacks, own_options, paths, options,
                                   settings, refresh_models, services)
        try:
            if not in_worker and not options.skip_install:
                _install_step(extension, install_cache, attention)
            _load_one(extension, context, own_scripts)
        except (Exception, SystemExit) as error:  # SystemExit: an extension calling exit() at import
            extension.scripts.clear()
            reason = a1111.incompatibility(error) if a1111 is not None else None
            if reason is not None:
                extension.incompatible = reason
                log.warning("Extension %s (%s API) is incompatible with sdweb and is skipped: %s", extension.name,
                            extension.api, reason)
            else:
                extension.error = f"{type(error).__name__}: {error}"
                log.exception("Extension %s failed to load and is skipped", extension.name)
            continue
        for name in vars(callbacks):
            getattr(callbacks, name).extend(getattr(own_callbacks, name))
        option_specs.extend(own_options)
        scripts.extend(own_scripts)
    loaded = [ext.name for ext in extensions if ext.loaded]
    log.info("Extensions loaded: %s", ", ".join(loaded) or "none")
    if options.extension_args and not in_worker:
        _warn_unused_extension_flags(options.extension_args, Path(paths.extensions), set(loaded))
    a1111_loaded = [ext.path for ext in extensions if ext.loaded and ext.api == "A1111"]
    helpers = a1111.page_javascript if a1111 is not None and a1111_loaded else None
    if a1111 is not None and a1111_loaded:  # their javascript reads their files through A1111's file= route
        callbacks.app_started.append(a1111.file_route(Path(paths.data_dir), a1111_loaded))
    flags = a1111.extension_flags if a1111 is not None and a1111_loaded else None
    return ExtensionSet(extensions, ScriptRunner(scripts, callbacks), callbacks, option_specs, helpers, flags)


def _warn_unused_extension_flags(args: tuple[str, ...], folder: Path, loaded: set[str]) -> None:
    """A flag given for an extension that did not load (disabled, or failed) does nothing: say so at start."""
    declared = declared_flags(folder)
    for name in dict.fromkeys(arg.split("=", 1)[0] for arg in args if arg.startswith("-")):
        owner = declared.get(name)
        if owner is not None and owner not in loaded:
            log.warning("%s is a flag of the extension %s, which is not loaded (disabled or failed): it has no "
                        "effect", name, owner)


def _bind_a1111(extensions: list[Extension], paths: Any, settings: Any, options: LaunchOptions, services: Any) -> Any:
    """Mark the user's extensions written for A1111; when one is enabled, bind the compatibility layer to this
    app and return it (sdweb.compat.a1111), else None."""
    from sdweb.compat.a1111.detect import is_a1111_extension

    for extension in extensions:
        if not extension.builtin and is_a1111_extension(extension.path):
            extension.api = "A1111"
    if not any(ext.enabled and ext.api == "A1111" for ext in extensions):
        return None
    from sdweb.compat import a1111

    a1111.bind(paths, settings, options, services)
    return a1111


def _install_step(extension: Extension, cache_file: Path, attention: Path) -> None:
    """install.py; when it fails the extension still loads if its scripts import (A1111 does so), with the
    failure kept for the Extensions tab."""
    try:
        run_install_script(extension, cache_file, attention)
    except RuntimeError as error:
        extension.install_error = str(error)
        log.warning("install.py of %s failed; loading the extension anyway: %s", extension.name, error)
