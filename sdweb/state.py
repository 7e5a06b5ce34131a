"""AppState: built once at start from the flags; the only mutable state, passed explicitly."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sdweb.config.paths import DataPaths, resolve_paths
from sdweb.config.settings import Settings, frozen_keys_from_flags
from sdweb.models.demo import DEMO_TITLE, ensure_demo_checkpoint

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt")


@dataclass
class AppState:
    options: object  # sdweb.cli.LaunchOptions
    paths: DataPaths
    settings: Settings
    checkpoint_titles: list[str] = field(default_factory=list)
    checkpoint_files: dict[str, Path] = field(default_factory=dict)

    @property
    def selected_checkpoint(self) -> str:
        wanted = self.settings.get("sd_model_checkpoint") or ""
        if wanted in self.checkpoint_files:
            return wanted
        return self.checkpoint_titles[0] if self.checkpoint_titles else ""


def build_app_state(options: object) -> AppState:
    paths = resolve_paths(options)
    paths.ensure_folders()
    settings = Settings.load(paths.config_file, frozen_keys=frozen_keys_from_flags(options))
    state = AppState(options=options, paths=paths, settings=settings)
    refresh_checkpoint_list(state)
    return state


def _scan_checkpoints(paths: DataPaths, extra_file: str | None) -> dict[str, Path]:
    """Minimal scan until the model registry lands: relative name -> file, A1111's folders."""
    found: dict[str, Path] = {}
    for root in (paths.checkpoints, paths.extra_checkpoint_dir):
        if root is None or not root.is_dir():
            continue
        for file in sorted(root.rglob("*")):
            name = file.name.lower()
            if file.is_file() and name.endswith(CHECKPOINT_SUFFIXES) and ".vae." not in name:
                found[file.relative_to(root).as_posix()] = file
    if extra_file and Path(extra_file).is_file():
        found[Path(extra_file).name] = Path(extra_file).resolve()
    return found


def refresh_checkpoint_list(state: AppState) -> None:
    files = _scan_checkpoints(state.paths, getattr(state.options, "ckpt", None))
    if not files:
        files = {DEMO_TITLE: ensure_demo_checkpoint(state.paths.cache_dir)}
        log.info("No checkpoint in %s: using the built-in demo model (%s).", state.paths.checkpoints, DEMO_TITLE)
    state.checkpoint_files = files
    state.checkpoint_titles = list(files)
