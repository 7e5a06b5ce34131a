"""sdweb's own routes for scripts that watch several workers:

    GET /sdweb/v1/workers   each worker: id, node, device, loaded checkpoints, busy, the job it runs
    GET /sdweb/v1/queue     jobs waiting (in order), running (on which worker) and recently finished
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sdweb.generation.jobs import Job
from sdweb.state import AppState

PREFIX = "/sdweb/v1"
FINISHED_SHOWN = 20


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


class QueueJob(BaseModel):
    id: str
    kind: str
    status: str
    checkpoint: str | None
    worker: str | None
    position: int | None = Field(description="0-based place among waiting jobs")
    progress: float
    created_at: float
    started_at: float | None
    finished_at: float | None


class QueueResponse(BaseModel):
    waiting: list[QueueJob]
    running: list[QueueJob]
    finished: list[QueueJob] = Field(description=f"the last {FINISHED_SHOWN} finished jobs, newest last")


def _job(job: Job, position: int | None = None) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status, "checkpoint": job.checkpoint,
            "worker": job.worker_id, "position": position, "progress": job.progress.fraction(),
            "created_at": job.created_at, "started_at": job.progress.started_at, "finished_at": job.finished_at}


def workers_router(state: AppState) -> APIRouter:
    router = APIRouter(prefix=PREFIX)

    @router.get("/workers", response_model=list[WorkerItem])
    def workers() -> list[dict[str, Any]]:
        return [info.as_dict() for info in state.queue.pool.workers()]

    @router.get("/queue", response_model=QueueResponse)
    def queue() -> dict[str, Any]:
        return {"waiting": [_job(job, index) for index, job in enumerate(state.queue.pending())],
                "running": [_job(job) for job in state.queue.running()],
                "finished": [_job(job) for job in state.queue.finished()[-FINISHED_SHOWN:]]}

    return router
