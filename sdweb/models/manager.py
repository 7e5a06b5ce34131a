"""Loaded pipelines: the selected checkpoint, switching without restart, an LRU of at most
`sd_checkpoints_limit` models, memory really released on eviction, one copy of weights shared by the
txt2img / img2img / inpaint pipelines of a model."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdweb.core.errors import NotFoundError
from sdweb.models.families import Family
from sdweb.models.loader import load_checkpoint
from sdweb.models.registry import CheckpointEntry, ModelRegistry
from sdweb.runtime.memory import free_memory
from sdweb.runtime.policy import RuntimePlan, apply_plan_to_pipeline

log = logging.getLogger(__name__)

MODES = ("txt2img", "img2img", "inpaint")


@dataclass
class LoadedModel:
    entry: CheckpointEntry
    family: Family
    prediction_type: str
    base_pipeline: Any
    load_seconds: float
    scheduler_config: dict = field(default_factory=dict)  # the checkpoint's own, before any sampler swap
    _by_mode: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sdxl(self) -> bool:
        return self.family.base == "sdxl"

    def pipeline(self, mode: str) -> Any:
        """The pipeline for txt2img / img2img / inpaint, sharing this model's weights (no copy)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        if mode not in self._by_mode:
            class_name = {
                "txt2img": self.family.txt2img_pipeline,
                "img2img": self.family.img2img_pipeline,
                "inpaint": self.family.inpaint_pipeline,
            }[mode]
            if class_name is None:
                raise NotFoundError(
                    f"{self.entry.name} ({self.family.label}) cannot do {mode}.", code="unsupported_mode"
                )
            if type(self.base_pipeline).__name__ == class_name:
                self._by_mode[mode] = self.base_pipeline
            else:
                import diffusers

                self._by_mode[mode] = getattr(diffusers, class_name).from_pipe(self.base_pipeline)
        return self._by_mode[mode]


class ModelManager:
    """Thread-safe: one load at a time; lookups are cheap."""

    def __init__(
        self,
        registry: ModelRegistry,
        plan: RuntimePlan,
        *,
        cache_dir: Path,
        allow_unsafe_pickle: bool = False,
    ) -> None:
        self.registry = registry
        self.plan = plan
        self.cache_dir = Path(cache_dir)
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self._loaded: OrderedDict[Path, LoadedModel] = OrderedDict()
        self._lock = threading.RLock()

    def resolve(self, name: str | None) -> CheckpointEntry:
        entry = self.registry.find_checkpoint(name) if name else None
        if entry is None and not name:
            checkpoints = self.registry.checkpoints
            entry = checkpoints[0] if checkpoints else None
        if entry is None:
            titles = ", ".join(self.registry.checkpoint_titles()[:10])
            raise NotFoundError(
                f"Checkpoint {name!r} not found.",
                code="checkpoint_not_found",
                hint=f"Available: {titles}. Put .safetensors files in models/Stable-diffusion and refresh.",
            )
        return entry

    def get(
        self, name: str | None, *, limit: int = 1, prediction_overrides: dict[str, str] | None = None
    ) -> LoadedModel:
        """The loaded model for a checkpoint name/alias, loading it (and evicting the oldest) if needed."""
        entry = self.resolve(name)
        with self._lock:
            loaded = self._loaded.get(entry.path)
            if loaded is not None:
                self._loaded.move_to_end(entry.path)
                return loaded
            while len(self._loaded) >= max(1, limit):
                self._evict_oldest()
            loaded = self._load(
                entry,
                (prediction_overrides or {}).get(entry.title) or (prediction_overrides or {}).get(entry.name),
            )
            self._loaded[entry.path] = loaded
            return loaded

    def _load(self, entry: CheckpointEntry, prediction_type: str | None) -> LoadedModel:
        started = time.perf_counter()
        entry = self.registry.ensure_sha256(entry)
        result = load_checkpoint(
            entry.path,
            dtype=self.plan.unet_dtype,
            prediction_type=prediction_type,
            config_cache_dir=self.cache_dir / "configs",
            allow_unsafe_pickle=self.allow_unsafe_pickle,
        )
        is_sdxl = result.family.base == "sdxl"
        apply_plan_to_pipeline(result.pipeline, self.plan, is_sdxl=is_sdxl)
        seconds = time.perf_counter() - started
        log.info(
            "Loaded %s (%s, %s) in %.1f s", entry.title, result.family.label, result.prediction_type, seconds
        )
        return LoadedModel(
            entry=entry,
            family=result.family,
            prediction_type=result.prediction_type,
            base_pipeline=result.pipeline,
            load_seconds=seconds,
            scheduler_config=dict(result.pipeline.scheduler.config),
        )

    def _evict_oldest(self) -> None:
        _, loaded = self._loaded.popitem(last=False)
        log.info("Unloading %s", loaded.entry.title)
        loaded._by_mode.clear()
        loaded.base_pipeline = None
        del loaded
        gc.collect()
        free_memory(self.plan.device)

    def loaded_titles(self) -> list[str]:
        with self._lock:
            return [m.entry.title for m in self._loaded.values()]

    def unload_all(self) -> None:
        with self._lock:
            while self._loaded:
                self._evict_oldest()
