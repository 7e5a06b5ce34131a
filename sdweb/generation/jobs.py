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
from typing import Any, Protocol

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
           "JobProgress", "JobQueue", "Runner", "Splitter", "held_image_bytes", "new_task_id"]

log = logging.getLogger(__name__)

ResultReceiver = Callable[[Job, WorkResult], Any]  # the head's step from a WorkResult to the job's result
_RESCHEDULE_S = 0.5  # a waiting worker looks again this often (the affinity rule's wait bound is in seconds)
_SCALARS = (str, bytes, int, float, bool, type(None))
_ENDED = (DONE, FAILED, INTERRUPTED)
GATHERING = "gathering"  # a split job whose images have all ended, while the head gathers and saves them


class Splitter(Protocol):
    """How the head splits a job into per-image parts for several workers, and gathers their results."""

    def split(self, kind: str, request: Any) -> list[Any] | None:
        """The parts' requests in image order, or None to run the job whole."""

    def gather(self, job: Job, results: list[WorkResult | None]) -> Any:
        """The job's result from its parts' results, in order (None: a part that never ran)."""


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
    worker in another process sent as bytes). With a `splitter` and more than one worker, a job may run as
    per-image parts on several workers at once; the user sees one job. A job whose worker was lost (the pool
    raised) is run again, up to `retries` times, on whichever worker is free first."""

    def __init__(self, runner: Runner | None = None, pool: WorkerPool | None = None,
                 scheduler: Scheduler | None = None, receive: ResultReceiver = _value,
                 keep_bytes: int = FINISHED_JOBS_KEEP_BYTES, keep_count: int = FINISHED_JOBS_KEEP_COUNT,
                 splitter: Splitter | None = None, retries: int = 0) -> None:
        if pool is None:
            if runner is None:
                raise ValueError("JobQueue needs a runner or a pool")
            pool = LocalPool([Worker("local-0", runner)])
        self._pool = pool
        self._scheduler = scheduler or Scheduler("fifo")
        self._receive = receive
        self._splitter = splitter
        self.retries = retries
        self._condition = threading.Condition()
        self._pending: list[Job] = []  # what workers take: whole jobs and the parts of split ones, in order
        self._running: dict[str, Job] = {}  # what workers run now, by id
        self._started: dict[str, Job] = {}  # the jobs users see as running (a split job: until it is gathered)
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

    @property
    def worker_count(self) -> int:
        return len(self._views)

    def submit(self, kind: str, request: Any, task_id: str | None = None, checkpoint: str | None = None,
               workers_allowed: frozenset[str] | None = None) -> Job:
        job = Job(id=task_id or new_task_id(kind), kind=kind, request=request, checkpoint=checkpoint,
                  workers_allowed=workers_allowed)
        parts = self._splitter.split(kind, request) if self._splitter is not None and self.worker_count > 1 else None
        if parts and len(parts) > 1:
            job.parts = [Job(id=f"{job.id}#{index}", kind=kind, request=part, checkpoint=checkpoint,
                             workers_allowed=workers_allowed, parent=job, index=index, created_at=job.created_at)
                         for index, part in enumerate(parts)]
            job.progress.job_count = len(job.parts)
        with self._condition:
            if self._closed:
                raise RuntimeError("the job queue is shut down")
            self._pending.extend(job.parts or [job])
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
                    self._start(job, worker_id)
                    view.busy, view.running = True, job.checkpoint
                    return job
                self._condition.wait(_RESCHEDULE_S if self._pending else None)

    def _start(self, job: Job, worker_id: str) -> None:
        """Mark `job` (a whole job or a part) taken by `worker_id` (lock held)."""
        job.status, job.worker_id = RUNNING, worker_id
        self._running[job.id] = job
        shown = job.parent or job
        if shown.status == QUEUED or shown.id not in self._started:
            shown.status, shown.worker_id = RUNNING, shown.worker_id or worker_id
            shown.progress.started_at = shown.progress.started_at or time.time()
            self._started[shown.id] = shown
        if job.parent is not None:
            job.progress.started_at = time.time()

    def _dispatch(self, worker_id: str, job: Job) -> None:
        item = WorkItem(job_id=job.id, kind=job.kind, payload=job.request, checkpoint=job.checkpoint,
                        attempt=job.attempt)
        if job.interrupted.is_set():
            self._pool.interrupt(worker_id, job.id)
        result: WorkResult | None = None
        try:
            result = self._pool.run(worker_id, item, lambda event: self._apply(job, event))
        except BaseException as error:  # the worker was lost (a crashed process): run the job again, or fail it
            if isinstance(error, Exception) and self._retry(job, worker_id, error):
                return
            job.status, job.error = FAILED, error
            log.exception("Job %s: worker %s failed", job.id, worker_id)
        if result is not None and job.parent is not None:
            job.result, job.error, job.status = result, result.error, result.status
        elif result is not None:
            try:
                job.result, job.error, job.status = self._receive(job, result), result.error, result.status
            except BaseException as error:  # a failed receive: the job fails, the queue goes on
                job.status, job.error = FAILED, error
                log.exception("Job %s: the result of worker %s could not be received", job.id, worker_id)
        self._end(worker_id, job, result)

    def _retry(self, job: Job, worker_id: str, error: BaseException) -> bool:
        """Put a job whose worker was lost back at the front of the queue, if it has retries left."""
        with self._condition:
            if job.attempt >= self.retries or job.interrupted.is_set() or self._closed:
                return False
            log.warning("Job %s: worker %s was lost (%s); running it again (attempt %d of %d)", job.id, worker_id,
                        error, job.attempt + 2, self.retries + 1)
            job.attempt += 1
            job.lost_on.add(worker_id)
            if job.parent is not None:
                job.status = QUEUED
            self._running.pop(job.id, None)
            view = self._views[worker_id]
            view.busy, view.running = False, None
            self._pending.insert(0, job)
            self._condition.notify_all()
        return True

    def _end(self, worker_id: str, job: Job, result: WorkResult | None) -> None:
        job.finished_at = time.time()
        parent = job.parent
        size = held_image_bytes(job) if parent is None else 0
        stopped: list[Job] = []
        with self._condition:
            self._running.pop(job.id, None)
            self._scheduler.forget(job.id)
            view = self._views[worker_id]
            view.busy, view.running = False, None
            if result is not None:
                view.held = set(result.loaded)
            if parent is None:
                self._started.pop(job.id, None)
                self._keep_finished(job, size)
            elif job.status == FAILED:  # one image failed: the job fails, its other images stop
                stopped = self._stop_parts(parent)
            gather = parent is not None and self._parts_ended(parent)
            self._condition.notify_all()
        job.finished.set()
        self._interrupt_units(stopped)
        if parent is not None:
            self._fold(parent)
        if gather:
            self._gather(parent)

    def _stop_parts(self, parent: Job) -> list[Job]:
        """Cancel a split job's waiting parts and return its running ones (lock held)."""
        for part in parent.parts:
            if part.status == QUEUED and part in self._pending:
                self._pending.remove(part)
                part.status, part.finished_at = INTERRUPTED, time.time()
                part.finished.set()
        return [part for part in parent.parts if part.status == RUNNING]

    def _parts_ended(self, parent: Job) -> bool:
        """True once, when the last part of `parent` has ended (lock held)."""
        if parent.status not in (QUEUED, RUNNING) or any(part.status not in _ENDED for part in parent.parts):
            return False
        parent.status = GATHERING  # nobody else gathers it
        return True

    def _gather(self, parent: Job) -> None:
        """A split job's result from its parts, in image order (the head writes its files here)."""
        parts = parent.parts
        failed = next((part for part in parts if part.status == FAILED), None)
        results = [part.result if isinstance(part.result, WorkResult) and part.result.value is not None else None
                   for part in parts]
        try:
            if failed is not None:
                parent.status, parent.error = FAILED, failed.error
            elif all(result is None for result in results):
                parent.status = INTERRUPTED
                parent.error = JobInterrupted(f"{parent.id} was interrupted")
            else:
                parent.result, parent.status = self._splitter.gather(parent, results), DONE
        except BaseException as error:  # a failed gather (a bug, a full disk in a way nobody caught)
            parent.status, parent.error = FAILED, error
            log.exception("Job %s: its images could not be gathered", parent.id)
        finally:
            for part in parts:  # the images now live in the job's result
                part.result = part.request = None
            parent.finished_at = time.time()
            size = held_image_bytes(parent)
            with self._condition:
                self._started.pop(parent.id, None)
                self._keep_finished(parent, size)
                self._condition.notify_all()
            parent.finished.set()

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
        if job.parent is not None:
            self._fold(job.parent, job if event.preview_jpeg is not None else None)

    def _fold(self, parent: Job, previewed: Job | None = None) -> None:
        """A split job's progress from its parts: images ended, plus the lowest running image's own progress
        (A1111's formula over images); never backwards."""
        with self._condition:
            parts = parent.parts
            ended = sum(part.status in _ENDED for part in parts)
            running = [part for part in parts if part.status == RUNNING]
            step = steps = 0
            if running:
                own = running[0].progress
                steps = own.sampling_steps * max(1, own.job_count)
                step = own.job_no * own.sampling_steps + own.sampling_step
            progress = parent.progress
            if progress_fraction(ended, len(parts), step, steps) >= progress.fraction():
                progress.job_no, progress.job_count = ended, len(parts)
                progress.sampling_step, progress.sampling_steps = step, steps
                progress.textinfo = f"Image {min(ended + 1, len(parts))} of {len(parts)}"
            if previewed is not None:
                progress.preview = previewed.progress.preview
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
    def _waiting(self) -> list[Job]:
        """The jobs users see as waiting, in order: not started, a split job once (lock held)."""
        seen: dict[str, Job] = {}
        for unit in self._pending:
            shown = unit.parent or unit
            if shown.status == QUEUED:
                seen.setdefault(shown.id, shown)
        return list(seen.values())

    def current(self) -> Job | None:
        """The running job that started first (what A1111's /progress shows)."""
        with self._condition:
            return next(iter(self._started.values()), None)

    def running(self) -> list[Job]:
        with self._condition:
            return list(self._started.values())

    def pending(self) -> list[Job]:
        with self._condition:
            return self._waiting()

    def workers_of(self, job: Job) -> list[str]:
        """The workers running `job` now (a split job: those running its images), else the one that ran it."""
        with self._condition:
            if not job.parts:
                return [job.worker_id] if job.worker_id else []
            running = [part.worker_id for part in job.parts if part.status == RUNNING and part.worker_id]
            return sorted(set(running)) or sorted({part.worker_id for part in job.parts if part.worker_id})

    def get(self, job_id: str) -> Job | None:
        with self._condition:
            for job in (*self._waiting(), *self._started.values()):
                if job.id == job_id:
                    return job
            kept = self._finished.get(job_id)
            return kept[0] if kept is not None else None

    def position(self, job_id: str) -> int | None:
        """0-based place among waiting jobs; None when not waiting."""
        with self._condition:
            return next((i for i, job in enumerate(self._waiting()) if job.id == job_id), None)

    def interrupt(self, job_id: str | None = None) -> bool:
        """Interrupt the given job (running or waiting), else every running one (A1111's meaning). A split job
        stops its running images and never starts the waiting ones."""
        gather: list[Job] = []
        with self._condition:
            if job_id is not None:
                for job in self._waiting():
                    if job.id == job_id:
                        self._cancel_waiting(job)
                        return True
            targets = [j for j in self._started.values() if job_id is None or j.id == job_id]
            units: list[Job] = []
            for job in targets:
                job.interrupted.set()
                units += self._stop_parts(job) if job.parts else [job]
                if job.parts and self._parts_ended(job):
                    gather.append(job)
        self._interrupt_units(units)
        for job in gather:
            self._gather(job)
        return bool(targets)

    def _interrupt_units(self, units: list[Job]) -> None:
        for unit in units:
            unit.interrupted.set()
            if unit.worker_id is not None:
                self._pool.interrupt(unit.worker_id, unit.id)

    def _cancel_waiting(self, job: Job) -> None:
        """Take a job that has not started out of the queue (lock held)."""
        for unit in job.parts or [job]:
            self._pending.remove(unit)
            self._scheduler.forget(unit.id)
            unit.status = INTERRUPTED
        job.status, job.error = INTERRUPTED, JobInterrupted(f"{job.id} was cancelled before it started")
        job.finished_at = time.time()
        self._keep_finished(job, held_image_bytes(job))
        job.finished.set()

    def skip(self) -> bool:
        """Skip the current batch of every running job (A1111's meaning; a split job: its running images)."""
        targets = self.running()
        with self._condition:
            units = [unit for job in targets
                     for unit in ([part for part in job.parts if part.status == RUNNING] if job.parts else [job])]
        for job in targets:
            job.skipped.set()
        for unit in units:
            unit.skipped.set()
            if unit.worker_id is not None:
                self._pool.skip(unit.worker_id, unit.id)
        return bool(targets)

    def shutdown(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        self._pool.close()
