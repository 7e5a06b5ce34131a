"""The pool interface and the default pool: workers in this process (one per device), no Ray imported."""

from __future__ import annotations

from typing import Protocol

from sdweb.generation.job_state import EventSink
from sdweb.generation.pool.messages import WorkerInfo, WorkItem, WorkResult
from sdweb.generation.pool.worker import Worker


class WorkerPool(Protocol):
    """Where jobs run. The head's queue calls `run` from one thread per worker (a worker runs one job at a
    time); `interrupt` and `skip` may come from any thread."""

    def workers(self) -> list[WorkerInfo]: ...

    def run(self, worker_id: str, item: WorkItem, emit: EventSink) -> WorkResult: ...

    def interrupt(self, worker_id: str, job_id: str) -> None: ...

    def skip(self, worker_id: str, job_id: str) -> None: ...

    def close(self) -> None: ...


class LocalPool:
    """Workers in this process: `run` runs the item in the calling thread (the queue's thread for that worker),
    so events reach the head synchronously and results are handed over as the objects they are."""

    def __init__(self, workers: list[Worker]) -> None:
        if not workers:
            raise ValueError("a pool needs at least one worker")
        self._workers = {worker.id: worker for worker in workers}
        if len(self._workers) != len(workers):
            raise ValueError("worker ids must be unique")

    def worker(self, worker_id: str) -> Worker:
        return self._workers[worker_id]

    def workers(self) -> list[WorkerInfo]:
        return [worker.info() for worker in self._workers.values()]

    def run(self, worker_id: str, item: WorkItem, emit: EventSink) -> WorkResult:
        return self._workers[worker_id].run(item, emit)

    def interrupt(self, worker_id: str, job_id: str) -> None:
        self._workers[worker_id].interrupt(job_id)

    def skip(self, worker_id: str, job_id: str) -> None:
        self._workers[worker_id].skip(job_id)

    def close(self) -> None:
        """Nothing to stop: the workers run in the queue's threads, which end when the queue shuts down."""
