"""Which workers have a checkpoint's file, matched by hash: each worker reports the checkpoint files its own
models folder holds (a worker on another machine has its own folder), and a job goes only to a worker that has
its file. A checkpoint no worker has is refused at submit, naming the nodes and the file."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from sdweb.core.errors import NotFoundError
from sdweb.generation.pool.messages import CheckpointFile, WorkerInfo
from sdweb.models.registry import CheckpointEntry, ModelRegistry


def checkpoint_file(entry: CheckpointEntry) -> CheckpointFile:
    return CheckpointFile(name=entry.name, sha256=entry.sha256, legacy_hash=entry.legacy_hash)


def same_file(wanted: CheckpointFile, present: CheckpointFile) -> bool:
    """The same file by sha256 when both sides know it, else by A1111's legacy hash (a cheap read of 64 KiB,
    always known for files), else (diffusers folders) by name."""
    if wanted.sha256 and present.sha256:
        return wanted.sha256 == present.sha256
    if wanted.legacy_hash and present.legacy_hash:
        return wanted.legacy_hash == present.legacy_hash
    return wanted.name == present.name


def workers_with(wanted: CheckpointFile, workers: Sequence[WorkerInfo]) -> list[WorkerInfo]:
    """The workers that have the file (a worker that reports no list, e.g. a test's, is taken to have it)."""
    return [info for info in workers if info.checkpoints is None
            or any(same_file(wanted, present) for present in info.checkpoints)]


def require_on_a_worker(wanted: CheckpointFile, workers: Sequence[WorkerInfo]) -> frozenset[str] | None:
    """The ids of the workers a job with this checkpoint may run on (None: any); NotFoundError naming the
    nodes and the file when none has it."""
    having = workers_with(wanted, workers)
    if len(having) == len(workers):
        return None
    if having:
        return frozenset(info.id for info in having)
    nodes: dict[str, list[str]] = {}
    for info in workers:
        nodes.setdefault(info.node, []).append(info.id)
    where = "; ".join(f"{node} ({', '.join(ids)})" for node, ids in nodes.items())
    digest = f"sha256 {wanted.sha256[:10]}" if wanted.sha256 else f"hash {wanted.legacy_hash or 'unknown'}"
    raise NotFoundError(f"Checkpoint {wanted.name} ({digest}) is on none of the workers: no file with its hash in "
                        f"models/Stable-diffusion on {where}.", code="checkpoint_not_on_workers",
                        hint=f"Copy {wanted.name} into models/Stable-diffusion on {', '.join(nodes)} (any name: "
                             "workers find it by its hash), or choose another checkpoint.")


class CheckpointFiles:
    """A worker's list of the checkpoint files it has. `refresh_s`: rescan the folder when the list is older
    (a worker on another machine sees files copied there later); None: the registry's list as it is (the local
    workers share the head's registry, which the user refreshes)."""

    def __init__(self, registry: ModelRegistry, refresh_s: float | None = None) -> None:
        self._registry = registry
        self._refresh_s = refresh_s
        self._scanned = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self) -> tuple[CheckpointFile, ...]:
        if self._refresh_s is not None:
            with self._lock:
                if time.monotonic() - self._scanned > self._refresh_s:
                    self._registry.refresh_checkpoints()
                    self._scanned = time.monotonic()
        return tuple(checkpoint_file(entry) for entry in self._registry.checkpoints)
