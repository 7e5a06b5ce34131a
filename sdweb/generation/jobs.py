"""One job queue for the UI and the API: FIFO, progress events, interrupt and skip, nothing lost.

The queue, the scheduling decision and the bookkeeping stay in the main process. What a worker needs is
plain data: a job (kind + request) in, a result and progress events out. The default pool runs jobs in
one in-process thread per device; another pool (e.g. one actor per GPU) can plug in behind `WorkerPool`.
"""

from __future__ import annotations

import logging
import random
import string
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from sdweb.core.limits import FINISHED_JOBS_KEEP_BYTES, FINISHED_JOBS_KEEP_COUNT

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, INTERRUPTED = "queued", "running", "done", "failed", "interrupted"


class JobInterrupted(Exception):
    """Raised inside a runner when the user pressed Interrupt."""


def new_task_id(kind: str) -> str:
    """A1111's shape: task(txt2img-ABC1234)."""
    suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=7))
    return f"task({kind}-{suffix})"


@dataclass
class JobProgress:
    """What /progress and the UI show. Updated by the worker, read by anyone."""

    job_no: int = 0
    job_count: int = 1
    sampling_step: int = 0
    sampling_steps: int = 0
    textinfo: str = ""
    preview: Any = None  # a PIL image or None
    preview_id: int = 0
    started_at: float | None = None

    def fraction(self) -> float:
        """A1111's progress formula, capped at 1."""
        if self.job_count <= 0:
            return 0.0
        done = self.job_no / self.job_count
        if self.sampling_steps > 0:
            done += self.sampling_step / self.sampling_steps / self.job_count
        return min(done, 1.0)


@dataclass
class Job:
    id: str
    kind: str
    request: Any
    created_at: float = field(default_factory=time.time)
    status: str = QUEUED
    result: Any = None
    error: BaseException | None = None
    progress: JobProgress = field(default_factory=JobProgress)
    interrupted: threading.Event = field(default_factory=threading.Event)
    skipped: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    finished_at: float | None = None

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job ends; return its result or raise its error."""
        if not self.finished.wait(timeout):
            raise TimeoutError(f"{self.id} did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


class JobContext:
    """Handed to the runner: report progress, check interrupt / skip."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def set_job_count(self, count: int) -> None:
        self.job.progress.job_count = max(1, count)

    def start_batch(self, job_no: int, steps: int, textinfo: str = "") -> None:
        progress = self.job.progress
        progress.job_no, progress.sampling_step, progress.sampling_steps = job_no, 0, steps
        progress.textinfo = textinfo
        self.job.skipped.clear()

    def report_step(self, step: int, preview: Any = None) -> None:
        progress = self.job.progress
        progress.sampling_step = step
        if preview is not None:
            progress.preview = preview
            progress.preview_id += 1
        if self.job.interrupted.is_set():
            raise JobInterrupted(self.job.id)

    @property
    def interrupted(self) -> bool:
        return self.job.interrupted.is_set()

    @property
    def skipped(self) -> bool:
        return self.job.skipped.is_set()


Runner = Callable[[Job, JobContext], Any]
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


class WorkerPool(Protocol):
    """Where jobs run. The queue calls `start(take_next)`; workers call take_next() to get their next job."""

    def start(self, take_next: Callable[[], Job | None], run: Callable[[Job], None]) -> None: ...

    def stop(self) -> None: ...


class ThreadPool:
    """The default pool: one worker thread per device, in this process."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._threads: list[threading.Thread] = []

    def start(self, take_next: Callable[[], Job | None], run: Callable[[Job], None]) -> None:
        def loop() -> None:
            while (job := take_next()) is not None:
                run(job)

        for index in range(self.workers):
            thread = threading.Thread(target=loop, name=f"sdweb-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for thread in self._threads:
            thread.join(timeout=30)


class JobQueue:
    """FIFO queue shared by UI and API. Submit returns at once; `Job.wait()` gives the result."""

    def __init__(self, runner: Runner, pool: WorkerPool | None = None,
                 keep_bytes: int = FINISHED_JOBS_KEEP_BYTES, keep_count: int = FINISHED_JOBS_KEEP_COUNT) -> None:
        self._runner = runner
        self._pool = pool or ThreadPool()
        self._condition = threading.Condition()
        self._pending: list[Job] = []
        self._running: dict[str, Job] = {}
        # Finished jobs for lookups by id, newest last, with the image bytes each holds. Whoever submitted a job
        # holds it until they have its result, so dropping it here never loses an image anyone waits for.
        self._finished: OrderedDict[str, tuple[Job, int]] = OrderedDict()
        self._finished_bytes = 0
        self.keep_bytes, self.keep_count = keep_bytes, keep_count
        self._closed = False
        self._pool.start(self._take_next, self._run)

    def submit(self, kind: str, request: Any, task_id: str | None = None) -> Job:
        job = Job(id=task_id or new_task_id(kind), kind=kind, request=request)
        with self._condition:
            if self._closed:
                raise RuntimeError("the job queue is shut down")
            self._pending.append(job)
            self._condition.notify()
        return job

    def run(self, kind: str, request: Any, timeout: float | None = None) -> Any:
        """Submit and wait: what a synchronous API route does."""
        return self.submit(kind, request).wait(timeout)

    def _take_next(self) -> Job | None:
        with self._condition:
            while not self._pending and not self._closed:
                self._condition.wait()
            if not self._pending:
                return None
            job = self._pending.pop(0)
            job.status = RUNNING
            job.progress.started_at = time.time()
            self._running[job.id] = job
            return job

    def _run(self, job: Job) -> None:
        try:
            job.result = self._runner(job, JobContext(job))
            job.status = DONE
        except JobInterrupted:
            job.status = INTERRUPTED
            job.error = JobInterrupted(f"{job.id} was interrupted")
        except BaseException as error:  # the worker must survive anything a job raises
            job.status, job.error = FAILED, error
            if not getattr(error, "message", None):  # UserErrors are expected; anything else is logged in full
                log.exception("Job %s failed", job.id)
        finally:
            job.finished_at = time.time()
            size = held_image_bytes(job)
            with self._condition:
                self._running.pop(job.id, None)
                self._keep_finished(job, size)
            job.finished.set()

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
        with self._condition:
            return next(iter(self._running.values()), None)

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
        """Interrupt the given job (running or waiting), else the running one."""
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
        return bool(targets)

    def _cancel_waiting(self, job: Job) -> None:
        job.status, job.error = INTERRUPTED, JobInterrupted(f"{job.id} was cancelled before it started")
        job.finished_at = time.time()
        self._keep_finished(job, held_image_bytes(job))
        job.finished.set()

    def skip(self) -> bool:
        running = self.current()
        if running is not None:
            running.skipped.set()
        return running is not None

    def shutdown(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._pool.stop()
