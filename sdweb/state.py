"""AppState: built once at start from the flags; the only mutable state, passed explicitly."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sdweb.config.paths import DataPaths, resolve_paths
from sdweb.config.settings import Settings, frozen_keys_from_flags
from sdweb.models.registry import CheckpointEntry, ModelRegistry

log = logging.getLogger(__name__)


@dataclass
class AppState:
    options: object  # sdweb.cli.LaunchOptions
    paths: DataPaths
    settings: Settings
    registry: ModelRegistry

    def selected_checkpoint(self) -> CheckpointEntry | None:
        """The checkpoint named by --ckpt or the sd_model_checkpoint setting, else the first one."""
        for wanted in (getattr(self.options, "ckpt", None), self.settings.get("sd_model_checkpoint")):
            if wanted:
                entry = self.registry.find_checkpoint(wanted)
                if entry is not None:
                    return entry
        checkpoints = self.registry.checkpoints
        return checkpoints[0] if checkpoints else None


def build_app_state(options: object) -> AppState:
    paths = resolve_paths(options)
    paths.ensure_folders()
    settings = Settings.load(paths.config_file, frozen_keys=frozen_keys_from_flags(options))
    registry = ModelRegistry(paths, no_hashing=bool(getattr(options, "no_hashing", False)),
                             extra_checkpoint=getattr(options, "ckpt", None))
    registry.refresh_all()
    return AppState(options=options, paths=paths, settings=settings, registry=registry)
