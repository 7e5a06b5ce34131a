"""One worker: runs WorkItems one at a time with its own runner (on a device: its runtime plan, model manager
and generation service), and answers interrupt / skip for the job it runs."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from sdweb.generation.job_state import DONE, FAILED, INTERRUPTED, EventSink, Job, JobContext, JobInterrupted
from sdweb.generation.pool.messages import CheckpointFile, WorkerInfo, WorkImage, WorkItem, WorkResult

log = logging.getLogger(__name__)

Runner = Callable[[Job, JobContext], Any]
# A worker in another process turns a runner's result into plain data and PNG images (in-process: as it is).
ResultPacker = Callable[[Any], tuple[Any, tuple[WorkImage, ...]]]


def _no_models() -> list[str]:
    return []


class Worker:
    """Runs one job at a time. `loaded` tells which checkpoints it holds now (the scheduler's affinity)."""

    def __init__(self, worker_id: str, runner: Runner, device: str = "cpu", device_name: str = "",
                 loaded: Callable[[], list[str]] = _no_models, node: str | None = None,
                 pack: ResultPacker | None = None,
                 apply_settings: Callable[[dict[str, Any]], Any] | None = None,
                 checkpoints: Callable[[], tuple[CheckpointFile, ...]] | None = None) -> None:
        self.id = worker_id
        self.node = node or socket.gethostname()
        self.device, self.device_name = device, device_name
        self._runner = runner
        self._loaded = loaded
        self._pack = pack
        self._apply_settings = apply_settings
        self._checkpoints = checkpoints  # the checkpoint files this worker has (None: it does not say)
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._early: dict[str, set[str]] = {}  # interrupt / skip that arrived before the job started here
        self.loads = 0
        self.jobs_done = 0

    def count_load(self, _model: Any = None) -> None:
        """A model-loaded callback: counts checkpoint loads (the affinity measure)."""
        self.loads += 1

    def info(self) -> WorkerInfo:
        with self._lock:
            current = self._current
        return WorkerInfo(id=self.id, node=self.node, device=self.device, device_name=self.device_name,
                          loaded=tuple(self._loaded()), busy=current is not None,
                          job_id=current.id if current is not None else None, loads=self.loads,
                          jobs_done=self.jobs_done,
                          checkpoints=self._checkpoints() if self._checkpoints is not None else None)

    def run(self, item: WorkItem, emit: EventSink | None) -> WorkResult:
        """Run one item to its end; never raises for what the job does (the error is in the result)."""
        job = Job(id=item.job_id, kind=item.kind, request=item.payload, checkpoint=item.checkpoint,
                  worker_id=self.id)
        with self._lock:
            self._current = job
            for flag in self._early.pop(item.job_id, set()):
                getattr(job, flag).set()
        context = JobContext(job, emit, attempt=item.attempt)
        try:
            context.announce()
            if item.settings is not None and self._apply_settings is not None:
                self._apply_settings(item.settings)
            value, images = self._runner(job, context), ()
            if self._pack is not None:
                value, images = self._pack(value)
            status, error = DONE, None
        except JobInterrupted:
            status, value, images, error = INTERRUPTED, None, (), JobInterrupted(f"{job.id} was interrupted")
        except Exception as failure:  # the worker must survive anything a job raises
            status, value, images, error = FAILED, None, (), failure
            if not getattr(failure, "message", None):  # UserErrors are expected; anything else is logged in full
                log.exception("Job %s failed on worker %s", job.id, self.id)
        finally:
            with self._lock:
                self._current = None
            self.jobs_done += 1
        return WorkResult(job_id=job.id, status=status, value=value, images=images, error=error,
                          loaded=tuple(self._loaded()), worker_id=self.id)

    def _signal(self, job_id: str, flag: str) -> bool:
        with self._lock:
            current = self._current
            if current is None or current.id != job_id:
                self._early.setdefault(job_id, set()).add(flag)
                if len(self._early) > 64:  # flags for jobs that never came here: forget the oldest
                    self._early.pop(next(iter(self._early)))
                return False
        getattr(current, flag).set()
        return True

    def interrupt(self, job_id: str) -> bool:
        return self._signal(job_id, "interrupted")

    def skip(self, job_id: str) -> bool:
        return self._signal(job_id, "skipped")
