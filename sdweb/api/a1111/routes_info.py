"""/sdapi/v1 routes that read or change state without generating: flags, options, model lists, refreshes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from sdweb.cli import options_as_dict
from sdweb.core.errors import NotFoundError
from sdweb.runtime.memory import memory_stats
from sdweb.state import AppState

SECRET_FLAGS = ("gradio_auth", "api_auth", "ngrok", "ngrok_options", "tls_keyfile", "gradio_auth_path")


def redacted_flags(options: object) -> dict[str, Any]:
    """Every flag as /cmd-flags shows it, with passwords and tokens hidden."""
    values = options_as_dict(options)
    for key in SECRET_FLAGS:
        if values.get(key):
            values[key] = "<hidden>"
    return values


def add_info_routes(router: APIRouter, state: AppState) -> None:
    @router.get("/cmd-flags")
    def cmd_flags() -> dict[str, Any]:
        return redacted_flags(state.options)

    @router.get("/options")
    def get_options() -> dict[str, Any]:
        return state.settings.as_dict()

    @router.post("/options")
    def set_options(changes: dict[str, Any] = Body(...)) -> None:  # noqa: B008 (FastAPI idiom)
        wanted = changes.get("sd_model_checkpoint")
        if wanted:
            entry = state.registry.find_checkpoint(str(wanted))
            if entry is None:
                raise NotFoundError(f"Checkpoint {wanted!r} not found.",
                                    hint="GET /sdapi/v1/sd-models lists the titles you can use.")
            changes = {**changes, "sd_model_checkpoint": entry.title}
        state.settings.update(changes, from_api=True)
        return None

    @router.get("/sd-models")
    def sd_models() -> list[dict[str, Any]]:
        return [{"title": e.title, "model_name": e.model_name, "hash": e.shorthash, "sha256": e.sha256,
                 "filename": str(e.path), "config": None} for e in state.registry.checkpoints]

    @router.get("/sd-vae")
    def sd_vae() -> list[dict[str, str]]:
        return [{"model_name": v.name, "filename": str(v.path)} for v in state.registry.vaes]

    @router.get("/loras")
    def loras() -> list[dict[str, Any]]:
        return [{"name": x.name, "alias": x.alias or x.name, "path": str(x.path), "metadata": {}}
                for x in state.registry.loras]

    @router.get("/hypernetworks")
    def hypernetworks() -> list[dict[str, str]]:
        return []

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        state.registry.refresh_checkpoints()

    @router.post("/refresh-vae")
    def refresh_vae() -> None:
        state.registry.refresh_vaes()

    @router.post("/refresh-loras")
    def refresh_loras() -> None:
        state.registry.refresh_loras()

    @router.post("/refresh-embeddings")
    def refresh_embeddings() -> None:
        state.registry.refresh_embeddings()


def add_system_routes(router: APIRouter, state: AppState) -> None:
    """Lists and controls that exist in every A1111 install; empty where the feature is not there yet."""

    @router.get("/memory")
    def memory() -> dict[str, Any]:
        return memory_stats(state.plan.device)

    @router.get("/upscalers")
    def upscalers() -> list[dict[str, Any]]:
        return [{"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": scale}
                for name, scale in (("None", None), ("Lanczos", 4), ("Nearest", 4))]

    @router.get("/face-restorers")
    def face_restorers() -> list[dict[str, Any]]:
        return []

    @router.get("/realesrgan-models")
    def realesrgan_models() -> list[dict[str, Any]]:
        return []

    @router.get("/scripts")
    def scripts() -> dict[str, list[str]]:
        return {"txt2img": [], "img2img": []}

    @router.get("/script-info")
    def script_info() -> list[dict[str, Any]]:
        return []

    @router.get("/extensions")
    def extensions() -> list[dict[str, Any]]:
        return []

    @router.post("/unload-checkpoint")
    def unload_checkpoint() -> dict[str, Any]:
        state.manager.unload_all()
        return {}

    @router.post("/reload-checkpoint")
    def reload_checkpoint() -> dict[str, Any]:
        state.manager.get(state.settings.get("sd_model_checkpoint") or None,
                          limit=int(state.settings.get("sd_checkpoints_limit", 1)))
        return {}


NOT_YET = {
    "/extra-single-image": "Extras (upscaling, face restoration)",
    "/extra-batch-images": "Extras (upscaling, face restoration)",
    "/interrogate": "CLIP interrogation",
}


def add_unavailable_routes(router: APIRouter) -> None:
    """Routes A1111 clients call whose feature is not built yet: a clear 501, never a fake success."""
    for path, feature in NOT_YET.items():
        def unavailable(feature: str = feature) -> JSONResponse:
            return JSONResponse({"error": "NotImplemented", "detail": f"{feature} is not available in this "
                                 "version of sdweb.", "body": "", "errors": f"{feature} is not implemented"},
                                status_code=501)

        router.add_api_route(path, unavailable, methods=["POST"], include_in_schema=True,
                             responses={501: {"description": f"{feature} is not available yet"}})
