"""Downloads running in the background, one thread each, with progress readable by the UI and the API."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdweb.builtin_extensions.model_downloader.download import fetch_model
from sdweb.extensions.api import UserError

log = logging.getLogger(__name__)


@dataclass
class DownloadJob:
    id: str
    url: str
    kind: str | None
    state: str = "queued"  # queued / downloading / done / failed / cancelled
    done_bytes: int = 0
    total_bytes: int | None = None
    path: Path | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "kind": self.kind, "state": self.state,
                "done_bytes": self.done_bytes, "total_bytes": self.total_bytes,
                "progress": (self.done_bytes / self.total_bytes) if self.total_bytes else None,
                "path": str(self.path) if self.path else None, "error": self.error}


class DownloadJobs:
    def __init__(self, paths: Any, settings: Callable[[], Mapping[str, Any]], on_done: Callable[[], None],
                 allow_local: bool = False) -> None:
        self.paths = paths
        self.settings = settings
        self.on_done = on_done
        self.allow_local = allow_local
        self._jobs: dict[str, DownloadJob] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, url: str, kind: str | None = None, file_name: str | None = None) -> DownloadJob:
        with self._lock:
            job = DownloadJob(id=f"download-{next(self._ids)}", url=url, kind=kind or None)
            self._jobs[job.id] = job
        threading.Thread(target=self._run, args=(job, file_name), name=job.id, daemon=True).start()
        return job

    def _run(self, job: DownloadJob, file_name: str | None) -> None:
        def progress(done: int, total: int | None) -> None:
            job.state, job.done_bytes, job.total_bytes = "downloading", done, total

        try:
            job.path = fetch_model(job.url, paths=self.paths, settings=self.settings(), progress=progress,
                                   kind=job.kind, file_name=file_name or None, cancel=job.cancel,
                                   allow_local=self.allow_local)
            job.state = "done"
            self.on_done()
        except UserError as error:
            job.state = "cancelled" if job.cancel.is_set() else "failed"
            job.error = f"{error.message} {error.hint}".strip()
        except Exception as error:  # network faults and the like: reported on the job, never raised
            log.exception("Download %s failed", job.id)
            job.state, job.error = "failed", f"{type(error).__name__}: {error}"
        finally:
            job.finished.set()

    def get(self, job_id: str) -> DownloadJob | None:
        return self._jobs.get(job_id)

    def all(self) -> list[DownloadJob]:
        return list(self._jobs.values())
