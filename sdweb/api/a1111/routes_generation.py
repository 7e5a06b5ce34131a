"""/sdapi/v1 generation routes: txt2img, img2img, progress, interrupt, skip, png-info, sampler lists.

Generation goes through the same job queue as the UI; a route blocks (in a worker thread) until its job
is done, as A1111's does.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from sdweb.api.a1111.convert import RequestInvalid, img2img_request, txt2img_request
from sdweb.api.a1111.images import decode_image, encode_for_api
from sdweb.api.a1111.schemas import GenerationResponse, GenerationWire, Img2ImgWire, Txt2ImgWire
from sdweb.core.errors import UserError
from sdweb.generation.jobs import JobInterrupted
from sdweb.generation.service import GenerationResult, SaveOptions
from sdweb.infotext import parse_infotext
from sdweb.outputs.save import read_infotext
from sdweb.samplers.resolve import samplers_api_list, schedulers_api_list
from sdweb.state import AppState

LATENT_UPSCALE_MODES = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                        "Latent (nearest)", "Latent (nearest-exact)")


class PngInfoWire(BaseModel):
    model_config = ConfigDict(extra="ignore")
    image: str


def _response(result: GenerationResult, wire: GenerationWire, state: AppState,
              echo: dict[str, Any]) -> GenerationResponse:
    fmt = str(state.settings.get("samples_format", "png"))
    images = list(result.images)
    index_of_first = 0
    if wire.save_images and result.grid is not None and state.settings.get("return_grid", True):
        images.insert(0, result.grid)
        index_of_first = 1
    info = {**result.info, "index_of_first_image": index_of_first}
    encoded = [encode_for_api(image, fmt) for image in images] if wire.send_images else []
    return GenerationResponse(images=encoded, parameters=echo, info=json.dumps(info, default=lambda _: None))


def _check_scripts(wire: GenerationWire) -> None:
    if wire.script_name:
        raise UserError(f"Script '{wire.script_name}' not found", code="script_not_found",
                        hint="No selectable scripts are installed yet.")
    for name in wire.alwayson_scripts or {}:
        raise UserError(f"always on script {name} not found", code="script_not_found",
                        hint="No always-on scripts (e.g. ControlNet) are installed yet.")


def _run(state: AppState, kind: str, request: Any, wire: GenerationWire) -> GenerationResult:
    save = SaveOptions(save_samples=wire.save_images, save_grid=wire.save_images)
    job = state.submit(kind, request, save, task_id=wire.force_task_id)
    try:
        result = job.wait()
    except JobInterrupted:
        result = GenerationResult(interrupted=True)
    if not wire.override_settings_restore_afterwards and wire.override_settings:
        state.settings.update(wire.override_settings)
    return result


def _invalid(error: RequestInvalid) -> JSONResponse:
    return JSONResponse({"detail": error.errors}, status_code=422)


def add_generation_routes(router: APIRouter, state: AppState) -> None:
    @router.post("/txt2img", response_model=GenerationResponse, responses={422: {"description": "Invalid"}})
    async def txt2img(wire: Txt2ImgWire) -> Any:
        _check_scripts(wire)
        try:
            request = txt2img_request(wire, state.settings.as_dict())
        except RequestInvalid as error:
            return _invalid(error)
        result = await run_in_threadpool(_run, state, "txt2img", request, wire)
        return _response(result, wire, state, wire.model_dump())

    @router.post("/img2img", response_model=GenerationResponse, responses={422: {"description": "Invalid"}})
    async def img2img(wire: Img2ImgWire) -> Any:
        _check_scripts(wire)
        try:
            request = img2img_request(wire, state.settings.as_dict())
        except RequestInvalid as error:
            return _invalid(error)
        result = await run_in_threadpool(_run, state, "img2img", request, wire)
        echo = wire.model_dump()
        if not wire.include_init_images:
            echo["init_images"] = None
            echo["mask"] = None
        return _response(result, wire, state, echo)

    add_progress_routes(router, state)

    @router.post("/png-info")
    def png_info(wire: PngInfoWire) -> dict[str, Any]:
        image = decode_image(wire.image, "image")
        text, items = read_infotext(image)
        items = {key: value for key, value in items.items() if isinstance(value, str | int | float)}
        return {"info": text or "", "items": items, "parameters": parse_infotext(text) if text else {}}

    @router.get("/samplers")
    def samplers() -> list[dict[str, Any]]:
        return samplers_api_list()

    @router.get("/schedulers")
    def schedulers() -> list[dict[str, Any]]:
        return schedulers_api_list()

    @router.get("/latent-upscale-modes")
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
    current_image = None
    if not skip_current_image and progress.preview is not None:
        current_image = encode_for_api(progress.preview, "png")
    job_state = {**idle, "skipped": job.skipped.is_set(), "interrupted": job.interrupted.is_set(),
                 "job": job.id, "job_count": progress.job_count, "job_no": progress.job_no,
                 "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(job.created_at)),
                 "sampling_step": progress.sampling_step, "sampling_steps": progress.sampling_steps}
    return {"progress": fraction, "eta_relative": eta, "state": job_state, "current_image": current_image,
            "textinfo": progress.textinfo or None}


def add_progress_routes(router: APIRouter, state: AppState) -> None:
    @router.get("/progress")
    def progress(skip_current_image: bool = False) -> dict[str, Any]:
        return _progress_payload(state, skip_current_image)

    @router.post("/interrupt")
    def interrupt() -> dict[str, Any]:
        state.queue.interrupt()
        return {}

    @router.post("/skip")
    def skip() -> None:
        state.queue.skip()
        return None
