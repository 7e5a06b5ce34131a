"""A1111's `modules.sd_models`: `CheckpointInfo`, `checkpoints_list`, `select_checkpoint`, and the model façade
`shared.sd_model` returns (the attributes extensions read, from sdweb's loaded model and its family record)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sdweb.compat.a1111.world import WORLD

_TITLE_HASH = re.compile(r"^(?P<name>.*?)(?: \[(?P<hash>[0-9a-f]{8,10})\])?$")


class CheckpointInfo:
    """One checkpoint as A1111 describes it (title "name [shorthash]", file name, model name)."""

    def __init__(self, filename: str | Path, title: str | None = None) -> None:
        self.filename = str(filename)
        match = _TITLE_HASH.match(title or Path(self.filename).name)
        self.name = match.group("name") if match else Path(self.filename).name
        self.name_for_extra = Path(self.name).stem
        self.model_name = str(Path(self.name).with_suffix("")).replace("/", "_").replace("\\", "_")
        self.shorthash = match.group("hash") if match else None
        self.hash = self.shorthash
        self.sha256 = None
        self.title = title or self.name
        self.short_title = f"{self.name_for_extra} [{self.shorthash}]" if self.shorthash else self.name_for_extra
        self.ids = [self.title, self.name, self.model_name]
        self.metadata: dict[str, Any] = {}

    def calculate_shorthash(self) -> str | None:
        return self.shorthash


def _infos() -> dict[str, CheckpointInfo]:
    services = WORLD.services
    if services is None:
        return {}
    found = {}
    for title in services.checkpoint_titles():
        path = services.checkpoint_file(title)
        found[title] = CheckpointInfo(path if path is not None else title, title)
    return found


class _CheckpointList(dict):
    """`checkpoints_list`: title -> CheckpointInfo, read fresh from sdweb's registry on each access."""

    def _fresh(self) -> dict[str, CheckpointInfo]:
        return _infos()

    def __getitem__(self, key: str) -> CheckpointInfo:
        return self._fresh()[key]

    def __iter__(self):  # noqa: ANN204
        return iter(self._fresh())

    def __len__(self) -> int:
        return len(self._fresh())

    def __contains__(self, key: object) -> bool:
        return key in self._fresh()

    def keys(self):  # noqa: ANN201
        return self._fresh().keys()

    def values(self):  # noqa: ANN201
        return self._fresh().values()

    def items(self):  # noqa: ANN201
        return self._fresh().items()

    def get(self, key: str, default: Any = None) -> Any:
        return self._fresh().get(key, default)


checkpoints_list = _CheckpointList()
checkpoint_aliases = checkpoints_list


def get_closet_checkpoint_match(search_string: str) -> CheckpointInfo | None:
    services = WORLD.services
    title = services.find_checkpoint(search_string) if services is not None and search_string else None
    return _infos().get(title) if title else None


def select_checkpoint() -> CheckpointInfo | None:
    chosen = WORLD.settings.get("sd_model_checkpoint") if WORLD.settings is not None else None
    found = get_closet_checkpoint_match(chosen) if chosen else None
    return found or next(iter(_infos().values()), None)


def model_hash(filename: str) -> str:
    from sdweb.models.hashing import legacy_model_hash

    return legacy_model_hash(Path(filename))


def list_models() -> None:
    return None


class SdModel:
    """`shared.sd_model`: what extensions read of A1111's model object (no weights: sdweb runs diffusers)."""

    def __init__(self, loaded: Any) -> None:
        self.sdweb_model = loaded
        entry, family = loaded.entry, loaded.family
        self.sd_checkpoint_info = CheckpointInfo(entry.path, getattr(entry, "title", entry.name))
        self.sd_model_checkpoint = str(entry.path)
        self.sd_model_hash = entry.shorthash or entry.legacy_hash
        self.is_sdxl = family.base == "sdxl"
        self.is_sd2 = family.base == "sd2"
        self.is_sd1 = family.base == "sd1"
        self.is_sd3 = family.base == "sd3"
        self.is_ssd = False
        self.is_sdxl_inpaint = self.is_sdxl and bool(getattr(family, "is_inpaint", False))
        self.parameterization = "v" if loaded.prediction_type == "v_prediction" else "eps"
        self.cond_stage_key = "txt"
        self.latent_channels = family.latent.channels
