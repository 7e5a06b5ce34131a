"""Loaded pipelines: the selected checkpoint, switching without restart, an LRU of at most
`sd_checkpoints_limit` models, memory really released on eviction, one copy of weights shared by the
txt2img / img2img / inpaint pipelines of a model; per model the VAE in use (swapped in without reloading
the UNet) and the LoRA adapters loaded into it."""

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
from sdweb.models.loader import check_checkpoint, load_checkpoint
from sdweb.models.lora import AppliedLoras, LoraCache
from sdweb.models.registry import CheckpointEntry, ModelRegistry, NamedModelFile
from sdweb.models.vae import choose_vae, read_vae_file
from sdweb.prompts.parser import LoraCall
from sdweb.runtime.compile import fuse_qkv, note_structure_change, unfuse_qkv
from sdweb.runtime.memory import free_memory
from sdweb.runtime.policy import RuntimePlan, apply_plan_to_pipeline, apply_plan_to_vae, park_module

log = logging.getLogger(__name__)

MODES = ("txt2img", "img2img", "inpaint")


@dataclass(frozen=True)
class VaeInUse:
    """An external VAE swapped into a loaded model (the checkpoint's own VAE is `None` in LoadedModel.vae)."""

    file: NamedModelFile
    stamp: tuple[int, int]  # (mtime_ns, size) of the file when it was read
    shorthash: str | None  # sha256[:10], None with --no-hashing
    source: str  # how it was chosen: "--vae-path", "setting", "automatic"


@dataclass(frozen=True)
class VaeSelection:
    """What a job's VAE is: for infotext (`VAE`, `VAE hash`) and notes."""

    name: str | None  # file name with extension; None = the checkpoint's own
    shorthash: str | None
    note: str | None = None


@dataclass
class LoadedModel:
    entry: CheckpointEntry
    family: Family
    prediction_type: str
    base_pipeline: Any
    load_seconds: float
    scheduler_config: dict = field(default_factory=dict)  # the checkpoint's own, before any sampler swap
    _by_mode: dict[str, Any] = field(default_factory=dict)
    own_vae: Any = None  # the checkpoint's VAE while an external one is in use
    vae: VaeInUse | None = None  # the external VAE in use, None = the checkpoint's own
    vae_upcast: bool = False  # a decode gave NaNs: the VAE stays fp32 for the session (A1111)
    loras: LoraCache = field(default_factory=LoraCache)

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

    def pipelines(self) -> list[Any]:
        """The base pipeline and every mode pipeline made from it so far (they share the components)."""
        found = [self.base_pipeline]
        found += [pipe for pipe in self._by_mode.values() if all(pipe is not p for p in found)]
        return found

    def set_vae(self, vae: Any) -> None:
        """Put this VAE into every pipeline of the model (the UNet and text encoders stay)."""
        for pipe in self.pipelines():
            pipe.vae = vae


