"""Generation results between a worker and the head: a worker in another process packs images as PNG bytes
with their infotext (it never saves), the head unpacks them and is the one that writes the files. The head
saves a split batch's gathered images the same way."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sdweb.generation.pool.messages import WorkImage, decode_png, encode_png
from sdweb.generation.service import GenerationResult, GenerationService, SaveOptions
from sdweb.generation.writer import SAVE_ERRORS, OutputWriter
from sdweb.models.registry import CheckpointEntry

NO_SAVE = SaveOptions(save_samples=False, save_grid=False, write_params=False)


def pack_result(value: Any) -> tuple[Any, tuple[WorkImage, ...]]:
    """In the worker: a GenerationResult's images as PNG bytes + infotext, the rest as plain data."""
    if not isinstance(value, GenerationResult):
        return value, ()
    infotexts = value.infotexts + [""] * (len(value.images) - len(value.infotexts))
    images = tuple(encode_png(image, str(image.info.get("parameters", text)))
                   for image, text in zip(value.images, infotexts, strict=True))
    return dataclasses.replace(value, images=[], grid=None, saved_paths=[]), images


def unpack_result(value: GenerationResult, images: tuple[WorkImage, ...]) -> GenerationResult:
    """In the head: a packed result with its images as PIL images again (an in-process result as it is)."""
    if not images:
        return value
    return dataclasses.replace(value, images=[decode_png(item) for item in images])


def save_received(service: GenerationService, mode: str, request: Any, save: SaveOptions, value: GenerationResult,
                  images: tuple[WorkImage, ...], checkpoint: CheckpointEntry | None = None,
                  job_time: datetime | None = None) -> GenerationResult:
    """In the head: the worker's images back as PIL images, saved as the service would have saved them."""
    return save_generation(service, mode, request, save, unpack_result(value, images), checkpoint, job_time)


def save_generation(service: GenerationService, mode: str, request: Any, save: SaveOptions,
                    value: GenerationResult, checkpoint: CheckpointEntry | None = None,
                    job_time: datetime | None = None) -> GenerationResult:
    """In the head: samples, params.txt and the grid of a result no worker saved, as the service saves them
    (the same names, counters, grid and skipped incomplete images); a failed save is a warning on the result,
    the images are still returned."""
    result = dataclasses.replace(value, saved_paths=[], warnings=list(value.warnings), info=dict(value.info))
    settings = service.effective_settings(request)
    writer = OutputWriter(service.paths, settings, service.options, mode, job_time or datetime.now(),
                          service.output_guard)
    generated = result.images[:len(result.infotexts)]
    keep_incomplete = bool(settings.get("save_incomplete_images"))
    try:
        if save.save_samples and not request.do_not_save_samples:
            for number, image in enumerate(generated):
                if number in result.incomplete and not keep_incomplete:
                    continue
                batch_index, index = divmod(number, max(1, request.batch_size))
                result.saved_paths.append(writer.save_sample(image, result.infotexts[number], request, checkpoint,
                                                             result.prompts[number], result.seeds[number],
                                                             batch_index, index))
        if result.infotexts and save.write_params:
            writer.write_params(result.infotexts[0])
        if len(generated) > 1 or not settings.get("grid_only_if_multiple", True):
            result.grid = writer.make_grid(generated, request.batch_size)
            result.grid.info["parameters"] = result.infotexts[0]
            if save.save_grid and settings.get("grid_save", True) and not request.do_not_save_grid:
                result.saved_paths.append(writer.save_grid(result.grid, result.infotexts[0], request,
                                                           result.seeds[0]))
    except SAVE_ERRORS as error:
        result.warnings.append(f"Not saved: {error.message}")
    if result.warnings:
        result.info["warnings"] = list(result.warnings)
    return result
