"""Built-in extension: download models from Hugging Face, CivitAI or a direct link into the models folders.

Services only (the UI tab and API routes are wired by the loader): `resolve_source` (sources.py) turns a
pasted link into a DownloadSource, `download` / `fetch_model` (download.py) fetch it, resumable and verified.
Settings it adds (Settings › Model downloader): `model_downloader_hf_token`, `model_downloader_civitai_token`.
These are secrets: show them as password fields and never return them from the options API.
"""

from __future__ import annotations

import os
from typing import Any

from sdweb.builtin_extensions.model_downloader.download import (
    CIVITAI_TOKEN_SETTING,
    HF_TOKEN_SETTING,
    DownloadCancelled,
    download,
    fetch_model,
    partial_path,
    token_for,
)
from sdweb.builtin_extensions.model_downloader.jobs import DownloadJobs
from sdweb.builtin_extensions.model_downloader.sources import (
    KIND_FOLDERS,
    KINDS,
    DownloadSource,
    folder_for,
    guess_kind,
    resolve_source,
)
from sdweb.extensions.api import ExtensionContext, OptionSpec

ALLOW_LOCAL_ENV = "SDWEB_DOWNLOADER_ALLOW_LOCAL"

SECTION = "Model downloader"
OPTIONS = (
    OptionSpec(key=HF_TOKEN_SETTING, default="", label="Hugging Face access token (for gated or private models)",
               section=SECTION, kind="str", secret=True),
    OptionSpec(key=CIVITAI_TOKEN_SETTING, default="", label="CivitAI API key (for models that need a login)",
               section=SECTION, kind="str", secret=True),
)
SECRET_SETTINGS = (HF_TOKEN_SETTING, CIVITAI_TOKEN_SETTING)

__all__ = [
    "CIVITAI_TOKEN_SETTING", "DownloadCancelled", "DownloadSource", "HF_TOKEN_SETTING", "KINDS", "KIND_FOLDERS",
    "OPTIONS", "SECRET_SETTINGS", "download", "fetch_model", "folder_for", "guess_kind", "partial_path",
    "resolve_source", "setup", "token_for",
]


def setup(context: ExtensionContext) -> None:
    """Register the token settings, the API routes and the UI tab."""
    for option in OPTIONS:
        context.add_option(option)
    # Downloads never target local addresses; tests (and only tests) serve files on 127.0.0.1.
    allow_local = os.environ.get(ALLOW_LOCAL_ENV) == "1"
    jobs = DownloadJobs(context.paths, context.settings_snapshot, context.refresh_models, allow_local=allow_local)
    context.on_app_started(lambda app: _mount_routes(app, context, jobs))
    context.on_ui_tabs(lambda: _tab(context, jobs))


# The routes and the tab import fastapi and gradio: only a server needs them, not a job.
def _mount_routes(app: Any, context: ExtensionContext, jobs: DownloadJobs) -> None:
    from sdweb.builtin_extensions.model_downloader.web import downloader_router

    app.include_router(downloader_router(context, jobs))


def _tab(context: ExtensionContext, jobs: DownloadJobs) -> Any:
    from sdweb.builtin_extensions.model_downloader.web import build_tab

    return build_tab(context, jobs)
