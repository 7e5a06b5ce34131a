"""The generation service: one typed request in, images + infotexts out. UI and API call it through the job
queue; it holds no per-request state between calls."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from sdweb import __version__
from sdweb.config.exposure import untrusted_exposure
from sdweb.config.launch_options import LaunchOptions
from sdweb.config.paths import DataPaths
from sdweb.config.settings import Settings
from sdweb.core.errors import UserError
from sdweb.core.requests import GenerationRequest, Img2ImgRequest, Txt2ImgRequest
from sdweb.engines import engine_for
from sdweb.generation.batch_plan import BatchPlan
from sdweb.generation.hires import check_upscaler
from sdweb.generation.hooks import NO_HOOKS, HookProvider, JobHooks, JobScope, Processing, ScriptImage
from sdweb.generation.jobs import JobContext
from sdweb.generation.model_extras import apply_model_extras
from sdweb.generation.oom import run_with_oom_retry
from sdweb.generation.prompting import PreparedPrompt, prepare_prompt
from sdweb.generation.refiner import check_refiner_pair, refiner_infotext, refiner_switch
from sdweb.generation.runner import BatchExtras, BatchOutcome, run_batch
from sdweb.generation.script_services import ScriptServices
from sdweb.generation.seeds import plan_seeds
from sdweb.generation.writer import SAVE_ERRORS, OutputWriter, infotext_params
from sdweb.models.manager import LoadedModel, ModelManager
from sdweb.outputs.guard import OutputGuard
from sdweb.postprocess.service import PostprocessService
from sdweb.prompts.embeddings import EmbeddingLibrary, LoadResult
from sdweb.prompts.styles import StyleDatabase
from sdweb.runtime.policy import RuntimePlan
from sdweb.samplers.resolve import resolve_sampler, scheduler_for_infotext

log = logging.getLogger(__name__)


@dataclass
class GenerationResult:
    images: list[Image.Image] = field(default_factory=list)  # each with info["parameters"] = its infotext
    infotexts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    saved_paths: list[Path] = field(default_factory=list)
    grid: Image.Image | None = None
    interrupted: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # A1111's Processed.js() keys
    notes: list[str] = field(default_factory=list)  # where we differ from what was asked (approximations)
    warnings: list[str] = field(default_factory=list)  # what failed without failing the job (a save: disk full)
    incomplete: list[int] = field(default_factory=list)  # images of a batch stopped by interrupt or skip
    seconds: float = 0.0


@dataclass(frozen=True)
class SaveOptions:
    save_samples: bool = True
    save_grid: bool = True
    write_params: bool = True  # params.txt (false where the head writes it: a worker in another process, a part)


class GenerationService:
    def __init__(self, manager: ModelManager, settings: Settings, paths: DataPaths, plan: RuntimePlan,
                 options: LaunchOptions, postprocess: PostprocessService | None = None) -> None:
        self.manager = manager
        self.settings = settings
        self.paths = paths
        self.plan = plan
        self.options = options
        # where outputs may go and which files they may replace; shared with Extras
        self.output_guard = OutputGuard(paths.data_dir, untrusted_exposure(options))
        # upscalers (hires fix) and face restoration (restore_faces); AppState may share one with Extras
        self.postprocess = postprocess or PostprocessService(paths, settings, plan, guard=self.output_guard)
        self.scripts: HookProvider | None = None  # the extension layer's scripts, set once at start
        self.script_services = ScriptServices(self)  # what scripts may ask of the app (names, upscaling)
        self.styles = StyleDatabase(paths.styles_files)  # styles.csv, re-read when the file changes
        self.embeddings = EmbeddingLibrary()  # textual inversions from embeddings/, cached by path + mtime
        self._embeddings_folder_stamp: int | None = None

    def effective_settings(self, request: GenerationRequest) -> dict[str, Any]:
        """Settings for this job: the user's, with the request's override_settings merged (never written)."""
        values = self.settings.as_dict()
        if request.override_settings:
            values.update(self.settings.validated(request.override_settings))
        return values

    def _embeddings(self) -> LoadResult:
        """The embeddings folder's files, loaded (and the unreadable ones with why); rescanned when the folder
        changes (as A1111 does)."""
        folder = self.paths.embeddings
        stamp = folder.stat().st_mtime_ns if folder.is_dir() else None
        if stamp != self._embeddings_folder_stamp:
            self.manager.registry.refresh_embeddings()
            self._embeddings_folder_stamp = stamp
        files = [(item.name, item.path) for item in self.manager.registry.embeddings]
        return self.embeddings.load(files)

    def selected_model(self, settings: Mapping[str, Any]) -> LoadedModel:
        return self.manager.get(settings.get("sd_model_checkpoint") or None,
                                limit=int(settings.get("sd_checkpoints_limit", 1)),
                                prediction_overrides=settings.get("sd_model_prediction_types") or {},
                                modules=list(settings.get("forge_additional_modules") or []))

    def txt2img(self, request: Txt2ImgRequest, context: JobContext | None,
                save: SaveOptions = SaveOptions()) -> GenerationResult:  # noqa: B008 (frozen default)
        return self._generate("txt2img", request, context, save)

    def img2img(self, request: Img2ImgRequest, context: JobContext | None,
                save: SaveOptions = SaveOptions()) -> GenerationResult:  # noqa: B008 (frozen default)
        return self._generate("img2img", request, context, save)

    def _generate(self, mode: str, request: GenerationRequest, context: JobContext | None,
                  save: SaveOptions) -> GenerationResult:
        started = time.perf_counter()
        hooks = self.scripts.bind(mode, request) if self.scripts is not None else NO_HOOKS
        scope = JobScope(run=lambda q: self._process(q, hooks, context, save, started),
                         save=lambda q, item: self._save_script_image(q, item, save), context=context,
                         services=self.script_services)
        p = Processing(mode, request, scope)
        try:
            taken = hooks.run_selected(p)
            if taken is not None:
                return taken
            return self._process(p, hooks, context, save, started)
        finally:
            for model in scope.models:  # LoRAs off again: the next job without tags is the base model
                self.manager.deactivate_loras(model)

    def _save_script_image(self, p: Processing, item: ScriptImage, save: SaveOptions) -> Path | None:
        """A script's own image (grid, combined upscale), saved when the job saves its images or grids."""
        settings = self.effective_settings(p.request)
        writer = OutputWriter(self.paths, settings, self.options, p.mode, datetime.now(), self.output_guard)
        if item.grid:
            if not (save.save_grid and settings.get("grid_save", True)):
                return None
            return writer.save_grid(item.image, item.infotext, p.request, item.seed, item.basename or "grid")
        if not save.save_samples or p.request.do_not_save_samples:
            return None
        return writer.save_sample(item.image, item.infotext, p.request, p.model.entry if p.model else None,
                                  p.request.prompt, item.seed, 0)

    def _process(self, p: Processing, hooks: JobHooks, context: JobContext | None, save: SaveOptions,
                 started: float) -> GenerationResult:
        mode = p.mode
        hooks.before_process(p)
        request = p.request
        settings = self.effective_settings(request)
        resolution = resolve_sampler(request.sampler_name, request.scheduler, strict=True)
        model = self.selected_model(settings)
        if mode == "txt2img" and model.family.features.edit:
            raise UserError(f"{model.entry.name} is a {model.family.label} model: it edits an image you give it, "
                            "so it cannot do txt2img.", code="edit_model_needs_image",
                            hint="Use img2img with the image to edit (the API's init_images) and say in the prompt "
                                 "what to change; or choose another checkpoint.")
        if mode == "txt2img" and model.family.txt2img_pipeline is None:
            raise UserError(f"{model.entry.name} is a {model.family.label} model, which cannot do txt2img.",
                            code="unsupported_mode", hint="Use it as a refiner, or choose another checkpoint.")
        if model.family.features.edit and "denoising_strength" not in p.request.model_fields_set:
            p.denoising_strength = 1.0  # the edit starts from noise, the image conditions it
        p.model = model
        if all(used is not model for used in p.scope.models):
            p.scope.models.append(model)
        hooks.process(p)
        request = p.request
        hires = isinstance(request, Txt2ImgRequest) and request.enable_hr
        if hires:
            check_upscaler(request.hr_upscaler, self.postprocess.upscalers)
            if model.family.is_inpaint:
                raise UserError("Hires fix with an inpainting checkpoint is not supported.", code="unsupported_mode")
        if request.restore_faces:
            self.postprocess.faces.require_model(str(settings.get("face_restoration_model") or "CodeFormer"))
        engine = engine_for(model.family)
        engine_notes = engine.check_request(model, request, resolution, settings)
        embeddings = self._embeddings()
        prepared = prepare_prompt(request, model, settings, self.styles, embeddings.embeddings, embeddings.errors)
        prepared.notes.extend(engine_notes)
        prepared.extra_params.update(engine.infotext(model, request, settings))
        apply_model_extras(self.manager, model, prepared, settings)
        extras = BatchExtras(refiner=self._refiner(request, model, settings, prepared), hooks=hooks, p=p,
                             upscalers=self.postprocess.upscalers)
        seeds = plan_seeds(request.seed, request.subseed, request.subseed_strength, request.total_images)
        writer = OutputWriter(self.paths, settings, self.options, mode, datetime.now(), self.output_guard)
        result = GenerationResult()
        passes = 2 if hires else 1  # A1111 counts each hires pass as a job
        scope = p.scope
        jobs_before = scope.jobs_done
        if context is not None:  # a script's runs count together: the ones done, this one, the ones planned
            runs_left = max(1, scope.planned_runs - scope.runs_started)
            context.set_job_count(jobs_before + request.n_iter * passes * runs_left)
        scope.runs_started += 1
        scope.jobs_done += request.n_iter * passes
        for batch_index in range(request.n_iter):
            batch_seeds, batch_subseeds = seeds.for_batch(batch_index, request.batch_size)
            if context is not None:
                context.start_batch(jobs_before + batch_index * passes, request.steps,  # named only if several
                                    f"Batch {batch_index + 1} of {request.n_iter}" if request.n_iter > 1 else "")
            p.batch_number, p.seeds, p.subseeds = batch_index, batch_seeds, batch_subseeds
            p.prompts = [prepared.prompt] * len(batch_seeds)
            asked = (request.prompt, request.negative_prompt)
            hooks.process_batch(p)
            if (request.prompt, request.negative_prompt) != asked:  # a script's prompt for this batch on
                prepared = prepare_prompt(request, model, settings, self.styles, embeddings.embeddings,
                                          embeddings.errors)
                apply_model_extras(self.manager, model, prepared, settings)
                if extras.refiner is not None:
                    extras.refiner = self._refiner(request, model, settings, prepared)
            batch = BatchPlan(mode, request, model, prepared, resolution, tuple(batch_seeds), tuple(batch_subseeds),
                              settings)
            outcome = self._run_batch_guarded(batch, context, extras)
            if request.restore_faces:  # before the scripts' postprocess_image, as in A1111
                restored = [self.postprocess.restore_faces_for_generation(image, settings)
                            for image in outcome.images]
                outcome.images = [image for image, _ in restored]
                if restored:
                    prepared.extra_params["Face restoration"] = restored[0][1]
            outcome.images = [hooks.postprocess_image(p, image) for image in outcome.images]
            prepared.extra_params.update(p.extra_generation_params)
            self._collect(result, outcome, batch, writer, save, batch_index, extras)
            for note in [*prepared.notes, *outcome.notes, *p.notes]:
                if note not in result.notes:
                    result.notes.append(note)
                    log.info("Note: %s", note)
            if outcome.stopped == "interrupted":
                result.interrupted = True
                break
        self._finish(result, request, writer, save, settings)
        result.images.extend(hooks.extra_images(p))
        result.seconds = time.perf_counter() - started
        result.info = processed_info(result, request, model, prepared, resolution, seeds.subseed_strength, settings)
        if result.warnings:
            result.info["warnings"] = list(result.warnings)
        if result.notes:  # what the model ignored or approximated (also in the UI's status line)
            result.info["notes"] = list(result.notes)
        hooks.postprocess(p, result)
        return result

    def _refiner(self, request: GenerationRequest, model: LoadedModel, settings: Mapping[str, Any],
                 prepared: PreparedPrompt) -> tuple[LoadedModel, float] | None:
        """The loaded refiner and its switch point (kept in memory beside the base), or None."""
        switch_at = refiner_switch(request)
        if switch_at is None:
            return None
        limit = max(2, int(settings.get("sd_checkpoints_limit", 1)))
        refiner = self.manager.get(request.refiner_checkpoint, limit=limit,
                                   prediction_overrides=settings.get("sd_model_prediction_types") or {})
        check_refiner_pair(model, refiner)
        prepared.extra_params.update(refiner_infotext(refiner, switch_at))
        return refiner, switch_at

    def _run_batch_guarded(self, batch: BatchPlan, context: JobContext | None,
                           extras: BatchExtras | None = None) -> BatchOutcome:
        """Out of memory: retried once in a lower-memory mode where one helps, else a clear UserError after the
        memory is freed; the server keeps serving (generation/oom.py)."""
        return run_with_oom_retry(lambda: run_batch(batch, self.plan, context, extras=extras),
                                  batch.request, batch.model, self.plan)

    def _collect(self, result: GenerationResult, outcome: BatchOutcome, batch: BatchPlan, writer: OutputWriter,
                 save: SaveOptions, batch_index: int, extras: BatchExtras) -> None:
        request, model, prepared, settings = batch.request, batch.model, batch.prepared, batch.settings
        seeds, subseeds = batch.seeds, batch.subseeds
        for index, image in enumerate(outcome.images):
            params = infotext_params(request, model, prepared, batch.resolution, seeds[index], subseeds[index],
                                     settings, __version__, self.plan.device)
            infotext = writer.format(prepared.prompt, prepared.negative_prompt, params)
            image.info["parameters"] = infotext
            keep = outcome.stopped is None or settings.get("save_incomplete_images")
            if outcome.stopped is not None:
                result.incomplete.append(len(result.images))
            if save.save_samples and keep and not request.do_not_save_samples:
                image, infotext = extras.hooks.before_image_saved(extras.p, image, infotext)
                image.info["parameters"] = infotext
                try:
                    path = writer.save_sample(image, infotext, request, model.entry, prepared.prompt, seeds[index],
                                              batch_index, index)
                except SAVE_ERRORS as error:
                    _save_failed(result, error)
                else:
                    result.saved_paths.append(path)
                    extras.hooks.image_saved(extras.p, image, infotext, path)
            result.images.append(image)
            result.infotexts.append(infotext)
            result.seeds.append(seeds[index])
            result.subseeds.append(subseeds[index])
            result.prompts.append(prepared.prompt)
            result.negative_prompts.append(prepared.negative_prompt)

    def _finish(self, result: GenerationResult, request: GenerationRequest, writer: OutputWriter,
                save: SaveOptions, settings: Mapping[str, Any]) -> None:
        if result.infotexts and save.write_params:
            writer.write_params(result.infotexts[0])
        if len(result.images) > 1 or not settings.get("grid_only_if_multiple", True):
            grid = writer.make_grid(result.images, request.batch_size)
            grid.info["parameters"] = result.infotexts[0]
            result.grid = grid
            if save.save_grid and settings.get("grid_save", True) and not request.do_not_save_grid:
                try:
                    result.saved_paths.append(writer.save_grid(grid, result.infotexts[0], request, result.seeds[0]))
                except SAVE_ERRORS as error:
                    _save_failed(result, error)


