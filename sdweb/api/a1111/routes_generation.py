"""/sdapi/v1 generation routes: txt2img, img2img, progress, interrupt, skip, png-info, sampler lists.

Generation goes through the same job queue as the UI. A route answers when its job is done, as A1111's
does, but waits without holding one of the threads that serve the other routes, so /progress, /interrupt
and the UI stay responsive however many requests are waiting.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from sdweb.api.a1111.convert import RequestInvalid, apply_infotext, img2img_request, txt2img_request
from sdweb.api.a1111.images import decode_image, encode_for_api
from sdweb.api.a1111.schemas import GenerationResponse, GenerationWire, Img2ImgWire, Txt2ImgWire
from sdweb.api.a1111.schemas_info import (
    LatentUpscalerModeItem,
    PNGInfoRequest,
    PNGInfoResponse,
    ProgressResponse,
    SamplerItem,
    SchedulerItem,
)
from sdweb.api.a1111.seams import ApiBackends, select_scripts
from sdweb.core.errors import UserError
from sdweb.core.requests import GenerationRequest
from sdweb.generation.jobs import JobInterrupted
from sdweb.generation.service import GenerationResult, SaveOptions
from sdweb.infotext import parse_infotext
from sdweb.outputs.save import read_infotext
from sdweb.samplers.resolve import samplers_api_list, schedulers_api_list
from sdweb.state import AppState

LATENT_UPSCALE_MODES = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                        "Latent (nearest)", "Latent (nearest-exact)")
MAX_INFOTEXT_CHARS = 1 << 20  # png-info refuses more (a 10 MB text chunk is not generation info)
MAX_WAITING_REQUESTS = 512  # each waits in its own thread, apart from the pool that runs the other routes


def fallback_info(request: GenerationRequest) -> dict[str, Any]:
    """Processed.js() keys for a job that made nothing (cancelled before it started)."""
    return {"prompt": request.prompt, "all_prompts": [], "negative_prompt": request.negative_prompt,
            "all_negative_prompts": [], "seed": request.seed, "all_seeds": [], "subseed": request.subseed,
            "all_subseeds": [], "subseed_strength": request.subseed_strength, "width": request.width,
            "height": request.height, "sampler_name": request.sampler_name, "cfg_scale": request.cfg_scale,
            "steps": request.steps, "batch_size": request.batch_size, "restore_faces": request.restore_faces,
            "face_restoration_model": None, "sd_model_name": None, "sd_model_hash": None, "sd_vae_name": None,
            "sd_vae_hash": None, "seed_resize_from_w": request.seed_resize_from_w,
            "seed_resize_from_h": request.seed_resize_from_h,
            "denoising_strength": getattr(request, "denoising_strength", None), "extra_generation_params": {},
            "index_of_first_image": 0, "infotexts": [], "styles": list(request.styles),
            "job_timestamp": time.strftime("%Y%m%d%H%M%S"), "clip_skip": 1,
            "is_using_inpainting_conditioning": False, "version": ""}


def _response(result: GenerationResult, request: GenerationRequest, wire: GenerationWire, state: AppState,
              echo: dict[str, Any]) -> GenerationResponse:
    fmt = str(state.settings.get("samples_format", "png"))
    images = list(result.images)
    info = dict(result.info) if result.info else fallback_info(request)
    infotexts = list(info.get("infotexts") or [])
    index_of_first = int(info.get("index_of_first_image") or 0)  # a script's grid comes first (X/Y/Z plot)
    if wire.save_images and result.grid is not None and state.settings.get("return_grid", True):
        images.insert(0, result.grid)
        infotexts.insert(0, str(result.grid.info.get("parameters", infotexts[0] if infotexts else "")))
        index_of_first += 1
    info.update(index_of_first_image=index_of_first, infotexts=infotexts)
    encoded = [encode_for_api(image, fmt) for image in images] if wire.send_images else []
    return GenerationResponse(images=encoded, parameters=echo, info=json.dumps(info, default=lambda _: None))


def _wait(job: Any) -> GenerationResult:
    try:
        return job.wait()
    except JobInterrupted:
        return GenerationResult(interrupted=True)


async def _generate(state: AppState, backends: ApiBackends, waiters: anyio.CapacityLimiter, kind: str,
                    wire: GenerationWire) -> Any:
    wire = apply_infotext(wire, kind, "GPU" if state.plan.device.startswith("cuda") else "NV")
    scripts = select_scripts(backends.scripts, kind, wire.script_name, wire.script_args,
                             wire.alwayson_scripts or {})
    overrides = await run_in_threadpool(state.settings.validated, wire.override_settings or {}, from_api=True)
    build = txt2img_request if kind == "txt2img" else img2img_request
    try:
        request = await run_in_threadpool(build, wire, state.settings.as_dict(), scripts, overrides)
    except RequestInvalid as error:
        return JSONResponse({"detail": error.errors}, status_code=422)
    save = SaveOptions(save_samples=wire.save_images, save_grid=wire.save_images)
    job = state.submit(kind, request, save, task_id=wire.force_task_id)
    result = await anyio.to_thread.run_sync(_wait, job, limiter=waiters)
    if overrides and not wire.override_settings_restore_afterwards:
        state.settings.update(overrides, from_api=True)
    echo = wire.model_dump(mode="json", warnings=False)
    if isinstance(wire, Img2ImgWire) and not wire.include_init_images:
        echo["init_images"] = None
        echo["mask"] = None
    return await run_in_threadpool(_response, result, request, wire, state, echo)


def add_generation_routes(router: APIRouter, state: AppState, backends: ApiBackends) -> None:
    waiters = anyio.CapacityLimiter(MAX_WAITING_REQUESTS)

    @router.post("/txt2img", response_model=GenerationResponse)
    async def txt2img(wire: Txt2ImgWire) -> Any:
        return await _generate(state, backends, waiters, "txt2img", wire)

    @router.post("/img2img", response_model=GenerationResponse)
    async def img2img(wire: Img2ImgWire) -> Any:
        return await _generate(state, backends, waiters, "img2img", wire)

    add_progress_routes(router, state)

    @router.post("/png-info", response_model=PNGInfoResponse)
    def png_info(wire: PNGInfoRequest) -> dict[str, Any]:
        image = decode_image(wire.image, "image")
        text, items = read_infotext(image)
        if text is not None and len(text) > MAX_INFOTEXT_CHARS:
            raise UserError(f"image: its parameters text has {len(text):,} characters; A1111 writes a few thousand.",
                            code="infotext_too_large", hint="This is not generation info sdweb can read.")
        items = {key: value for key, value in items.items() if isinstance(value, str | int | float)}
        return {"info": text or "", "items": items, "parameters": parse_infotext(text) if text else {}}

    @router.get("/samplers", response_model=list[SamplerItem])
    def samplers() -> list[dict[str, Any]]:
        return samplers_api_list()

    @router.get("/schedulers", response_model=list[SchedulerItem])
    def schedulers() -> list[dict[str, Any]]:
        return schedulers_api_list()

    @router.get("/latent-upscale-modes", response_model=list[LatentUpscalerModeItem])
    def latent_upscale_modes() -> list[dict[str, str]]:
        return [{"name": name} for name in LATENT_UPSCALE_MODES]


def _progress_payload(state: AppState, skip_current_image: bool) -> dict[str, Any]:
    job = state.queue.current()
    idle = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "", "job_count": 0,
            "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
    if job is None:
        return {"progress": 0.0, "eta_relative": 0.0, "state": idle, "current_image": None, "textinfo": None}
    progress = job.progress
    fraction = min(0.01 + progress.fraction(), 1.0)
    elapsed = time.time() - (progress.started_at or time.time())
    eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
    preview = progress.preview
    current_image = encode_for_api(preview, "png") if preview is not None and not skip_current_image else None
    job_state = {**idle, "skipped": job.skipped.is_set(), "interrupted": job.interrupted.is_set(),
                 "job": job.id, "job_count": progress.job_count, "job_no": progress.job_no,
                 "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(job.created_at)),
                 "sampling_step": progress.sampling_step, "sampling_steps": progress.sampling_steps}
    return {"progress": fraction, "eta_relative": eta, "state": job_state, "current_image": current_image,
            "textinfo": progress.textinfo or None}


def add_progress_routes(router: APIRouter, state: AppState) -> None:
    @router.get("/progress", response_model=ProgressResponse)
    def progress(skip_current_image: bool = False) -> dict[str, Any]:
        """The running job, whichever client (UI or API) submitted it."""
        return _progress_payload(state, skip_current_image)

    @router.post("/interrupt", response_model=dict[str, Any])
    def interrupt() -> dict[str, Any]:
        state.queue.interrupt()
        return {}

    @router.post("/skip", response_model=None)
    def skip() -> None:
        state.queue.skip()
        return None
