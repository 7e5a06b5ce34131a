"""sdweb's own routes for scripts that watch several workers:

    GET /sdweb/v1/workers   each worker: id, node, device, loaded checkpoints, busy, the job it runs
    GET /sdweb/v1/queue     jobs waiting (in order), running (on which worker) and recently finished
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sdweb.generation.queue_view import FINISHED_SHOWN, queue_view, workers_view
from sdweb.state import AppState

PREFIX = "/sdweb/v1"


class CheckpointFileItem(BaseModel):
    name: str
    sha256: str | None
    hash: str = Field(description="A1111's legacy hash (used when a side has no sha256 yet)")


class WorkerItem(BaseModel):
    id: str
    node: str = Field(description="host name of the machine the worker runs on")
    device: str = Field(description="cpu, cuda:N or mps")
    device_name: str = ""
    loaded: list[str] = Field(description="checkpoint titles the worker holds")
    busy: bool
    job: str | None = Field(description="id of the job it runs")
    loads: int = Field(description="checkpoint loads since start")
    jobs_done: int
    checkpoints: list[CheckpointFileItem] | None = Field(
        description="the checkpoint files in the worker's own models folder (a job goes only to a worker that "
                    "has its file, matched by hash); null: not reported")


class QueueJob(BaseModel):
    id: str
    kind: str
    status: str
    checkpoint: str | None
    worker: str | None = Field(description="the worker that took it (a split job: the first of them)")
    workers: list[str] = Field(description="the workers running it now (a split job: one per running image), "
                                           "else the one that ran it")
    images: int = Field(description="a batch split into per-image parts over several workers: how many; else 0")
    position: int | None = Field(description="0-based place among waiting jobs")
    progress: float
    created_at: float
    started_at: float | None
    finished_at: float | None


class QueueResponse(BaseModel):
    waiting: list[QueueJob]
    running: list[QueueJob]
    finished: list[QueueJob] = Field(description=f"the last {FINISHED_SHOWN} finished jobs, newest last")


def workers_router(state: AppState) -> APIRouter:
    router = APIRouter(prefix=PREFIX)

    @router.get("/workers", response_model=list[WorkerItem])
    def workers() -> list[dict[str, Any]]:
        return workers_view(state.queue)

    @router.get("/queue", response_model=QueueResponse)
    def queue() -> dict[str, Any]:
        return queue_view(state.queue)

    return router
