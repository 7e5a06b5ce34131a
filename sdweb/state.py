"""AppState: built once at start from the flags; the only mutable state, passed explicitly."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sdweb.config import forge_flags
from sdweb.config.exposure import untrusted_exposure
from sdweb.config.launch_options import LaunchOptions
from sdweb.config.paths import DataPaths, resolve_paths
from sdweb.config.settings import Settings, frozen_keys_from_flags
from sdweb.core.atomic import remove_stale_temp_files
from sdweb.core.errors import NotFoundError, UserError
from sdweb.extensions.loader import ExtensionSet, load_extensions
from sdweb.generation.jobs import Job, JobContext, JobQueue, Runner
from sdweb.generation.pool.local import LocalPool, WorkerPool
from sdweb.generation.pool.messages import WorkResult
from sdweb.generation.pool.presence import CheckpointFiles, checkpoint_file, require_on_a_worker
from sdweb.generation.pool.scheduler import Scheduler
from sdweb.generation.pool.setup import (
    RAY_HINT,
    PoolChoice,
    parse_workers_flag,
    private_ray_auth,
    worker_device_ids,
)
from sdweb.generation.pool.worker import Worker
from sdweb.generation.received import NO_SAVE, pack_result, save_received
from sdweb.generation.service import GenerationService, SaveOptions
from sdweb.generation.split import BatchSplitter
from sdweb.models.families import Family
from sdweb.models.first_run import FirstRunStatus
from sdweb.models.loader import check_checkpoint
from sdweb.models.manager import ModelManager
from sdweb.models.merge import MergePlan, run_merge
from sdweb.models.registry import CheckpointEntry, ModelRegistry
from sdweb.models.vae import checked_vae_setting
from sdweb.prompts.prompt_limits import check_request_prompts
from sdweb.runtime.memory import keep_large_blocks_in_heap
from sdweb.runtime.policy import HardwareInfo, RuntimePlan, plan_runtime, probe_hardware

log = logging.getLogger(__name__)
CHECKPOINT_RESCAN_S = 30.0  # a worker on another machine rescans its checkpoint folder when asked after this


@dataclass(frozen=True)
class GenerationJob:
    """What goes through the queue: plain data (a typed request and how to save)."""

    request: Any  # Txt2ImgRequest | Img2ImgRequest
    save: SaveOptions


@dataclass(frozen=True)
class ExtrasJob:
    """An Extras run through the same queue as generation (one queue serializes the GPU work).

    `inputs` are ExtrasInput (images with their file names); with `input_dir` set, that folder's images are
    processed instead ("Batch from Directory", always saved). `save` false: nothing written (the API)."""

    request: Any  # sdweb.postprocess.extras.ExtrasRequest
    inputs: tuple[Any, ...] = ()
    save: bool = False
    output_dir: Path | None = None
    input_dir: Path | None = None


@dataclass(frozen=True)
class InterrogateJob:
    image: Any  # a PIL image
    model: str = "clip"


@dataclass
class AppState:
    options: LaunchOptions
    paths: DataPaths
    settings: Settings
    registry: ModelRegistry
    plan: RuntimePlan
    manager: ModelManager
    service: GenerationService
    queue: JobQueue
    extensions: ExtensionSet | None = None
    first_run: FirstRunStatus = field(default_factory=FirstRunStatus)  # the first-run download, for the UI
    runtimes: list[Any] = field(default_factory=list)  # DeviceRuntime per local worker (plan/manager/service: #0)
    _families: dict[tuple[Path, int, int], Family] = field(default_factory=dict)  # family_of's cache

    def selected_checkpoint(self) -> CheckpointEntry | None:
        """The checkpoint the sd_model_checkpoint setting names (--ckpt sets it at start), else the first one."""
        wanted = self.settings.get("sd_model_checkpoint")
        entry = self.registry.find_checkpoint(wanted) if wanted else None
        if entry is not None:
            return entry
        checkpoints = self.registry.checkpoints
        return checkpoints[0] if checkpoints else None

    def family_of(self, title: str) -> Family | None:
        """The family of a listed checkpoint (its header read once per file version); None if unknown or
        unreadable (the load says why)."""
        entry = self.registry.find_checkpoint(str(title))
        if entry is None:
            return None
        try:
            stat = entry.path.stat()
            key = (entry.path, stat.st_mtime_ns, stat.st_size)
            if key not in self._families:
                self._families[key] = check_checkpoint(entry.path, allow_unsafe_pickle=self.manager.allow_unsafe_pickle)
            return self._families[key]
        except (OSError, UserError):
            return None

    def check_new_checkpoint(self, entry: CheckpointEntry) -> None:
        """Before `entry` becomes the selected checkpoint: its file is checked (header, family) unless it is the
        current one, so a damaged file is refused when chosen, not at the next Generate (A1111 loads it there)."""
        if entry.title != self.settings.get("sd_model_checkpoint"):
            check_checkpoint(entry.path, allow_unsafe_pickle=self.manager.allow_unsafe_pickle)

    def check_checkpoint_change(self, value: Any) -> None:
        """Before the sd_model_checkpoint setting is saved as `value` (POST /options, the quick settings): a
        listed file is checked (check_new_checkpoint); an unknown name is refused by the setting's own check."""
        entry = self.registry.find_checkpoint(str(value)) if value else None
        if entry is not None:
            self.check_new_checkpoint(entry)

    def checked_checkpoint_setting(self, value: str) -> str:
        """The sd_model_checkpoint setting's check (every change and override_settings): a listed checkpoint,
        stored by its title; NotFoundError otherwise. Empty: the first checkpoint. In memory only (cheap)."""
        if not value:
            return value
        entry = self.registry.find_checkpoint(str(value))
        if entry is None:
            raise NotFoundError(f"Checkpoint {value!r} not found.", code="checkpoint_not_found",
                                hint="GET /sdapi/v1/sd-models (or the checkpoint list) shows the titles you can use.")
        return entry.title

    def submit(self, kind: str, request: Any, save: SaveOptions, task_id: str | None = None) -> Job:
        check_request_prompts(request)  # a prompt over a limit is refused before it waits in the queue
        checkpoint = self.expected_checkpoint(request)
        return self.queue.submit(kind, GenerationJob(request, save), task_id, checkpoint=checkpoint,
                                 workers_allowed=self.workers_with_checkpoint(checkpoint))

    def workers_with_checkpoint(self, title: str | None) -> frozenset[str] | None:
        """The workers that have this checkpoint's file, by hash (None: every worker, or no checkpoint known);
        NotFoundError naming the nodes and the file when none has it."""
        entry = self.registry.find_checkpoint(title) if title else None
        if entry is None or entry.is_demo:
            return None
        return require_on_a_worker(checkpoint_file(entry), self.queue.pool.workers())

    def expected_checkpoint(self, request: Any) -> str | None:
        """The title of the checkpoint a generation request will use as things stand (the scheduler routes by
        it; the worker still resolves it when the job runs). None when unknown."""
        if request is None:
            return None
        overrides = getattr(request, "override_settings", None) or {}
        wanted = overrides.get("sd_model_checkpoint") or self.settings.get("sd_model_checkpoint")
        entry = self.registry.find_checkpoint(str(wanted)) if wanted else self.selected_checkpoint()
        return entry.title if entry is not None else None

    def submit_extras(self, extras: ExtrasJob) -> Job:
        return self.queue.submit("extras", extras)

    def submit_interrogate(self, image: Any, model: str = "clip") -> Job:
        return self.queue.submit("interrogate", InterrogateJob(image, model))


