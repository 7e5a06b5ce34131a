"""ControlNet model files in models/ControlNet (and --controlnet-dir): titles as sd-webui-controlnet shows
them (`<stem> [<legacy 8-hex hash>]`), lookup by title, stem or substring, and a small loaded-model cache."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdweb.extensions.api import NotFoundError, UserError, legacy_model_hash, load_controlnet

log = logging.getLogger(__name__)
SUFFIXES = (".safetensors", ".pth", ".ckpt", ".pt", ".bin")


@dataclass(frozen=True)
class ControlModelFile:
    path: Path
    title: str

    @property
    def stem(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name


def _title(path: Path) -> str:
    if path.is_dir():
        return path.name
    try:
        return f"{path.stem} [{legacy_model_hash(path)}]"
    except OSError:
        return path.stem


class ControlNetModels:
    def __init__(self, folders: list[Path], cache_dir: Path, cache_size: int = 2,
                 allow_unsafe_pickle: bool = False) -> None:
        self.folders = folders
        self.cache_dir = cache_dir
        self.cache_size = max(1, cache_size)
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self._files: list[ControlModelFile] = []
        self._titles: dict[tuple[Path, float, int], str] = {}
        self._loaded: OrderedDict[tuple[Path, str, str], tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> list[ControlModelFile]:
        found = []
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                if path.name.startswith("."):
                    continue
                if (path.is_file() and path.suffix.lower() in SUFFIXES) or \
                        (path.is_dir() and (path / "config.json").is_file()):
                    stat = path.stat()
                    key = (path, stat.st_mtime, stat.st_size)
                    if key not in self._titles:
                        self._titles[key] = _title(path)
                    found.append(ControlModelFile(path, self._titles[key]))
        self._files = found
        return found

    def titles(self) -> list[str]:
        return ["None", *(item.title for item in self._files)]

    def find(self, name: str) -> ControlModelFile:
        """sd-webui-controlnet's lookup: exact title, then case-insensitive stem, then substring."""
        wanted = (name or "").strip()
        lowered = wanted.lower()
        for match in (lambda f: f.title == wanted, lambda f: f.stem.lower() == lowered,
                      lambda f: lowered.split(" [")[0] in f.title.lower()):
            hits = [item for item in self._files if match(item)]
            if hits:
                return hits[0]
        raise NotFoundError(f"ControlNet model {name!r} not found.", code="controlnet_model_not_found",
                            hint=f"Available: {', '.join(self.titles()[1:]) or 'none'}. Put ControlNet files "
                                 "in models/ControlNet.")

    def load(self, item: ControlModelFile, device: str, dtype: Any) -> tuple[str, Any]:
        """(family, ControlNetModel) on the device/dtype, cached (LRU of `cache_size`)."""
        key = (item.path, device, str(dtype))
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            try:
                family, model = load_controlnet(item.path, config_cache=self.cache_dir, dtype=dtype, device=device,
                                                allow_unsafe_pickle=self.allow_unsafe_pickle)
            except UserError:
                raise
            except (OSError, RuntimeError, ValueError) as error:
                raise UserError(f"ControlNet model {item.path.name} could not be loaded: {error}",
                                code="controlnet_load_failed") from error
            self._loaded[key] = (family, model)
            while len(self._loaded) > self.cache_size:
                self._loaded.popitem(last=False)
            log.info("Loaded ControlNet %s (%s)", item.title, family)
            return family, model
