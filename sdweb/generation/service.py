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
from sdweb.config.paths import DataPaths
from sdweb.config.settings import Settings
from sdweb.core.errors import UserError
from sdweb.core.requests import GenerationRequest, Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.hires import check_upscaler
from sdweb.generation.hooks import NO_HOOKS, HookProvider, Processing
from sdweb.generation.jobs import JobContext
from sdweb.generation.prompting import PreparedPrompt, prepare_prompt
from sdweb.generation.refiner import check_refiner_pair, refiner_infotext, refiner_switch
from sdweb.generation.runner import BatchExtras, BatchOutcome, run_batch
from sdweb.generation.seeds import plan_seeds
from sdweb.generation.writer import OutputWriter, infotext_params
from sdweb.models.manager import LoadedModel, ModelManager
from sdweb.runtime.memory import free_memory, is_out_of_memory
from sdweb.runtime.policy import RuntimePlan
from sdweb.samplers.resolve import require_available, resolve_sampler, scheduler_for_infotext

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
    seconds: float = 0.0


@dataclass(frozen=True)
class SaveOptions:
    save_samples: bool = True
    save_grid: bool = True


class GenerationService:
    def __init__(self, manager: ModelManager, settings: Settings, paths: DataPaths, plan: RuntimePlan,
                 options: object) -> None:
        self.manager = manager
        self.settings = settings
        self.paths = paths
        self.plan = plan
        self.options = options
        self.scripts: HookProvider | None = None  # the extension layer's scripts, set once at start

    def effective_settings(self, request: GenerationRequest) -> dict[str, Any]:
        """Settings for this job: the user's, with the request's override_settings merged (never written)."""
        values = self.settings.as_dict()
        if request.override_settings:
            values.update(self.settings.validated(request.override_settings))
        return values

    def _model(self, settings: Mapping[str, Any]) -> LoadedModel:
        return self.manager.get(settings.get("sd_model_checkpoint") or None,
                                limit=int(settings.get("sd_checkpoints_limit", 1)),
                                prediction_overrides=settings.get("sd_model_prediction_types") or {})

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
        p = Processing(mode, request)
        hooks.before_process(p)
        request = p.request
        settings = self.effective_settings(request)
        resolution = resolve_sampler(request.sampler_name, request.scheduler, strict=True)
        require_available(resolution.sampler)
        model = self._model(settings)
        if mode == "txt2img" and model.family.txt2img_pipeline is None:
            raise UserError(f"{model.entry.name} is a {model.family.label} model, which cannot do txt2img.",
                            code="unsupported_mode", hint="Use it as a refiner, or choose another checkpoint.")
        p.model = model
        hooks.process(p)
        request = p.request
        hires = isinstance(request, Txt2ImgRequest) and request.enable_hr
        if hires:
            check_upscaler(request.hr_upscaler)
            if model.family.is_inpaint:
                raise UserError("Hires fix with an inpainting checkpoint is not supported.", code="unsupported_mode")
        prepared = prepare_prompt(request, model, settings)
        extras = BatchExtras(refiner=self._refiner(request, model, settings, prepared), hooks=hooks, p=p)
        seeds = plan_seeds(request.seed, request.subseed, request.subseed_strength, request.total_images)
        writer = OutputWriter(self.paths, settings, self.options, mode, datetime.now())
        result = GenerationResult()
        passes = 2 if hires else 1  # A1111 counts each hires pass as a job
        if context is not None:
            context.set_job_count(request.n_iter * passes)
        for batch_index in range(request.n_iter):
            batch_seeds, batch_subseeds = seeds.for_batch(batch_index, request.batch_size)
            if context is not None:
                context.start_batch(batch_index * passes, request.steps,
                                    f"Batch {batch_index + 1} of {request.n_iter}")
            p.batch_number, p.seeds, p.subseeds = batch_index, batch_seeds, batch_subseeds
            p.prompts = [prepared.prompt] * len(batch_seeds)
            hooks.process_batch(p)
            outcome = self._run_batch_guarded(mode, request, model, prepared, resolution, batch_seeds,
                                              batch_subseeds, settings, context, extras)
            outcome.images = [hooks.postprocess_image(p, image) for image in outcome.images]
            prepared.extra_params.update(p.extra_generation_params)
            self._collect(result, outcome, request, model, prepared, resolution, batch_seeds, batch_subseeds,
                          settings, writer, save, batch_index)
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

    def _run_batch_guarded(self, mode: str, request: GenerationRequest, model: LoadedModel,
                           prepared: PreparedPrompt, resolution: Any, seeds: list[int], subseeds: list[int],
                           settings: Mapping[str, Any], context: JobContext | None,
                           extras: BatchExtras | None = None) -> BatchOutcome:
        """Out of memory becomes a clear UserError after the memory is freed; the server keeps serving."""
        try:
            return run_batch(mode, request, model, prepared, resolution, seeds, subseeds, settings, self.plan,
                             context, extras=extras)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            free_memory(self.plan.device)
            log.warning("Out of memory at %dx%d, batch %d: %s", request.width, request.height,
                        request.batch_size, error)
            raise UserError(f"Out of memory generating {request.batch_size} image(s) of "
                            f"{request.width}x{request.height}.", code="out_of_memory",
                            hint="Lower the batch size or the image size, or start with --medvram "
                                 "(or --lowvram).") from error

    def _collect(self, result: GenerationResult, outcome: BatchOutcome, request: GenerationRequest,
                 model: LoadedModel, prepared: PreparedPrompt, resolution: Any, seeds: list[int],
                 subseeds: list[int], settings: Mapping[str, Any], writer: OutputWriter, save: SaveOptions,
                 batch_index: int) -> None:
        for index, image in enumerate(outcome.images):
            params = infotext_params(request, model, prepared, resolution, seeds[index], subseeds[index],
                                     settings, __version__)
            infotext = writer.format(prepared.prompt, prepared.negative_prompt, params)
            image.info["parameters"] = infotext
            keep = outcome.stopped is None or settings.get("save_incomplete_images")
            if save.save_samples and keep and not request.do_not_save_samples:
                result.saved_paths.append(writer.save_sample(image, infotext, request, model, prepared,
                                                             seeds[index], batch_index, index))
            result.images.append(image)
            result.infotexts.append(infotext)
            result.seeds.append(seeds[index])
            result.subseeds.append(subseeds[index])
            result.prompts.append(prepared.prompt)
            result.negative_prompts.append(prepared.negative_prompt)

    def _finish(self, result: GenerationResult, request: GenerationRequest, writer: OutputWriter,
                save: SaveOptions, settings: Mapping[str, Any]) -> None:
        if result.infotexts:
            writer.write_params(result.infotexts[0])
        if len(result.images) > 1 or not settings.get("grid_only_if_multiple", True):
            grid = writer.make_grid(result.images, request.batch_size)
            grid.info["parameters"] = result.infotexts[0]
            result.grid = grid
            if save.save_grid and settings.get("grid_save", True) and not request.do_not_save_grid:
                result.saved_paths.append(writer.save_grid(grid, result.infotexts[0], request, result.seeds[0]))


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
        "face_restoration_model": None, "sd_model_name": model.entry.name_for_extra,
        "sd_model_hash": model.entry.shorthash, "sd_vae_name": None, "sd_vae_hash": None,
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
