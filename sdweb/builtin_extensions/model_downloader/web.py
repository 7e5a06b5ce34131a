"""The model downloader's API routes and UI tab (both start background downloads and read their progress).

Routes: POST /sdapi/v1/model-downloader/downloads {url, kind?, file_name?} -> the job;
GET /sdapi/v1/model-downloader/downloads[/{id}]; POST /sdapi/v1/model-downloader/downloads/{id}/cancel.
Refused on an exposed server unless --enable-insecure-extension-access (like installing extensions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from sdweb.builtin_extensions.model_downloader.jobs import DownloadJobs
from sdweb.builtin_extensions.model_downloader.sources import KINDS
from sdweb.extensions.api import ExtensionContext

PREFIX = "/sdapi/v1/model-downloader"


class DownloadRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    kind: str | None = None
    file_name: str | None = None


def _refused(message: str) -> JSONResponse:
    return JSONResponse(status_code=403, content={"error": "Forbidden", "detail": message})


def downloader_router(context: ExtensionContext, jobs: DownloadJobs) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["Model downloader"])

    @router.post("/downloads")
    def start(request: DownloadRequest) -> Any:
        refusal = context.extension_access_refusal()
        if refusal:
            return _refused(refusal)
        if request.kind is not None and request.kind not in KINDS:
            return JSONResponse(status_code=422, content={"error": "Invalid kind",
                                                          "detail": f"kind must be one of {', '.join(KINDS)}"})
        return jobs.start(request.url, request.kind, request.file_name).as_dict()

    @router.get("/downloads")
    def listing() -> list[dict[str, Any]]:
        return [job.as_dict() for job in jobs.all()]

    @router.get("/downloads/{job_id}")
    def status(job_id: str) -> Any:
        job = jobs.get(job_id)
        if job is None:
            return JSONResponse(status_code=404, content={"error": "Not found", "detail": f"no download {job_id}"})
        return job.as_dict()

    @router.post("/downloads/{job_id}/cancel")
    def cancel(job_id: str) -> Any:
        job = jobs.get(job_id)
        if job is None:
            return JSONResponse(status_code=404, content={"error": "Not found", "detail": f"no download {job_id}"})
        job.cancel.set()
        return job.as_dict()

    return router


def progress_line(job: Any) -> str:
    if job.state == "done":
        return f"Saved {job.path}. The model lists are refreshed."
    if job.state in ("failed", "cancelled"):
        return f"{job.state.capitalize()}: {job.error}"
    done_mb = job.done_bytes / 2**20
    if job.total_bytes:
        return f"Downloading… {done_mb:.1f} / {job.total_bytes / 2**20:.1f} MB ({job.done_bytes / job.total_bytes:.0%})"
    return f"Downloading… {done_mb:.1f} MB"


def build_tab(context: ExtensionContext, jobs: DownloadJobs) -> list[tuple[Any, str, str]]:
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as tab:
        gr.Markdown("Paste a Hugging Face or CivitAI model link, or a direct file link. The file is checked "
                    "(size, sha256 when the site gives one) and moved into the right models folder.")
        with gr.Row():
            url = gr.Textbox(label="Model URL", scale=4, elem_id="model_downloader_url")
            kind = gr.Dropdown(label="Kind", choices=["auto", *KINDS], value="auto", scale=1,
                               elem_id="model_downloader_kind")
            name = gr.Textbox(label="File name (optional)", scale=2, elem_id="model_downloader_file_name")
        start = gr.Button("Download", variant="primary", elem_id="model_downloader_start")
        status = gr.Markdown("", elem_id="model_downloader_status")

        def run(link: str, chosen: str, file_name: str) -> Iterator[str]:
            refusal = context.extension_access_refusal()
            if refusal:
                raise gr.Error(refusal)
            if not (link or "").strip():
                raise gr.Error("Paste a model URL first.")
            job = jobs.start(link.strip(), None if chosen == "auto" else chosen, file_name or None)
            while not job.finished.wait(0.5):
                yield progress_line(job)
            yield progress_line(job)

        start.click(run, inputs=[url, kind, name], outputs=status, api_visibility="private")
    return [(tab, "Model downloader", "model_downloader")]
