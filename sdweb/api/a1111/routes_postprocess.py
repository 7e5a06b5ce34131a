"""/sdapi/v1 Extras and interrogation routes, and the upscaler / face-restorer lists.

They call an optional `PostprocessBackend` (seams.py). Without one, the lists show what works without
it (hires fix's plain resamplers) and the routes that need it answer 501 naming the missing feature,
never a fake success. Training and hypernetwork creation are not planned: 501 as well.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from sdweb.api.a1111.images import decode_image, encode_for_api
from sdweb.api.a1111.schemas_info import (
    ErrorResponse,
    ExtrasBatchImagesResponse,
    ExtrasBatchImagesWire,
    ExtrasSingleImageResponse,
    ExtrasSingleImageWire,
    FaceRestorerItem,
    InterrogateResponse,
    InterrogateWire,
    RealesrganItem,
    UpscalerItem,
)
from sdweb.api.a1111.seams import ApiBackends
from sdweb.core.errors import NotFoundError, UserError
from sdweb.state import AppState

EXTRAS = "Extras (upscaling, face restoration)"
PLAIN_UPSCALERS = (("None", None), ("Lanczos", 4), ("Nearest", 4))
NOT_PLANNED = {
    "/create/embedding": "Creating textual-inversion embeddings",
    "/create/hypernetwork": "Creating hypernetworks",
    "/train/embedding": "Textual-inversion training",
    "/train/hypernetwork": "Hypernetwork training",
}
NOT_AVAILABLE = {501: {"model": ErrorResponse, "description": "The feature is not available in this version"}}


def not_available(feature: str) -> JSONResponse:
    return JSONResponse({"error": "NotImplemented", "detail": f"{feature} is not available in this version of "
                         "sdweb.", "body": "", "errors": f"{feature} is not implemented",
                         "code": "not_implemented", "hint": ""}, status_code=501)


def _extras_params(wire: ExtrasSingleImageWire | ExtrasBatchImagesWire) -> dict[str, Any]:
    return wire.model_dump(exclude={"image", "imageList"})


def add_postprocess_routes(router: APIRouter, state: AppState, backends: ApiBackends) -> None:
    backend = backends.postprocess

    @router.get("/upscalers", response_model=list[UpscalerItem])
    def upscalers() -> list[dict[str, Any]]:
        if backend is not None:
            return backend.upscalers()
        return [{"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": scale}
                for name, scale in PLAIN_UPSCALERS]

    @router.get("/face-restorers", response_model=list[FaceRestorerItem])
    def face_restorers() -> list[dict[str, Any]]:
        return backend.face_restorers() if backend is not None else []

    @router.get("/realesrgan-models", response_model=list[RealesrganItem])
    def realesrgan_models() -> list[dict[str, Any]]:
        return backend.realesrgan_models() if backend is not None else []

    @router.post("/extra-single-image", response_model=ExtrasSingleImageResponse, responses=NOT_AVAILABLE)
    async def extra_single_image(wire: ExtrasSingleImageWire) -> Any:
        if backend is None:
            return not_available(EXTRAS)
        image = decode_image(wire.image, "image")
        images, html = await run_in_threadpool(backend.extras, [image], _extras_params(wire))
        if not images:
            raise UserError("Extras returned no image.", code="no_result")
        return {"html_info": html, "image": await run_in_threadpool(encode_for_api, images[0])}

    @router.post("/extra-batch-images", response_model=ExtrasBatchImagesResponse, responses=NOT_AVAILABLE)
    async def extra_batch_images(wire: ExtrasBatchImagesWire) -> Any:
        if backend is None:
            return not_available(EXTRAS)
        images = [decode_image(item.data, f"imageList[{i}].data") for i, item in enumerate(wire.imageList)]
        results, html = await run_in_threadpool(backend.extras, images, _extras_params(wire))
        return {"html_info": html, "images": [encode_for_api(image) for image in results]}

    @router.post("/interrogate", response_model=InterrogateResponse, responses=NOT_AVAILABLE)
    async def interrogate(wire: InterrogateWire) -> Any:
        if backend is None:
            return not_available("CLIP interrogation")
        if not wire.image:
            raise NotFoundError("Image not found", code="image_not_found", hint="Send the image as base64.")
        image = decode_image(wire.image, "image")
        return {"caption": await run_in_threadpool(backend.interrogate, image, wire.model)}

    for path, feature in NOT_PLANNED.items():
        router.add_api_route(path, _unavailable_route(feature), methods=["POST"], responses=NOT_AVAILABLE,
                             name=path.strip("/").replace("/", "_"))


def _unavailable_route(feature: str) -> Any:
    def unavailable() -> JSONResponse:
        return not_available(feature)

    return unavailable
