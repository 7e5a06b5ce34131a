"""Faults injected by tests and benchmarks: a disk that is full for the files inside one folder (at the OS-call
level), and a worker pool whose workers can be killed mid-job (as a worker process that dies)."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sdweb.generation.job_state import JobInterrupted


def _file_of(handle: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{handle}")  # Linux; elsewhere no file is "inside"
    except OSError:
        return ""


@contextlib.contextmanager
def disk_full(folder: Path, monkeypatch: Any) -> Iterator[None]:
    """While active, os.write and os.fsync on a file inside `folder` fail with ENOSPC, as on a full disk (a
    real full disk fails the write, or the fsync for data the kernel had accepted). `monkeypatch` is pytest's."""
    real_write, real_fsync = os.write, os.fsync
    prefix = str(Path(folder).resolve()) + os.sep

    def full(handle: int) -> bool:
        return _file_of(handle).startswith(prefix)

    def write(handle: int, data: Any) -> int:
        if full(handle):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(handle, data)

    def fsync(handle: int) -> None:
        if full(handle):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(handle)

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", write)
        patch.setattr(os, "fsync", fsync)
        yield


class WorkerLost(ConnectionError):
    """The worker died during the job (what a pool raises for a lost worker process)."""


class KillablePool:
    """A worker pool around another one whose workers can be killed mid-job, as a crashed worker process: the
    job stops at its next event (no event reaches the head after the kill), its work is thrown away and `run`
    raises WorkerLost. The worker itself comes back for the next job, as a restarted process does."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, threading.Event]] = {}
        self.kills = 0

    def workers(self) -> list[Any]:
        return self._inner.workers()

    def run(self, worker_id: str, item: Any, emit: Any) -> Any:
        dead = threading.Event()
        with self._lock:
            self._running[worker_id] = (item.job_id, dead)

        def until_dead(event: Any) -> None:
            if dead.is_set():  # a dead process sends nothing more and stops (quietly: no job error is logged)
                raise JobInterrupted(f"worker {worker_id} died")
            emit(event)

        try:
            result = self._inner.run(worker_id, item, until_dead)
        finally:
            with self._lock:
                self._running.pop(worker_id, None)
        if dead.is_set():
            raise WorkerLost(f"worker {worker_id} died during {item.job_id}")
        return result

    def kill(self, worker_id: str) -> str | None:
        """Kill the job `worker_id` runs now; its id, or None when the worker is idle."""
        with self._lock:
            running = self._running.get(worker_id)
            if running is None:
                return None
            job_id, dead = running
            dead.set()
            self.kills += 1
        # No interrupt sent to the worker: one arriving after the job ended would be kept for the job's retry
        return job_id

    def interrupt(self, worker_id: str, job_id: str) -> None:
        self._inner.interrupt(worker_id, job_id)

    def skip(self, worker_id: str, job_id: str) -> None:
        self._inner.skip(worker_id, job_id)

    def close(self) -> None:
        self._inner.close()
