"""--workers ray: one Ray actor per GPU (or per listed device), on this box or across a Ray cluster.

Only this module imports ray, and only when the flag asks for it. Each actor builds its own worker with the
head's `make_worker` (its runtime plan, model manager and generation service) and runs one WorkItem at a time
as a streaming generator: ProgressEvents, then one WorkResult. Images come back as PNG bytes; the head saves
them. An actor that dies is restarted (max_restarts) and its call retried (max_task_retries); the pool marks a
retry's events with the next attempt number, so the head never moves progress backwards.

Security: Ray's ports accept code from anyone who can reach them. A private cluster started here binds
loopback and uses token auth (RAY_AUTH_MODE=token); a joined cluster must be firewalled by its owner.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import ray

from sdweb.config.launch_options import LaunchOptions
from sdweb.generation.job_state import EventSink
from sdweb.generation.pool.messages import ProgressEvent, WorkerInfo, WorkItem, WorkResult
from sdweb.generation.pool.worker import Worker

log = logging.getLogger(__name__)

MakeWorker = Callable[[Any, "str | None", str], Worker]  # (launch options, device id, worker id) -> Worker
SettingsSnapshot = Callable[[], dict[str, Any]]
INFO_TIMEOUT_S = 10.0


class RayWorkerActor:
    """The actor: a Worker in its own process. Threaded (max_concurrency) so interrupt and skip are answered
    while a job runs."""

    def __init__(self, make_worker: MakeWorker, options: LaunchOptions, device_id: str | None, worker_id: str,
                 threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))  # Ray sets OMP_NUM_THREADS=1 in actors
        self._worker = make_worker(options, device_id, worker_id)

    def info(self) -> WorkerInfo:
        return dataclasses.replace(self._worker.info(), extra={"pid": os.getpid()})

    def run(self, item: WorkItem) -> Iterator[ProgressEvent | WorkResult]:
        events: queue.Queue[ProgressEvent | WorkResult] = queue.Queue()
        thread = threading.Thread(target=lambda: events.put(self._worker.run(item, events.put)), daemon=True)
        thread.start()
        while True:
            message = events.get()
            yield message
            if isinstance(message, WorkResult):
                return

    def interrupt(self, job_id: str) -> bool:
        return self._worker.interrupt(job_id)

    def skip(self, job_id: str) -> bool:
        return self._worker.skip(job_id)

    def pid(self) -> int:
        return os.getpid()


def start_ray(address: str | None, gpus: int) -> bool:
    """Connect to `address`, or start a private one-box cluster (loopback, token auth). True if started here."""
    if ray.is_initialized():
        return False
    if address is not None:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return False
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode != "token":  # the user chose another mode, or ray was imported before state.private_ray_auth ran
        log.warning("The private Ray cluster starts without token auth (RAY_AUTH_MODE=%s). It binds 127.0.0.1 only.",
                    mode or "unset: Ray was imported before sdweb could set it")
    ray.init(num_gpus=gpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    return True


class RayPool:
    def __init__(self, make_worker: MakeWorker, options: LaunchOptions, device_ids: list[str | None],
                 settings: SettingsSnapshot, retries: int = 2, address: str | None = None, gpus: int = 0,
                 threads: int = 1) -> None:
        self._settings = settings
        self._started_here = start_ray(address, gpus)
        actor_class = ray.remote(RayWorkerActor).options(
            max_restarts=-1, max_task_retries=retries, max_concurrency=4, num_cpus=0,
            num_gpus=1 if ray.cluster_resources().get("GPU", 0) >= len(device_ids) else 0)
        self._actors = {}
        for index, device_id in enumerate(device_ids):
            worker_id = f"ray-{index}"
            self._actors[worker_id] = actor_class.remote(make_worker, options, device_id, worker_id, threads)
        self._infos = dict(zip(self._actors, ray.get([actor.info.remote() for actor in self._actors.values()]),
                               strict=True))

    def workers(self) -> list[WorkerInfo]:
        refs = {worker_id: actor.info.remote() for worker_id, actor in self._actors.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=INFO_TIMEOUT_S)
        for worker_id, ref in refs.items():
            if ref in ready:
                self._infos[worker_id] = ray.get(ref)
        return list(self._infos.values())

    def actor(self, worker_id: str) -> Any:
        return self._actors[worker_id]

    def run(self, worker_id: str, item: WorkItem, emit: EventSink) -> WorkResult:
        item = dataclasses.replace(item, images_as_bytes=True, settings=self._settings())
        stream = self._actors[worker_id].run.options(num_returns="streaming").remote(item)
        attempt, last_seq = item.attempt, 0  # the queue's retries count on from Ray's own
        for ref in stream:
            message = ray.get(ref)
            if isinstance(message, WorkResult):
                return message
            if message.seq <= last_seq:  # the actor restarted and Ray re-ran the call: a new attempt
                attempt += 1
            last_seq = message.seq
            emit(dataclasses.replace(message, attempt=attempt))
        raise RuntimeError(f"worker {worker_id} ended job {item.job_id} without a result")

    def interrupt(self, worker_id: str, job_id: str) -> None:
        self._actors[worker_id].interrupt.remote(job_id)

    def skip(self, worker_id: str, job_id: str) -> None:
        self._actors[worker_id].skip.remote(job_id)

    def close(self) -> None:
        for actor in self._actors.values():
            ray.kill(actor, no_restart=True)
        self._actors.clear()
        if self._started_here:
            ray.shutdown()