def _run_extras(service: GenerationService, extras: ExtrasJob, context: JobContext) -> Any:
    """Extras with progress per image (shown as steps) and Interrupt checked after each image."""
    def progress(done: int, total: int) -> None:
        context.set_steps(total)
        context.report_step(done)  # raises JobInterrupted when the user interrupted

    context.start_batch(0, max(1, len(extras.inputs)), "Extras")
    postprocess = service.postprocess
    if extras.input_dir is not None:
        return postprocess.run_extras_folder(extras.request, extras.input_dir, extras.output_dir, progress=progress)
    return postprocess.run_extras(extras.request, list(extras.inputs), save=extras.save,
                                  output_dir=extras.output_dir, progress=progress)


def _run_merge(service: GenerationService, plan: MergePlan, context: JobContext) -> Path:
    """Checkpoint Merger through the queue (it reads and writes whole models: one thing at a time); progress
    per tensor, Interrupt checked between tensors; the new file joins the checkpoint list."""
    def progress(done: int, total: int) -> None:
        context.set_steps(total)
        context.report_step(done)

    context.start_batch(0, 1, "Merging")
    merged = run_merge(plan, service.paths.checkpoints, progress)
    service.manager.registry.refresh_checkpoints()
    return merged


def run_job(service: GenerationService, job: Job, context: JobContext) -> Any:
    """The queue's runner: dispatch a job to the service by kind."""
    payload: GenerationJob = job.request
    if job.kind == "extras":
        return _run_extras(service, job.request, context)
    if job.kind == "merge":
        return _run_merge(service, job.request, context)
    if job.kind == "interrogate":
        return service.postprocess.interrogate(job.request.image, job.request.model)
    if job.kind == "txt2img":
        return service.txt2img(payload.request, context, payload.save)
    if job.kind == "img2img":
        return service.img2img(payload.request, context, payload.save)
    if job.kind == "unload-checkpoint":  # queued like a job, so a running job never loses its model
        service.manager.unload_all()
        return None
    if job.kind == "reload-checkpoint":  # the selected checkpoint, loaded now (the quick setting, the API)
        settings = service.settings.as_dict()
        return service.selected_model(settings)
    raise UserError(f"Unknown job kind {job.kind!r}.")


