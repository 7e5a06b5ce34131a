"""A job's record and the context a runner reports through. Shared by the head (the queue's registry) and the
workers (each runs a job against its own copy of the record and sends what changed as `ProgressEvent`s)."""

from __future__ import annotations

import random
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sdweb.generation.pool.messages import ProgressEvent, encode_preview

QUEUED, RUNNING, DONE, FAILED, INTERRUPTED = "queued", "running", "done", "failed", "interrupted"


class JobInterrupted(Exception):
    """Raised inside a runner when the user pressed Interrupt."""


def new_task_id(kind: str) -> str:
    """A1111's shape: task(txt2img-ABC1234)."""
    suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=7))
    return f"task({kind}-{suffix})"


@dataclass
class JobProgress:
    """What /progress and the UI show. Updated from the worker's events, read by anyone."""

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
        return progress_fraction(self.job_no, self.job_count, self.sampling_step, self.sampling_steps)


def progress_fraction(job_no: int, job_count: int, step: int, steps: int) -> float:
    if job_count <= 0:
        return 0.0
    done = job_no / job_count
    if steps > 0:
        done += step / steps / job_count
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
    checkpoint: str | None = None  # the checkpoint title the job will use, when known at submit (for scheduling)
    worker_id: str | None = None  # the worker that runs or ran it (a split job: the first of its workers)
    attempt: int = 0  # 0, then 1.. when the queue retries it after its worker was lost
    workers_allowed: frozenset[str] | None = None  # the workers that have its checkpoint file (None: any)
    lost_on: set[str] = field(default_factory=set)  # workers lost while running it (a retry goes elsewhere)
    # A batch split over several workers: the job the user sees holds its per-image parts, in image order;
    # each part knows its job and its index. Neither is compared or printed (they point at each other).
    parts: list[Job] = field(default_factory=list, compare=False, repr=False)
    parent: Job | None = field(default=None, compare=False, repr=False)
    index: int = 0

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job ends; return its result or raise its error."""
        if not self.finished.wait(timeout):
            raise TimeoutError(f"{self.id} did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


EventSink = Callable[[ProgressEvent], None]


class JobContext:
    """Handed to the runner: report progress, check interrupt / skip. With `emit`, every change is also sent
    as a ProgressEvent (how a worker's progress reaches the head)."""

    def __init__(self, job: Job, emit: EventSink | None = None, attempt: int = 0) -> None:
        self.job = job
        self._emit = emit
        self._attempt = attempt
        self._seq = 0

    def set_job_count(self, count: int) -> None:
        self.job.progress.job_count = max(1, count)
        self._send()

    def set_steps(self, steps: int) -> None:
        """The total of the current run (extras and merges count images or tensors as steps)."""
        self.job.progress.sampling_steps = steps
        self._send()

    def start_batch(self, job_no: int, steps: int, textinfo: str = "") -> None:
        progress = self.job.progress
        progress.job_no, progress.sampling_step, progress.sampling_steps = job_no, 0, steps
        progress.textinfo = textinfo
        self.job.skipped.clear()
        self._send(new_batch=True)

    def show_step(self, step: int, preview: Any = None) -> None:
        """Record a step (and a live preview) without checking interrupt (the sampler checks it itself)."""
        progress = self.job.progress
        progress.sampling_step = step
        if preview is not None:
            progress.preview = preview
            progress.preview_id += 1
        self._send(preview=preview)

    def report_step(self, step: int, preview: Any = None) -> None:
        self.show_step(step, preview)
        if self.job.interrupted.is_set():
            raise JobInterrupted(self.job.id)

    def announce(self) -> None:
        """Tell the head the job has started here (it forwards an Interrupt or Skip pressed before)."""
        self._send()

    def _send(self, preview: Any = None, new_batch: bool = False) -> None:
        if self._emit is None:
            return
        self._seq += 1
        progress = self.job.progress
        self._emit(ProgressEvent(
            job_id=self.job.id, seq=self._seq, attempt=self._attempt, job_no=progress.job_no,
            job_count=progress.job_count, step=progress.sampling_step, steps=progress.sampling_steps,
            textinfo=progress.textinfo, new_batch=new_batch, skipped=self.job.skipped.is_set(),
            interrupted=self.job.interrupted.is_set(),
            preview_jpeg=encode_preview(preview) if preview is not None else None))

    @property
    def interrupted(self) -> bool:
        return self.job.interrupted.is_set()

    @property
    def skipped(self) -> bool:
        return self.job.skipped.is_set()