def _save_failed(result: GenerationResult, error: UserError) -> None:
    """A save that failed (a full disk, a refused folder): said once per job; the images are still returned."""
    message = f"Not saved: {error.message}"
    if message not in result.warnings:
        log.warning("%s", message)
        result.warnings.append(message)


def processed_info(result: GenerationResult, request: GenerationRequest, model: LoadedModel,
                   prepared: PreparedPrompt, resolution: Any, subseed_strength: float,
                   settings: Mapping[str, Any]) -> dict[str, Any]:
    """A1111's `Processed.js()` dict (the API's `info`, as a JSON string there)."""
    first_seed = result.seeds[0] if result.seeds else request.seed
    return {
        "prompt": prepared.prompt, "all_prompts": result.prompts,
        "negative_prompt": prepared.negative_prompt, "all_negative_prompts": result.negative_prompts,
        "seed": first_seed, "all_seeds": result.seeds,
        "subseed": result.subseeds[0] if result.subseeds else request.subseed, "all_subseeds": result.subseeds,
        "subseed_strength": subseed_strength, "width": request.width, "height": request.height,
        "sampler_name": resolution.sampler.name, "cfg_scale": request.cfg_scale, "steps": request.steps,
        "batch_size": request.batch_size, "restore_faces": request.restore_faces,
        "face_restoration_model": prepared.extra_params.get("Face restoration"),
        "sd_model_name": model.entry.name_for_extra,
        "sd_model_hash": model.entry.shorthash, "sd_vae_name": prepared.extra_params.get("VAE"),
        "sd_vae_hash": prepared.extra_params.get("VAE hash"),
        "seed_resize_from_w": request.seed_resize_from_w, "seed_resize_from_h": request.seed_resize_from_h,
        "denoising_strength": getattr(request, "denoising_strength", None) if isinstance(request, Img2ImgRequest)
        else None,
        "extra_generation_params": {"Schedule type": scheduler_for_infotext(resolution.sampler,
                                                                            resolution.scheduler)},
        "index_of_first_image": 0, "infotexts": result.infotexts, "styles": list(request.styles),
        "job_timestamp": datetime.now().strftime("%Y%m%d%H%M%S"),
        "clip_skip": int(settings.get("CLIP_stop_at_last_layers", 1)),
        "is_using_inpainting_conditioning": model.family.is_inpaint, "version": __version__,
    }