class ModelManager:
    """Thread-safe: one load at a time; lookups are cheap."""

    def __init__(
        self,
        registry: ModelRegistry,
        plan: RuntimePlan,
        *,
        cache_dir: Path,
        allow_unsafe_pickle: bool = False,
        vae_path: str | None = None,
    ) -> None:
        self.registry = registry
        self.plan = plan
        self.cache_dir = Path(cache_dir)
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self.vae_path = vae_path  # --vae-path: this VAE for every model, the sd_vae setting is ignored
        self._loaded: OrderedDict[Path, LoadedModel] = OrderedDict()
        self.on_loaded: list[Any] = []  # extensions' model-loaded callbacks: fn(LoadedModel)
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
            if len(self._loaded) >= max(1, limit):  # a damaged or wrong file must not cost the loaded model
                check_checkpoint(entry.path, allow_unsafe_pickle=self.allow_unsafe_pickle)
            while len(self._loaded) >= max(1, limit):
                self._evict_oldest()
            loaded = self._load(
                entry,
                (prediction_overrides or {}).get(entry.title) or (prediction_overrides or {}).get(entry.name),
            )
            self._loaded[entry.path] = loaded
            for callback in self.on_loaded:
                try:
                    callback(loaded)
                except Exception:
                    log.exception("A model-loaded callback failed")
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
        loaded.loras.adapters.clear()
        loaded._by_mode.clear()
        loaded.base_pipeline = None
        loaded.own_vae = None
        del loaded
        gc.collect()
        free_memory(self.plan.device)

    # -- VAE ------------------------------------------------------------------------------------------
    def select_vae(self, loaded: LoadedModel, setting: str | None) -> VaeSelection:
        """Make the model decode with the VAE that `sd_vae` (or --vae-path) means for it; returns what that is.
        Swapping reads only the VAE file; "None" / no match puts the checkpoint's own VAE back."""
        choice = choose_vae(self.registry, loaded.entry, setting, self.vae_path)
        with self._lock:
            if choice.file is None:
                self._restore_own_vae(loaded)
                return VaeSelection(None, None, choice.note)
            stamp = _stamp(choice.file.path)
            current = loaded.vae
            if current is None or current.file.path != choice.file.path or current.stamp != stamp:
                self._swap_vae(loaded, choice.file, stamp, choice.source)
            in_use = loaded.vae
            return VaeSelection(in_use.file.name, in_use.shorthash, choice.note)

    def _swap_vae(self, loaded: LoadedModel, file: NamedModelFile, stamp: tuple[int, int], source: str) -> None:
        own = loaded.own_vae if loaded.own_vae is not None else loaded.base_pipeline.vae
        vae = read_vae_file(file.path, loaded.family, dict(own.config), allow_unsafe_pickle=self.allow_unsafe_pickle)
        shorthash = None if self.registry.no_hashing else self.registry.cache.get(file.path, "sha256")[:10]
        loaded.own_vae = own
        loaded.set_vae(vae)
        apply_plan_to_vae(loaded.base_pipeline, self.plan, is_sdxl=loaded.is_sdxl, force_fp32=loaded.vae_upcast)
        park_module(own, self.plan)
        loaded.vae = VaeInUse(file, stamp, shorthash, source)
        log.info("VAE %s (%s) in use for %s", file.name, source, loaded.entry.title)
        free_memory(self.plan.device)

    def _restore_own_vae(self, loaded: LoadedModel) -> None:
        if loaded.vae is None:
            return
        loaded.set_vae(loaded.own_vae)
        apply_plan_to_vae(loaded.base_pipeline, self.plan, is_sdxl=loaded.is_sdxl, force_fp32=loaded.vae_upcast)
        loaded.own_vae = None
        loaded.vae = None
        log.info("VAE of %s restored", loaded.entry.title)
        free_memory(self.plan.device)

    # -- LoRA -----------------------------------------------------------------------------------------
    def apply_loras(self, loaded: LoadedModel, calls: list[LoraCall]) -> AppliedLoras:
        """Activate exactly these LoRAs (loading those not loaded yet); call `deactivate_loras` after the job."""
        with self._lock:
            pipe = loaded.base_pipeline
            if calls and unfuse_qkv(pipe.unet):  # the fused processor would bypass LoRA layers on to_q/k/v
                log.info("Fused QKV projections of %s undone while LoRAs are loaded", loaded.entry.title)
            before = set(loaded.loras.adapters)
            try:
                return loaded.loras.apply(pipe, loaded.family, self.registry, calls,
                                          allow_unsafe_pickle=self.allow_unsafe_pickle)
            finally:
                if set(loaded.loras.adapters) != before:
                    note_structure_change(pipe)  # compiled graphs recompile for the new modules: time them

    def deactivate_loras(self, loaded: LoadedModel) -> None:
        with self._lock:
            loaded.loras.deactivate(loaded.base_pipeline)

    def loaded_titles(self) -> list[str]:
        with self._lock:
            return [m.entry.title for m in self._loaded.values()]

    def unload_loras(self) -> None:
        """Remove every LoRA adapter from every loaded model (after a LoRA refresh, to free memory)."""
        with self._lock:
            for loaded in self._loaded.values():
                had_adapters = bool(loaded.loras.adapters)
                loaded.loras.unload_all(loaded.base_pipeline)
                if had_adapters:
                    note_structure_change(loaded.base_pipeline)
                if self.plan.fused_qkv:
                    fuse_qkv(loaded.base_pipeline.unet)  # no LoRA layers left: fusing is safe again

    def unload_all(self) -> None:
        with self._lock:
            while self._loaded:
                self._evict_oldest()


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
