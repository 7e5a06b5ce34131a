"""/sdapi/v1 routes that read or change state without generating: flags, options, model lists, refreshes."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Body
from fastapi.concurrency import run_in_threadpool

from sdweb.api.a1111.catalog import embeddings_listing
from sdweb.api.a1111.schemas_info import (
    EmbeddingsResponse,
    ExtensionItem,
    HypernetworkItem,
    LoraItem,
    PromptStyleItem,
    ScriptInfoItem,
    ScriptsList,
    SDModelItem,
    SDVaeItem,
)
from sdweb.api.a1111.seams import ApiBackends
from sdweb.cli import options_as_dict
from sdweb.config.launch_options import LaunchOptions
from sdweb.generation.service import SaveOptions
from sdweb.models.registry import CheckpointEntry, read_safetensors_metadata
from sdweb.runtime.memory import memory_stats
from sdweb.state import AppState

SECRET_FLAGS = ("gradio_auth", "api_auth", "ngrok", "ngrok_options", "tls_keyfile", "gradio_auth_path")
# Extension flags are listed too; any whose name says it holds a secret is hidden as well.
_SECRET_NAME = re.compile(r"(auth|token|passw|secret|api_?key|credential)", re.IGNORECASE)


def redacted_flags(options: LaunchOptions, extension_flags: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every flag as /cmd-flags shows it (sdweb's, then those A1111 extensions added), with passwords and tokens
    hidden."""
    values = options_as_dict(options)
    values |= {key: value for key, value in (extension_flags or {}).items() if key not in values}
    for key in values:
        if values[key] and (key in SECRET_FLAGS or _SECRET_NAME.search(key)):
            values[key] = "<hidden>"
    return values


def is_secret_setting(settings: Any, key: str) -> bool:
    """A token or password: flagged `secret`, or (a key no loaded code owns, e.g. a disabled extension's)
    named like one."""
    option = settings.option(key)
    if option is not None:
        return bool(getattr(option, "secret", False))
    return bool(_SECRET_NAME.search(key))


def public_settings(settings: Any) -> dict[str, Any]:
    """Every setting GET /options returns: secrets are left out, so a client that posts the dict back
    never overwrites them with a placeholder."""
    return {key: value for key, value in settings.as_dict().items() if not is_secret_setting(settings, key)}


def _model_item(entry: CheckpointEntry) -> dict[str, Any]:
    return {"title": entry.title, "model_name": entry.model_name, "hash": entry.shorthash, "sha256": entry.sha256,
            "filename": str(entry.path), "config": None}


def _lora_metadata(path: Any) -> dict[str, Any]:
    return read_safetensors_metadata(path) if str(path).endswith(".safetensors") else {}


def _current_checkpoint(state: AppState) -> CheckpointEntry | None:
    loaded = state.manager.loaded_titles()
    entry = state.registry.find_checkpoint(loaded[-1]) if loaded else None
    return entry or state.selected_checkpoint()