@dataclass
class DeviceRuntime:
    """One local worker's own parts: its device plan, model manager and generation service."""

    worker: Worker
    plan: RuntimePlan
    manager: ModelManager
    service: GenerationService


def _device_runtimes(options: LaunchOptions, paths: DataPaths, settings: Settings, registry: ModelRegistry,
                     hardware: HardwareInfo, choice: PoolChoice) -> list[DeviceRuntime]:
    """One runtime per local worker; with Ray workers only the head's own (it saves images and splits batches,
    the actors load the models)."""
    device_ids = [options.device_id]
    if choice.kind == "local":
        device_ids = worker_device_ids(options.device_ids, options.device_id,
                                       len(hardware.cuda_devices), options.workers_per_device or 1)
    runtimes: list[DeviceRuntime] = []
    files = CheckpointFiles(registry)  # the local workers share the head's models folder
    for index, device_id in enumerate(device_ids):
        device_options = options
        if device_id != options.device_id:
            device_options = dataclasses.replace(options, device_id=device_id)
        plan = plan_runtime(device_options, hardware)
        log.info("Runtime%s: %s", f" (worker {index})" if len(device_ids) > 1 else "", plan.describe())
        manager = ModelManager(registry, plan, cache_dir=paths.cache_dir,
                               allow_unsafe_pickle=options.disable_safe_unpickle,
                               vae_path=options.vae_path)
        service = GenerationService(manager, settings, paths, plan, device_options)
        worker = Worker(f"local-{index}", _bound_runner(service, runtimes), device=plan.device,
                        device_name=plan.device_name, loaded=manager.loaded_titles, checkpoints=files)
        manager.on_loaded.append(worker.count_load)
        runtimes.append(DeviceRuntime(worker, plan, manager, service))
    return runtimes


