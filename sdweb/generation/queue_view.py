"""What the queue and the workers look like to a person or a script: plain dicts, one source for the
/sdweb/v1/queue and /sdweb/v1/workers routes and the page's Queue and Workers panels."""

from __future__ import annotations

from typing import Any

from sdweb.generation.jobs import Job, JobQueue

FINISHED_SHOWN = 20


def job_view(queue: JobQueue, job: Job, position: int | None = None) -> dict[str, Any]:
    """One job: a split job also names the workers running its images and how many images it has."""
    return {"id": job.id, "kind": job.kind, "status": job.status, "checkpoint": job.checkpoint,
            "worker": job.worker_id, "workers": queue.workers_of(job), "images": len(job.parts),
            "position": position, "progress": job.progress.fraction(), "created_at": job.created_at,
            "started_at": job.progress.started_at, "finished_at": job.finished_at}


def queue_view(queue: JobQueue, finished_shown: int = FINISHED_SHOWN) -> dict[str, list[dict[str, Any]]]:
    """Jobs waiting (in order), running (on which workers) and the last `finished_shown` finished (newest last)."""
    return {"waiting": [job_view(queue, job, index) for index, job in enumerate(queue.pending())],
            "running": [job_view(queue, job) for job in queue.running()],
            "finished": [job_view(queue, job) for job in queue.finished()[-finished_shown:]]}


def workers_view(queue: JobQueue) -> list[dict[str, Any]]:
    """Each worker: id, node, device, loaded checkpoints, busy and the job it runs, loads, jobs done."""
    return [info.as_dict() for info in queue.pool.workers()]