def add_info_routes(router: APIRouter, state: AppState) -> None:
    @router.get("/cmd-flags", response_model=dict[str, Any])
    def cmd_flags() -> dict[str, Any]:
        flags = state.extensions.extension_flags if state.extensions is not None else None
        return redacted_flags(state.options, flags() if flags is not None else None)

    @router.get("/options", response_model=dict[str, Any])
    def get_options() -> dict[str, Any]:
        """The settings, with `sd_model_checkpoint` / `sd_checkpoint_hash` naming the checkpoint in use (the
        chosen one, else the loaded one, else the one the next job loads) as A1111 keeps them: never "" while
        there is a checkpoint, since clients read the current model from here."""
        options = public_settings(state.settings)
        chosen = str(options.get("sd_model_checkpoint") or "")
        current = (state.registry.find_checkpoint(chosen) if chosen else None) or _current_checkpoint(state)
        if current is not None:
            options["sd_model_checkpoint"] = current.title
            options["sd_checkpoint_hash"] = current.sha256 or options.get("sd_checkpoint_hash", "")
        return options

    @router.post("/options", response_model=None)
    def set_options(changes: dict[str, Any] = Body(...)) -> None:  # noqa: B008 (FastAPI idiom)
        """Validated all or nothing (422 naming the key; 404 for an unknown checkpoint or VAE; 403 for a locked
        setting on an exposed server; 507 when config.json cannot be written, nothing changed); `restrict_api`
        keys are ignored, as in A1111."""
        state.check_checkpoint_change(changes.get("sd_model_checkpoint"))
        state.settings.update(changes, from_api=True)
        return None

    @router.get("/sd-models", response_model=list[SDModelItem])
    def sd_models() -> list[dict[str, Any]]:
        return [_model_item(entry) for entry in state.registry.checkpoints]

    @router.get("/sd-vae", response_model=list[SDVaeItem])
    def sd_vae() -> list[dict[str, str]]:
        return [{"model_name": v.name, "filename": str(v.path)} for v in state.registry.vaes]

    @router.get("/sd-modules", response_model=list[SDVaeItem])
    def sd_modules() -> list[dict[str, str]]:
        """Forge's route: the VAE and text-encoder files the "VAE / Text encoder" choice offers."""
        return [{"model_name": m.name, "filename": str(m.path)} for m in state.registry.modules]

    @router.get("/loras", response_model=list[LoraItem])
    def loras() -> list[dict[str, Any]]:
        return [{"name": x.name, "alias": x.alias or x.name, "path": str(x.path), "metadata": _lora_metadata(x.path)}
                for x in state.registry.loras]

    @router.get("/embeddings", response_model=EmbeddingsResponse)
    def embeddings() -> dict[str, Any]:
        return embeddings_listing(state.service.embeddings, state.registry.embeddings, _current_checkpoint(state))

    @router.get("/hypernetworks", response_model=list[HypernetworkItem])
    def hypernetworks() -> list[dict[str, str]]:
        return []  # hypernetworks are not supported (A1111 lists the files of models/hypernetworks)

    @router.get("/prompt-styles", response_model=list[PromptStyleItem])
    def prompt_styles() -> list[dict[str, str]]:
        return [{"name": style.name, "prompt": style.prompt, "negative_prompt": style.negative_prompt}
                for style in state.service.styles.all()]

    @router.post("/refresh-checkpoints", response_model=None)
    def refresh_checkpoints() -> None:
        state.registry.refresh_checkpoints()

    @router.post("/refresh-vae", response_model=None)
    def refresh_vae() -> None:
        state.registry.refresh_vaes()

    @router.post("/refresh-loras", response_model=None)
    def refresh_loras() -> None:
        state.registry.refresh_loras()

    @router.post("/refresh-embeddings", response_model=None)
    def refresh_embeddings() -> None:
        state.registry.refresh_embeddings()


def add_system_routes(router: APIRouter, state: AppState, backends: ApiBackends) -> None:
    """Memory, scripts, extensions, and loading/unloading the model (through the job queue, so a running
    job never loses its model)."""

    @router.get("/memory", response_model=dict[str, Any])
    def memory() -> dict[str, Any]:
        return memory_stats(state.plan.device)

    @router.get("/scripts", response_model=ScriptsList)
    def scripts() -> dict[str, list[str]]:
        return {mode: [s.name.lower() for s in backends.scripts.scripts(mode)] for mode in ("txt2img", "img2img")}

    @router.get("/script-info", response_model=list[ScriptInfoItem])
    def script_info() -> list[dict[str, Any]]:
        seen: dict[tuple[str, bool], dict[str, Any]] = {}
        for mode in ("txt2img", "img2img"):
            for s in backends.scripts.scripts(mode):
                seen.setdefault((s.name, mode == "img2img"), {
                    "name": s.name.lower(), "is_alwayson": s.is_alwayson, "is_img2img": mode == "img2img",
                    "args": [dict(arg) for arg in s.args]})
        return list(seen.values())

    @router.get("/extensions", response_model=list[ExtensionItem])
    def extensions() -> list[dict[str, Any]]:
        return backends.extensions.extensions()

    @router.post("/unload-checkpoint", response_model=dict[str, Any])
    async def unload_checkpoint() -> dict[str, Any]:
        job = state.submit("unload-checkpoint", None, SaveOptions(save_samples=False, save_grid=False))
        await run_in_threadpool(job.wait)
        return {}

    @router.post("/reload-checkpoint", response_model=dict[str, Any])
    async def reload_checkpoint() -> dict[str, Any]:
        job = state.submit("reload-checkpoint", None, SaveOptions(save_samples=False, save_grid=False))
        await run_in_threadpool(job.wait)
        return {}