# A worker's first job imports much of diffusers and transformers lazily; their lazy modules are not thread-safe
# (two threads importing at once get "module 'diffusers' has no attribute ..."), so the first jobs of the local
# workers run one after another. Later jobs run side by side.
_FIRST_JOB_LOCK = threading.Lock()


def _bound_runner(service: GenerationService, runtimes: list[DeviceRuntime]) -> Runner:
    warm = threading.Event()

    def run(job: Job, context: JobContext) -> Any:
        if job.kind == "unload-checkpoint":  # every local worker frees its models (a running job keeps its own)
            for runtime in runtimes:
                runtime.manager.unload_all()
            return None
        if warm.is_set():
            return run_job(service, job, context)
        with _FIRST_JOB_LOCK:
            warm.set()
            return run_job(service, job, context)

    return run


def _make_pool(choice: PoolChoice, options: LaunchOptions, runtimes: list[DeviceRuntime], settings: Settings,
               hardware: HardwareInfo) -> WorkerPool:
    if choice.kind == "local":
        return LocalPool([runtime.worker for runtime in runtimes])
    if choice.address is None and "ray" not in sys.modules:
        private_ray_auth(os.environ)
    try:
        from sdweb.generation.pool.ray_pool import RayPool
    except ImportError as error:
        raise UserError(f"--workers {options.workers}: {error}.", code="bad_flag",
                        hint=RAY_HINT) from error
    import torch

    device_ids = worker_device_ids(options.device_ids, options.device_id,
                                   len(hardware.cuda_devices), options.workers_per_device or 1)
    return RayPool(build_pool_worker, options, device_ids, settings.as_dict,
                   retries=options.worker_retries, address=choice.address,
                   gpus=len(hardware.cuda_devices), threads=torch.get_num_threads())


def build_pool_worker(options: LaunchOptions, device_id: str | None, worker_id: str) -> Worker:
    """A worker in its own process (a Ray actor): its own runtime plan, model manager and service. It reads
    nothing the head owns but the model folders: the head sends its settings with each job, and the worker
    returns images as PNG bytes without saving them (the head is the only writer)."""
    keep_large_blocks_in_heap()  # this process samples: the same heap settings as the head's (build_app_state)
    forge_flags.apply_torch_settings(options)  # and the same torch settings as the head's (run_server)
    paths = resolve_paths(options)
    settings = Settings(paths.config_file)  # never read or written here: each job brings the head's values
    registry = ModelRegistry(paths, no_hashing=options.no_hashing,
                             extra_checkpoint=options.ckpt)
    registry.refresh_all()
    if device_id != options.device_id:
        options = dataclasses.replace(options, device_id=device_id)
    plan = plan_runtime(options, probe_hardware())
    manager = ModelManager(registry, plan, cache_dir=paths.cache_dir,
                           allow_unsafe_pickle=options.disable_safe_unpickle,
                           vae_path=options.vae_path)
    service = GenerationService(manager, settings, paths, plan, options)
    # the jobs' scripts and extension hooks (ControlNet units, SD upscale, X/Y/Z...) run where the job runs
    extensions = load_extensions(paths, settings, options, refresh_models=registry.refresh_all,
                                 services=service.script_services, in_worker=True)
    settings.register_options(extensions.option_infos())
    service.scripts = extensions.runner
    manager.on_loaded.extend(extensions.callbacks.model_loaded)

    def run(job: Job, context: JobContext) -> Any:
        if isinstance(job.request, GenerationJob):  # this worker's own copy of the job: never save here
            job.request = GenerationJob(job.request.request, NO_SAVE)
        return run_job(service, job, context)

    worker = Worker(worker_id, run, device=plan.device, device_name=plan.device_name,
                    loaded=manager.loaded_titles, pack=pack_result,
                    apply_settings=lambda values: settings.update(values, save=False),
                    checkpoints=CheckpointFiles(registry, refresh_s=CHECKPOINT_RESCAN_S))
    manager.on_loaded.append(worker.count_load)
    return worker


