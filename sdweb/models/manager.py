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
from sdweb.models.modules import choose_modules
from sdweb.models.registry import CheckpointEntry, ModelRegistry, NamedModelFile
from sdweb.models.vae import choose_vae, read_vae_file
from sdweb.prompts.parser import LoraCall
from sdweb.runtime.compile import fuse_qkv, unfuse_qkv, use_compile_cache
from sdweb.runtime.memory import free_memory, large_blocks_mapped, model_cache_budget, module_bytes
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
    modules: tuple[str, ...] = ()  # module files loaded with it (Forge's infotext "Module 1: ae, ...")
    module_paths: tuple[Path, ...] = ()
    weight_bytes: int = 0  # parameters and buffers of its components (the cache's byte budget counts these)

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
    """Thread-safe. The cache keeps at most `limit` checkpoints (A1111's sd_checkpoints_limit) and at most
    `cache_bytes` of their weights (runtime.memory.model_cache_budget), evicting the least recently used.
    The lock guards the cache only: lookups, LoRA and VAE changes of other models go on during a load, and a
    second request for a checkpoint being loaded waits for that load."""

    def __init__(
        self,
        registry: ModelRegistry,
        plan: RuntimePlan,
        *,
        cache_dir: Path,
        allow_unsafe_pickle: bool = False,
        vae_path: str | None = None,
        cache_bytes: int | None = None,
    ) -> None:
        self.registry = registry
        self.plan = plan
        self.cache_dir = Path(cache_dir)
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self.vae_path = vae_path  # --vae-path: this VAE for every model, the sd_vae setting is ignored
        self._loaded: OrderedDict[Path, LoadedModel] = OrderedDict()
        self._loading: dict[Path, threading.Event] = {}
        self.on_loaded: list[Any] = []  # extensions' model-loaded callbacks: fn(LoadedModel)
        self._lock = threading.RLock()
        self.cache_bytes = cache_bytes if cache_bytes is not None else model_cache_budget(plan.device)
        if plan.compile:
            use_compile_cache(self.cache_dir / "torch-compile")

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

    def module_paths(self, names: list[str] | tuple[str, ...]) -> list[Path]:
        """The module files named (Forge's forge_additional_modules: names, stems or paths); NotFoundError
        naming an unknown one."""
        paths = []
        for name in names:
            found = self.registry.find_module(str(name))
            if found is None:
                known = ", ".join(m.name for m in self.registry.modules[:12]) or "none"
                raise NotFoundError(f"Module file {name!r} (VAE / Text encoder) not found.", code="module_not_found",
                                    hint=f"Present: {known}. Put VAEs in models/VAE and text encoders in "
                                         "models/text_encoder, then refresh.")
            paths.append(found.path)
        return paths

    def get(
        self, name: str | None, *, limit: int = 1, prediction_overrides: dict[str, str] | None = None,
        modules: list[str] | tuple[str, ...] = (),
    ) -> LoadedModel:
        """The loaded model for a checkpoint name/alias, loading it (and evicting the oldest) if needed.
        `modules`: the VAE / text-encoder files chosen (none: Automatic for checkpoints that lack parts)."""
        entry = self.resolve(name)
        chosen = self.module_paths(modules)
        while True:
            with self._lock:
                loaded = self._cached(entry.path, chosen)
                if loaded is not None:
                    return loaded
                pending = self._loading.get(entry.path)
                if pending is None:
                    done = self._loading[entry.path] = threading.Event()
                    break
            pending.wait()  # another request is loading this checkpoint: use what it loads
        try:
            self._make_room(entry, max(1, limit))
            loaded = self._load(  # outside the lock: a load takes seconds to minutes
                entry,
                (prediction_overrides or {}).get(entry.title) or (prediction_overrides or {}).get(entry.name),
                chosen,
            )
            with self._lock:
                self._loaded[entry.path] = loaded
        finally:
            with self._lock:
                self._loading.pop(entry.path, None)
            done.set()
        for callback in self.on_loaded:
            try:
                callback(loaded)
            except Exception:
                log.exception("A model-loaded callback failed")
        return loaded

    def _cached(self, path: Path, chosen: list[Path]) -> LoadedModel | None:
        loaded = self._loaded.get(path)
        if loaded is not None and chosen and list(loaded.module_paths) != chosen:
            self._evict(path)  # the same checkpoint with other modules: loaded again
            return None
        if loaded is not None:
            self._loaded.move_to_end(path)
        return loaded

    def _make_room(self, entry: CheckpointEntry, limit: int) -> None:
        """Evict least recently used models until the new one fits the count limit and the byte budget (its
        file size stands in for its weights). A damaged or wrong file must not cost a loaded model: the file
        is checked first."""
        with self._lock:
            needed = _file_bytes(entry.path)
            over_count = len(self._loaded) >= limit
            over_bytes = self._loaded and self.loaded_bytes() + needed > self.cache_bytes
            if not (over_count or over_bytes):
                return
        check_checkpoint(entry.path, allow_unsafe_pickle=self.allow_unsafe_pickle)
        with self._lock:
            while len(self._loaded) >= limit:
                self._evict_oldest()
            while self._loaded and self.loaded_bytes() + needed > self.cache_bytes:
                log.info("Model cache over %.1f GB: unloading the least recently used model", self.cache_bytes / 1e9)
                self._evict_oldest()

    def loaded_bytes(self) -> int:
        with self._lock:
            return sum(model.weight_bytes for model in self._loaded.values())

    def _load(self, entry: CheckpointEntry, prediction_type: str | None, chosen: list[Path]) -> LoadedModel:
        started = time.perf_counter()
        family = check_checkpoint(entry.path, allow_unsafe_pickle=self.allow_unsafe_pickle)
        modules = choose_modules(family, entry.path, chosen, [m.path for m in self.registry.modules])
        with large_blocks_mapped():
            result = load_checkpoint(
                entry.path,
                dtype=self.plan.unet_dtype,
                prediction_type=prediction_type,
                config_cache_dir=self.cache_dir / "configs",
                allow_unsafe_pickle=self.allow_unsafe_pickle,
                modules=modules,
            )
            is_large = result.family.native_size >= 1024  # SDXL-size models: the --medvram-sdxl rules apply
            apply_plan_to_pipeline(result.pipeline, self.plan, is_sdxl=is_large,
                                   denoiser_dtypes=result.family.dtypes)
        # after the load: the background hasher reads the file while it loads, and this waits for its result
        entry = self.registry.ensure_sha256(entry)
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
            modules=result.modules,
            module_paths=result.module_paths,
            weight_bytes=module_bytes(result.pipeline.components.values()),
        )

    def _evict_oldest(self) -> None:
        self._evict(next(iter(self._loaded)))

    def _evict(self, path: Path) -> None:
        loaded = self._loaded.pop(path)
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
            if calls and unfuse_qkv(getattr(pipe, "unet", None)):  # the fused processor would bypass LoRA layers on to_q/k/v
                log.info("Fused QKV projections of %s undone while LoRAs are loaded", loaded.entry.title)
            return loaded.loras.apply(pipe, loaded.family, self.registry, calls,
                                      allow_unsafe_pickle=self.allow_unsafe_pickle)

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
                loaded.loras.unload_all(loaded.base_pipeline)
                if self.plan.fused_qkv:
                    fuse_qkv(loaded.base_pipeline.unet)  # no LoRA layers left: fusing is safe again

    def unload_all(self) -> None:
        with self._lock:
            while self._loaded:
                self._evict_oldest()


def _file_bytes(path: Path) -> int:
    """A checkpoint's size on disk (a diffusers folder: its files)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
