"""A batch split into per-image jobs when several workers share the queue, gathered back in order by the head.

Image k of a job (k = batch_index * batch_size + position) becomes a job of its own with A1111's seed
arithmetic: seed + k (the same seed for every image when a variation strength is set), subseed + k, batch size
1, one iteration. Its noise is drawn from its own seed as in the batch (sdweb.samplers.rng.ImageRNG keeps one
generator per image), and its prompt and infotext are the batch's. The head gathers the parts in image order
and writes the files (names, counters), params.txt and the grid as the unsplit job would.

Pixels: the model runs a batch's images in one call; matrix products over another batch size round the last
float bits differently, so a split image can differ from the same image of an unsplit batch by 1/255 in a few
pixels (an A1111 batch differs from single images the same way). The same seed run alone is byte-identical.

Only split where a batch's images are independent: no selected script, no always-on script arguments, no
extension's always-on scripts or image-saved callbacks (they may act per batch or per job; see
ScriptRunner.runs_per_image), and img2img only with one init image (several init images map to batch
positions, and "Only masked" needs a single one).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sdweb.core.requests import GenerationRequest, Img2ImgRequest
from sdweb.generation.job_state import Job
from sdweb.generation.pool.messages import WorkResult
from sdweb.generation.received import NO_SAVE, save_generation, unpack_result
from sdweb.generation.seeds import plan_seeds
from sdweb.generation.service import GenerationResult, GenerationService
from sdweb.models.registry import CheckpointEntry

SPLIT_KINDS = ("txt2img", "img2img")


def split_request(request: GenerationRequest) -> list[GenerationRequest] | None:
    """One request per image with that image's seeds, or None when the job runs whole (one image; several
    init images)."""
    count = request.total_images
    if count < 2 or (isinstance(request, Img2ImgRequest) and len(request.init_images) != 1):
        return None
    seeds = plan_seeds(request.seed, request.subseed, request.subseed_strength, count)
    return [request.model_copy(update={"seed": seed, "subseed": subseed, "batch_size": 1, "n_iter": 1})
            for seed, subseed in zip(seeds.seeds, seeds.subseeds, strict=True)]


def merge_results(request: GenerationRequest, parts: list[GenerationResult | None]) -> GenerationResult:
    """The parts' results as one job's result, in image order (a part that never ran is left out)."""
    merged = GenerationResult()
    done = [part for part in parts if part is not None]
    for part in done:
        offset = len(merged.images)
        merged.incomplete.extend(offset + index for index in part.incomplete)
        generated = part.images[:len(part.infotexts)]
        merged.images.extend(generated)
        merged.infotexts.extend(part.infotexts)
        merged.seeds.extend(part.seeds)
        merged.subseeds.extend(part.subseeds)
        merged.prompts.extend(part.prompts)
        merged.negative_prompts.extend(part.negative_prompts)
        merged.interrupted = merged.interrupted or part.interrupted
        for mine, theirs in ((merged.notes, part.notes), (merged.warnings, part.warnings)):
            mine.extend(text for text in theirs if text not in mine)
    if not done:
        return merged
    info = dict(done[0].info)
    info.update({"all_prompts": merged.prompts, "all_negative_prompts": merged.negative_prompts,
                 "all_seeds": merged.seeds, "all_subseeds": merged.subseeds, "infotexts": merged.infotexts,
                 "seed": merged.seeds[0] if merged.seeds else request.seed,
                 "subseed": merged.subseeds[0] if merged.subseeds else request.subseed,
                 "batch_size": request.batch_size, "index_of_first_image": 0})
    for key, values in (("notes", merged.notes), ("warnings", merged.warnings)):
        info.pop(key, None)
        if values:
            info[key] = list(values)
    merged.info = info
    return merged


class BatchSplitter:
    """The head's splitter for generation jobs (sdweb.generation.jobs.Splitter). `checkpoint_of` gives the
    registry entry of a job's checkpoint title (its hash and name go into file names)."""

    def __init__(self, service: GenerationService,
                 checkpoint_of: Callable[[str | None], CheckpointEntry | None]) -> None:
        self._service = service
        self._checkpoint_of = checkpoint_of

    def split(self, kind: str, payload: Any) -> list[Any] | None:
        request = getattr(payload, "request", None)
        if kind not in SPLIT_KINDS or not isinstance(request, GenerationRequest):
            return None
        scripts = self._service.scripts
        if scripts is not None and not scripts.runs_per_image(kind, request):
            return None
        requests = split_request(request)
        if requests is None:
            return None
        return [dataclasses.replace(payload, request=part, save=NO_SAVE) for part in requests]

    def gather(self, job: Job, results: list[WorkResult | None]) -> GenerationResult:
        payload = job.request
        parts = [unpack_result(result.value, result.images) if result is not None else None for result in results]
        merged = merge_results(payload.request, parts)
        started = job.progress.started_at or time.time()
        saved = save_generation(self._service, job.kind, payload.request, payload.save, merged,
                                self._checkpoint_of(job.checkpoint), datetime.fromtimestamp(started))
        saved.seconds = time.time() - started
        return saved
