"""What A1111's module-level singletons (`shared.opts`, `shared.state`, `script_callbacks`, ...) stand for in
sdweb: the running app's settings, paths, launch options and services, bound when extensions load.

A1111's extension surface is made of process-wide singletons, so this layer has one holder, `WORLD`, re-bound
each time the loader loads A1111 extensions (a test that builds the app twice re-binds it). sdweb itself never
reads it: only the `modules.*` adapters do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Loading:
    """The extension whose scripts are being imported (A1111's `scripts.basedir()`, callback ownership)."""

    name: str
    path: Path
    context: Any  # sdweb.extensions.api.ExtensionContext
    script_classes: list[type] = field(default_factory=list)  # A1111 Script subclasses, in definition order


@dataclass
class World:
    paths: Any = None  # sdweb.config.paths.DataPaths
    settings: Any = None  # sdweb.config.settings.Settings
    launch_options: Any = None
    services: Any = None  # sdweb.generation.script_services.ScriptServices
    loading: Loading | None = None
    last_basedir: Path | None = None
    extension_options: dict[str, Any] = field(default_factory=dict)  # key -> OptionInfo (modules.shared)
    option_values: dict[str, Any] = field(default_factory=dict)  # values set by extensions at run time
    onchange: dict[str, list[Any]] = field(default_factory=dict)
    preload_values: dict[str, Any] = field(default_factory=dict)  # extensions' preload.py flags: given or default
    ui_tab_ids: list[str] = field(default_factory=list)  # elem_ids of the tabs A1111 extensions added
    callbacks: dict[str, list[Any]] = field(default_factory=dict)  # script_callbacks this layer calls itself
    loaded_model: Any = None  # sdweb LoadedModel of the last job (shared.sd_model)
    job: Any = None  # the façade `p` of the running job (shared.state.job, nested process_images)
    sampling_step: int = 0
    sampling_steps: int = 0

    def bind(self, paths: Any, settings: Any, launch_options: Any, services: Any) -> None:
        self.paths, self.settings, self.launch_options, self.services = paths, settings, launch_options, services
        self.extension_options.clear()
        self.option_values.clear()
        self.onchange.clear()
        self.preload_values.clear()
        self.ui_tab_ids.clear()
        self.callbacks.clear()
        self.loading, self.loaded_model, self.job = None, None, None

    @contextlib.contextmanager
    def loading_extension(self, name: str, path: Path, context: Any) -> Iterator[Loading]:
        self.loading = Loading(name, Path(path), context)
        self.last_basedir = Path(path)
        try:
            yield self.loading
        finally:
            self.loading = None

    def require_loading(self, what: str) -> Loading:
        if self.loading is None:
            raise RuntimeError(f"{what} can only be called while an extension's scripts are imported")
        return self.loading


WORLD = World()
