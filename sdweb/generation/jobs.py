"""One job queue for the UI and the API: a job registry, progress, interrupt and skip, nothing lost.

The queue, the scheduling decision and the bookkeeping stay in the head (this process). Workers get plain
data (`WorkItem`) and send back `ProgressEvent`s and one `WorkResult`, through a `WorkerPool`: the default
`LocalPool` runs them in this process, one per device; `RayPool` runs one actor per GPU. The queue has one
thread per worker that asks the scheduler for that worker's next job and hands it to the pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from PIL import Image

from sdweb.core.limits import FINISHED_JOBS_KEEP_BYTES, FINISHED_JOBS_KEEP_COUNT
from sdweb.generation.job_state import (
    DONE,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    Job,
    JobContext,
    JobInterrupted,
    JobProgress,
    new_task_id,
    progress_fraction,
)
from sdweb.generation.pool.local import LocalPool, WorkerPool
from sdweb.generation.pool.messages import ProgressEvent, WorkItem, WorkResult, decode_preview
from sdweb.generation.pool.scheduler import Scheduler, WorkerView
from sdweb.generation.pool.worker import Runner, Worker

__all__ = ["DONE", "FAILED", "INTERRUPTED", "QUEUED", "RUNNING", "Job", "JobContext", "JobInterrupted",
           "JobProgress", "JobQueue", "Runner", "held_image_bytes", "new_task_id"]

log = logging.getLogger(__name__)

ResultReceiver = Callable[[Job, WorkResult], Any]  # the head's step from a WorkResult to the job's result
_RESCHEDULE_S = 0.5  # a waiting worker looks again this often (the affinity rule's wait bound is in seconds)
_SCALARS = (str, bytes, int, float, bool, type(None))


def held_image_bytes(value: Any, depth: int = 0) -> int:
    """Pixel bytes of the PIL images in a job's request, result and preview, found in lists, tuples, dicts and
    objects' attributes a few levels deep (8-bit single-band images 1 byte a pixel, others 4, as Pillow keeps
    them)."""
    if isinstance(value, Image.Image):
        return value.width * value.height * (1 if value.mode in ("1", "L", "P") else 4)
    if depth > 4 or isinstance(value, _SCALARS):
        return 0
    if isinstance(value, dict):
        value = list(value.values())
    elif not isinstance(value, list | tuple):
        value = list(getattr(value, "__dict__", {}).values())
    return sum(held_image_bytes(item, depth + 1) for item in value)

def _value(job: Job, result: WorkResult) -> Any:
    return result.value


class JobQueue:
    """The head's queue, shared by UI and API. Submit returns at once; `Job.wait()` gives the result.

    `JobQueue(runner)` runs jobs with one in-process worker calling `runner(job, context)`; a `pool` brings
    its own workers. `receive` turns a WorkResult into the job's result (where the head saves images that a
    worker in another process sent as bytes)."""

    def __init__(self, runner: Runner | None = None, pool: WorkerPool | None = None,
                 scheduler: Scheduler | None = None, receive: ResultReceiver = _value,
                 keep_bytes: int = FINISHED_JOBS_KEEP_BYTES, keep_count: int = FINISHED_JOBS_KEEP_COUNT) -> None:
        if pool is None:
            if runner is None:
                raise ValueError("JobQueue needs a runner or a pool")
            pool = LocalPool([Worker("local-0", runner)])
        self._pool = pool
        self._scheduler = scheduler or Scheduler("fifo")
        self._receive = receive
        self._condition = threading.Condition()
        self._pending: list[Job] = []
        self._running: dict[str, Job] = {}
        # Finished jobs for lookups by id, newest last, with the image bytes each holds. Whoever submitted a job
        # holds it until they have its result, so dropping it here never loses an image anyone waits for.
        self._finished: OrderedDict[str, tuple[Job, int]] = OrderedDict()
        self._finished_bytes = 0
        self.keep_bytes, self.keep_count = keep_bytes, keep_count
        self._closed = False
        self._views = {info.id: WorkerView(info.id, held=set(info.loaded)) for info in pool.workers()}
        self._threads = [threading.Thread(target=self._serve, args=(worker_id,), name=f"sdweb-{worker_id}",
                                          daemon=True) for worker_id in self._views]
        for thread in self._threads:
            thread.start()

    @property
    def pool(self) -> WorkerPool:
        return self._pool

    def submit(self, kind: str, request: Any, task_id: str | None = None, checkpoint: str | None = None) -> Job:
        job = Job(id=task_id or new_task_id(kind), kind=kind, request=request, checkpoint=checkpoint)
        with self._condition:
            if self._closed:
                raise RuntimeError("the job queue is shut down")
            self._pending.append(job)
            self._condition.notify_all()
        return job

    def run(self, kind: str, request: Any, timeout: float | None = None) -> Any:
        """Submit and wait: what a synchronous API route does."""
        return self.submit(kind, request).wait(timeout)

    # -- the head's side of each worker ------------------------------------------------------------------
    def _serve(self, worker_id: str) -> None:
        while (job := self._take_for(worker_id)) is not None:
            self._dispatch(worker_id, job)

    def _take_for(self, worker_id: str) -> Job | None:
        view = self._views[worker_id]
        with self._condition:
            while True:
                if not self._pending and self._closed:
                    return None
                job = self._scheduler.pick(self._pending, view, list(self._views.values()))
                if job is not None:
                    self._pending.remove(job)
                    job.status, job.worker_id = RUNNING, worker_id
                    job.progress.started_at = time.time()
                    self._running[job.id] = job
                    view.busy, view.running = True, job.checkpoint
                    return job
                self._condition.wait(_RESCHEDULE_S if self._pending else None)

    def _dispatch(self, worker_id: str, job: Job) -> None:
        item = WorkItem(job_id=job.id, kind=job.kind, payload=job.request, checkpoint=job.checkpoint)
        if job.interrupted.is_set():
            self._pool.interrupt(worker_id, job.id)
        result: WorkResult | None = None
        try:
            result = self._pool.run(worker_id, item, lambda event: self._apply(job, event))
            job.result, job.error, job.status = self._receive(job, result), result.error, result.status
        except BaseException as error:  # a lost worker or a failed receive: the job fails, the queue goes on
            job.status, job.error = FAILED, error
            log.exception("Job %s: worker %s failed", job.id, worker_id)
        finally:
            job.finished_at = time.time()
            size = held_image_bytes(job)
            with self._condition:
                self._running.pop(job.id, None)
                self._scheduler.forget(job.id)
                view = self._views[worker_id]
                view.busy, view.running = False, None
                if result is not None:
                    view.held = set(result.loaded)
                self._keep_finished(job, size)
                self._condition.notify_all()
            job.finished.set()

    def _apply(self, job: Job, event: ProgressEvent) -> None:
        """Fold a worker's event into the job's record. A retry's events never move progress backwards."""
        progress = job.progress
        fraction = progress_fraction(event.job_no, event.job_count, event.step, event.steps)
        if event.attempt > 0 and fraction < progress.fraction():
            return
        progress.job_no, progress.job_count = event.job_no, event.job_count
        progress.sampling_step, progress.sampling_steps = event.step, event.steps
        progress.textinfo = event.textinfo
        if event.new_batch:
            job.skipped.clear()
        if event.preview_jpeg is not None:
            progress.preview = decode_preview(event.preview_jpeg)
            progress.preview_id += 1

    def _keep_finished(self, job: Job, size: int) -> None:
        """Record a finished job, then forget the oldest ones over the byte or count budget (lock held)."""
        self._finished[job.id] = (job, size)
        self._finished_bytes += size
        while self._finished and (self._finished_bytes > self.keep_bytes or len(self._finished) > self.keep_count):
            _, (_, dropped) = self._finished.popitem(last=False)
            self._finished_bytes -= dropped

    def finished(self) -> list[Job]:
        """The finished jobs kept for lookups by id, oldest first."""
        with self._condition:
            return [job for job, _ in self._finished.values()]

    def finished_bytes(self) -> int:
        """Image bytes the finished jobs kept for lookups hold (at most keep_bytes)."""
        with self._condition:
            return self._finished_bytes

    # -- queries and controls ----------------------------------------------------------------------------
    def current(self) -> Job | None:
        """The running job that started first (what A1111's /progress shows)."""
        with self._condition:
            return next(iter(self._running.values()), None)

    def running(self) -> list[Job]:
        with self._condition:
            return list(self._running.values())

    def pending(self) -> list[Job]:
        with self._condition:
            return list(self._pending)

    def get(self, job_id: str) -> Job | None:
        with self._condition:
            for job in (*self._pending, *self._running.values()):
                if job.id == job_id:
                    return job
            kept = self._finished.get(job_id)
            return kept[0] if kept is not None else None

    def position(self, job_id: str) -> int | None:
        """0-based place among waiting jobs; None when not waiting."""
        with self._condition:
            return next((i for i, job in enumerate(self._pending) if job.id == job_id), None)

    def interrupt(self, job_id: str | None = None) -> bool:
        """Interrupt the given job (running or waiting), else every running one (A1111's meaning)."""
        with self._condition:
            if job_id is not None:
                for index, job in enumerate(self._pending):
                    if job.id == job_id:
                        del self._pending[index]
                        self._cancel_waiting(job)
                        return True
            targets = [j for j in self._running.values() if job_id is None or j.id == job_id]
        for job in targets:
            job.interrupted.set()
            if job.worker_id is not None:
                self._pool.interrupt(job.worker_id, job.id)
        return bool(targets)

    def _cancel_waiting(self, job: Job) -> None:
        job.status, job.error = INTERRUPTED, JobInterrupted(f"{job.id} was cancelled before it started")
        job.finished_at = time.time()
        self._scheduler.forget(job.id)
        self._keep_finished(job, held_image_bytes(job))
        job.finished.set()

    def skip(self) -> bool:
        """Skip the current batch of every running job (A1111's meaning)."""
        targets = self.running()
        for job in targets:
            job.skipped.set()
            if job.worker_id is not None:
                self._pool.skip(job.worker_id, job.id)
        return bool(targets)

    def shutdown(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._pool.close()