def _receiver(service: GenerationService, registry: ModelRegistry) -> Callable[[Job, WorkResult], Any]:
    """The head's side of a result: images a worker sent as bytes are saved here, as the job asked."""
    def receive(job: Job, result: WorkResult) -> Any:
        payload = job.request
        if not result.images or not isinstance(payload, GenerationJob) or result.value is None:
            return result.value
        started = datetime.fromtimestamp(job.progress.started_at) if job.progress.started_at else None
        return save_received(service, job.kind, payload.request, payload.save, result.value, result.images,
                             _checkpoint_entry(registry, job.checkpoint), started)

    return receive


def _checkpoint_entry(registry: ModelRegistry, title: str | None) -> CheckpointEntry | None:
    return registry.find_checkpoint(title) if title else None


def build_app_state(options: LaunchOptions) -> AppState:
    keep_large_blocks_in_heap()  # before the queue's threads start: they share the main heap
    paths = resolve_paths(options)
    paths.ensure_folders()
    threading.Thread(target=remove_stale_temp_files, args=(paths.outputs,), name="sdweb-tmp-cleanup",
                     daemon=True).start()
    settings = Settings.load(paths.config_file, frozen_keys=frozen_keys_from_flags(options),
                             exposure=untrusted_exposure(options))
    registry = ModelRegistry(paths, no_hashing=options.no_hashing,
                             extra_checkpoint=options.ckpt)
    registry.refresh_all()
    hardware = probe_hardware()
    choice = parse_workers_flag(options.workers)
    runtimes = _device_runtimes(options, paths, settings, registry, hardware, choice)
    primary = runtimes[0]
    service, manager = primary.service, primary.manager
    for runtime in runtimes:  # a damaged upscaler file is logged at start, as VAEs and LoRAs
        runtime.service.postprocess.upscalers.problems()
    queue = JobQueue(pool=_make_pool(choice, options, runtimes, settings, hardware), receive=_receiver(service, registry),
                     scheduler=Scheduler(options.scheduling),
                     splitter=BatchSplitter(service, lambda title: _checkpoint_entry(registry, title)),
                     retries=options.worker_retries)
    extensions = load_extensions(paths, settings, options, refresh_models=registry.refresh_all,
                                 services=service.script_services)
    for warning in settings.register_options(extensions.option_infos()):
        log.warning("Extension setting: %s", warning)
    for runtime in runtimes:
        runtime.service.scripts = extensions.runner
        runtime.manager.on_loaded.extend(extensions.callbacks.model_loaded)
    state = AppState(options=options, paths=paths, settings=settings, registry=registry, plan=primary.plan,
                     manager=manager, service=service, queue=queue, extensions=extensions, runtimes=runtimes)
    settings.set_value_check("sd_model_checkpoint", state.checked_checkpoint_setting)
    settings.set_value_check("sd_vae", lambda value: checked_vae_setting(registry, value))
    settings.set_value_check("forge_additional_modules",
                             lambda value: [path.name for path in manager.module_paths(list(value or []))])
    _select_launch_checkpoint(state)
    return state


def _select_launch_checkpoint(state: AppState) -> None:
    """--ckpt: that file becomes the selected checkpoint for this run (in memory, as A1111 does)."""
    ckpt = state.options.ckpt
    if not ckpt:
        return
    path = Path(ckpt).expanduser().resolve()
    if not path.exists():
        log.warning("--ckpt %s: no such file; using %s.", ckpt, state.settings.get("sd_model_checkpoint") or
                    "the first checkpoint")
        return
    try:
        state.settings.update({"sd_model_checkpoint": str(path)}, save=False)
    except UserError as error:
        log.warning("--ckpt %s cannot be used: %s", ckpt, error)
