"""Which waiting job a free worker takes: strict FIFO, or model affinity (few checkpoint loads, bounded wait).

Affinity, when a worker frees up:
1. the queue head has waited longer than `max_wait_s` at the head of the queue (a deep backlog makes every job
   old, so the age since submission would turn affinity into FIFO), or was passed over `max_passes` times for each other
   worker (each of them taking its own checkpoint's job once is the normal case): take it;
2. the oldest job whose checkpoint this worker holds (or that needs none);
3. the oldest job whose checkpoint no worker holds (this worker loads it);
4. the oldest job whose checkpoint has more jobs waiting than workers holding it, all of them busy
   (a backlog spreads over more workers, so one popular model still uses every GPU);
5. else wait: the workers that hold those checkpoints take them when they free up.
Both modes: a job whose worker was lost runs again on another worker while there is one it may use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sdweb.generation.job_state import Job

SCHEDULING_MODES = ("affinity", "fifo")


@dataclass
class WorkerView:
    """The head's picture of a worker: what it holds (after its last job, plus the checkpoint it runs now)."""

    id: str
    held: set[str] = field(default_factory=set)
    busy: bool = False
    running: str | None = None  # checkpoint of the job it runs


@dataclass
class Scheduler:
    mode: str = "affinity"
    max_wait_s: float = 30.0
    max_passes: int = 8
    _passes: dict[str, int] = field(default_factory=dict)
    _head_since: dict[str, float] = field(default_factory=dict)  # when a job was first seen at the head

    def __post_init__(self) -> None:
        if self.mode not in SCHEDULING_MODES:
            raise ValueError(f"scheduling must be one of {', '.join(SCHEDULING_MODES)}, not {self.mode!r}")

    def pick(self, pending: Sequence[Job], worker: WorkerView, workers: Sequence[WorkerView],
             now: float | None = None) -> Job | None:
        """The job `worker` should take now, or None to leave the queue as it is. Jobs whose checkpoint file the
        worker lacks are not its to take; nor a job this worker was lost on while another worker may take it."""
        pending = [job for job in pending if _may_take(job, worker, workers)]
        if not pending:
            return None
        head = pending[0]
        if self.mode == "fifo" or head.checkpoint is None:
            return self._taken(head, head)
        now = time.time() if now is None else now
        at_head_since = self._head_since.setdefault(head.id, now)
        passes_allowed = self.max_passes * max(1, len(workers) - 1)
        if now - at_head_since > self.max_wait_s or self._passes.get(head.id, 0) >= passes_allowed:
            return self._taken(head, head)
        chosen = self._choose(pending, worker, workers)
        return self._taken(head, chosen) if chosen is not None else None

    def _choose(self, pending: Sequence[Job], worker: WorkerView, workers: Sequence[WorkerView]) -> Job | None:
        mine = worker.held | ({worker.running} if worker.running else set())
        for job in pending:
            if job.checkpoint is None or job.checkpoint in mine:
                return job
        others = [view for view in workers if view.id != worker.id]
        for job in pending:
            if not any(_holds(view, job.checkpoint) for view in others):
                return job
        waiting: dict[str, int] = {}
        for job in pending:
            waiting[job.checkpoint] = waiting.get(job.checkpoint, 0) + 1
        for job in pending:
            holders = [view for view in others if _holds(view, job.checkpoint)]
            if all(view.busy for view in holders) and waiting[job.checkpoint] > len(holders):
                return job
        return None

    def _taken(self, head: Job, job: Job) -> Job:
        if job is head:
            self._passes.pop(head.id, None)
            self._head_since.pop(head.id, None)
        else:
            self._passes[head.id] = self._passes.get(head.id, 0) + 1
        return job

    def forget(self, job_id: str) -> None:
        self._passes.pop(job_id, None)
        self._head_since.pop(job_id, None)


def _may_take(job: Job, worker: WorkerView, workers: Sequence[WorkerView]) -> bool:
    def allowed(view: WorkerView) -> bool:
        return job.workers_allowed is None or view.id in job.workers_allowed

    if not allowed(worker):
        return False
    if worker.id not in job.lost_on:
        return True
    return all(view.id in job.lost_on for view in workers if allowed(view))  # no other worker left: run it here


def _holds(view: WorkerView, checkpoint: str | None) -> bool:
    return checkpoint in view.held or checkpoint == view.running
