"""Worker-pool scaling: the head's queue, scheduler and pools with fake jobs (fixed-time steps, fixed-time loads).

    PYTHONPATH=. venv/bin/python bench/scale.py [--ray] [--step-ms 20] [--jobs 40]

Prints one JSON line, measured side by side in one run:
- jobs/s for 1, 2, 4 workers with a fixed step (goal: >= 90 % of N x one worker);
- per-job overhead of the queue + pool vs calling the runner directly, 1-step and 20-step jobs
  (goal <= 50 ms and <= 5 %);
- progress event latency p50/p95 (worker emit -> head applied);
- checkpoint loads per 100 jobs over 4 checkpoints, affinity vs fifo;
- head RSS at idle; with --ray also Ray's cold start, the same figures for actors, Ray's RSS, and a worker
  SIGKILLed mid-job (the job completes once, progress never goes backwards);
- a soak: --soak-jobs (200) one-second jobs over 4 workers, one busy worker killed every --kill-every (10) s:
  lost jobs, duplicate files (the head writes one file per job, refusing to overwrite), retries, progress
  going backwards. Locally a kill is a worker failing mid-job (sdweb.testing.faults.KillablePool: the job's work
  is lost, the pool raises; the head retries it). With --ray it is a SIGKILL of the actor's process: Ray
  restarts the actor and re-runs the call itself, and its stream resumes after the last event the head got, so
  the head sees a pause, no retry (head_retries counts only the head's own, after Ray's retries ran out).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdweb.generation.jobs import JobQueue  # noqa: E402
from sdweb.generation.pool.local import LocalPool  # noqa: E402
from sdweb.generation.pool.scheduler import Scheduler  # noqa: E402
from sdweb.generation.pool.worker import Worker  # noqa: E402
from sdweb.testing.faults import KillablePool  # noqa: E402

CHECKPOINTS = ("a", "b", "c", "d")


class FakeDevice:
    """Sleeps `step_s` per step and `load_s` per checkpoint change; records event emit times."""

    def __init__(self, steps: int, step_s: float, load_s: float = 0.0) -> None:
        self.steps, self.step_s, self.load_s = steps, step_s, load_s
        self.held: list[str] = []
        self.loads = 0

    def run(self, job, context):  # noqa: ANN001 (a Runner)
        if job.checkpoint is not None and job.checkpoint not in self.held:
            time.sleep(self.load_s)
            self.held, self.loads = [job.checkpoint], self.loads + 1
        context.start_batch(0, self.steps, textinfo=repr(time.time()))
        for step in range(1, self.steps + 1):
            time.sleep(self.step_s)
            context.job.progress.textinfo = repr(time.time())  # when the event left the worker
            context.report_step(step)
        return job.request

    def loaded(self) -> list[str]:
        return list(self.held)


def make_fake_worker(options: dict, device_id: str | None, worker_id: str) -> Worker:
    device = FakeDevice(options["steps"], options["step_s"], options.get("load_s", 0.0))
    return Worker(worker_id, device.run, loaded=device.loaded)


class LatencyQueue(JobQueue):
    """The queue with each event's travel time recorded (emit in the worker -> applied in the head)."""

    latencies: list[float]

    def _apply(self, job, event):  # noqa: ANN001
        super()._apply(job, event)
        if event.textinfo.replace(".", "", 1).isdigit():
            self.latencies.append(time.time() - float(event.textinfo))


def _queue(pool, mode: str = "fifo") -> LatencyQueue:
    queue = LatencyQueue(pool=pool, scheduler=Scheduler(mode))
    queue.latencies = []
    return queue


def _throughput(pool, jobs: int, checkpoints: tuple[str, ...] = (), before_close=None) -> tuple[float, list[float]]:  # noqa: ANN001
    queue = _queue(pool)
    started = time.perf_counter()
    submitted = [queue.submit("txt2img", index, checkpoint=checkpoints[index % len(checkpoints)] if checkpoints
                              else None) for index in range(jobs)]
    for job in submitted:
        job.wait(600)
    seconds = time.perf_counter() - started
    if before_close is not None:
        before_close()
    queue.shutdown()
    return jobs / seconds, queue.latencies


def _local_pool(count: int, steps: int, step_s: float, load_s: float = 0.0) -> tuple[LocalPool, list[FakeDevice]]:
    devices = [FakeDevice(steps, step_s, load_s) for _ in range(count)]
    return LocalPool([Worker(f"w{i}", d.run, loaded=d.loaded) for i, d in enumerate(devices)]), devices


def _direct_seconds(steps: int, step_s: float, jobs: int) -> float:
    from sdweb.generation.job_state import Job, JobContext

    device = FakeDevice(steps, step_s)
    started = time.perf_counter()
    for index in range(jobs):
        job = Job(id=str(index), kind="txt2img", request=index)
        device.run(job, JobContext(job))
    return (time.perf_counter() - started) / jobs


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": None, "p95_ms": None}
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 3)}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def local_figures(jobs: int, step_s: float) -> dict:
    figures: dict = {}
    rates, latencies = {}, []
    for count in (1, 2, 4):
        pool, _ = _local_pool(count, 10, step_s)
        rate, seen = _throughput(pool, jobs)
        rates[count], latencies = round(rate, 2), latencies + seen
    figures["jobs_per_s"] = rates
    figures["scaling_vs_ideal"] = {n: round(rates[n] / (n * rates[1]), 3) for n in (2, 4)}
    overhead = {}
    for steps in (1, 20):
        direct = _direct_seconds(steps, step_s, 10)
        pool, _ = _local_pool(1, steps, step_s)
        rate, _ = _throughput(pool, 10)
        overhead[f"{steps}_step"] = {"ms": round((1 / rate - direct) * 1000, 2),
                                     "percent": round((1 / rate - direct) / direct * 100, 2)}
    figures["overhead_vs_direct"] = overhead
    figures["event_latency"] = _percentiles(latencies)
    loads = {}
    for mode in ("affinity", "fifo"):
        pool, devices = _local_pool(4, 2, step_s / 4, load_s=step_s)
        queue = _queue(pool, mode)
        submitted = [queue.submit("txt2img", i, checkpoint=CHECKPOINTS[i % 4]) for i in range(100)]
        for job in submitted:
            job.wait(600)
        queue.shutdown()
        loads[mode] = sum(device.loads for device in devices)
    figures["loads_per_100_jobs_4_checkpoints"] = loads
    figures["head_rss_idle_mib"] = round(_rss_mib(os.getpid()), 1)
    return figures


def ray_figures(jobs: int, step_s: float) -> dict:
    import ray

    from sdweb.generation.pool.ray_pool import RayPool

    figures: dict = {}
    started = time.perf_counter()
    ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, log_to_driver=False)
    figures["ray_init_s"] = round(time.perf_counter() - started, 2)
    options = {"steps": 10, "step_s": step_s}
    rates, latencies = {}, []
    for count in (1, 2, 4):
        started = time.perf_counter()
        pool = RayPool(make_fake_worker, options, [str(i) for i in range(count)], dict, retries=2)
        figures.setdefault("actors_up_s", {})[count] = round(time.perf_counter() - started, 2)
        def measure_rss(pool=pool, count=count) -> None:  # noqa: ANN001
            figures.setdefault("ray_actors_rss_mib_idle", {})[count] = round(_ray_rss_mib(pool), 1)

        rate, seen = _throughput(pool, jobs, before_close=measure_rss)
        rates[count], latencies = round(rate, 2), latencies + seen
    figures["jobs_per_s"] = rates
    figures["scaling_vs_ideal"] = {n: round(rates[n] / (n * rates[1]), 3) for n in (2, 4)}
    figures["event_latency"] = _percentiles(latencies)
    overhead = {}
    for steps in (1, 20):
        direct = _direct_seconds(steps, step_s, 10)
        pool = RayPool(make_fake_worker, {"steps": steps, "step_s": step_s}, ["0"], dict)
        rate, _ = _throughput(pool, 10)
        overhead[f"{steps}_step"] = {"ms": round((1 / rate - direct) * 1000, 2),
                                     "percent": round((1 / rate - direct) / direct * 100, 2)}
    figures["overhead_vs_direct"] = overhead
    figures["kill_mid_job"] = _kill_mid_job(RayPool, step_s)
    return figures


def _ray_rss_mib(pool) -> float:  # noqa: ANN001
    import ray

    pids = ray.get([pool.actor(info.id).pid.remote() for info in pool.workers()])
    return sum(_rss_mib(pid) for pid in pids)


def _kill_mid_job(pool_class, step_s: float) -> dict:  # noqa: ANN001
    import ray

    pool = pool_class(make_fake_worker, {"steps": 30, "step_s": step_s}, ["0"], dict, retries=2)
    queue = _queue(pool)
    job = queue.submit("txt2img", "killed")
    steps_seen = []
    while job.progress.sampling_step < 5:
        time.sleep(0.002)
    pid = ray.get(pool.actor("ray-0").pid.remote())
    killed_at = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    while not job.finished.is_set():
        steps_seen.append(job.progress.fraction())
        time.sleep(0.002)
    queue.shutdown()
    pool.close()
    backwards = any(later < earlier for earlier, later in zip(steps_seen, steps_seen[1:], strict=False))
    return {"status": job.status, "result": job.result, "progress_went_backwards": backwards,
            "seconds_from_kill_to_done": round(time.perf_counter() - killed_at, 2)}


class Soak:
    """200 jobs over 4 workers while `kill` kills one busy worker every `kill_every_s`; the head's receive writes
    one file per job and refuses to overwrite one (a second result for a job would be a duplicate file)."""

    def __init__(self, pool, kill, kill_every_s: float, folder: Path) -> None:  # noqa: ANN001
        self.pool, self.kill, self.kill_every_s, self.folder = pool, kill, kill_every_s, folder
        self.duplicates = 0
        self.kills: list[str] = []
        self.backwards = False

    def receive(self, job, result):  # noqa: ANN001 (a ResultReceiver)
        try:
            with (self.folder / f"{job.request}.txt").open("x") as file:
                file.write(job.id)
        except FileExistsError:
            self.duplicates += 1
        return result.value

    def run(self, jobs: int) -> dict:
        queue = JobQueue(pool=self.pool, scheduler=Scheduler("fifo"), receive=self.receive, retries=2)
        started = time.perf_counter()
        submitted = [queue.submit("txt2img", index) for index in range(jobs)]
        done = threading.Event()
        killer = threading.Thread(target=self._kill_loop, args=(queue, done), daemon=True)
        watcher = threading.Thread(target=self._watch, args=(submitted, done), daemon=True)
        killer.start()
        watcher.start()
        for job in submitted:
            job.finished.wait(1800)
        done.set()
        killer.join()
        watcher.join()
        seconds = time.perf_counter() - started
        queue.shutdown()
        files = list(self.folder.glob("*.txt"))
        return {"jobs": jobs, "workers": len(self.pool.workers()), "kill_every_s": self.kill_every_s,
                "kills": len(self.kills), "lost": sum(job.status != "done" for job in submitted),
                "duplicate_files": self.duplicates, "files": len(files),
                "head_retries": sum(job.attempt for job in submitted),
                "progress_went_backwards": self.backwards, "seconds": round(seconds, 1)}

    def _kill_loop(self, queue, done: threading.Event) -> None:  # noqa: ANN001
        while not done.wait(self.kill_every_s):
            busy = sorted({job.worker_id for job in queue.running() if job.worker_id})
            if busy:
                victim = random.choice(busy)
                if self.kill(victim):
                    self.kills.append(victim)

    def _watch(self, jobs, done: threading.Event) -> None:  # noqa: ANN001
        seen = [0.0] * len(jobs)
        while not done.wait(0.01):
            for index, job in enumerate(jobs):
                fraction = job.progress.fraction()
                self.backwards = self.backwards or fraction < seen[index]
                seen[index] = fraction


def local_soak(jobs: int, step_s: float, kill_every_s: float) -> dict:
    pool, _ = _local_pool(4, round(1.0 / step_s), step_s)
    killable = KillablePool(pool)
    with tempfile.TemporaryDirectory() as folder:
        return Soak(killable, lambda worker_id: killable.kill(worker_id) is not None, kill_every_s,
                    Path(folder)).run(jobs)


def ray_soak(jobs: int, step_s: float, kill_every_s: float) -> dict:
    import ray

    from sdweb.generation.pool.ray_pool import RayPool

    pool = RayPool(make_fake_worker, {"steps": round(1.0 / step_s), "step_s": step_s}, [str(i) for i in range(4)],
                   dict, retries=2)

    def sigkill(worker_id: str) -> bool:
        os.kill(ray.get(pool.actor(worker_id).pid.remote()), signal.SIGKILL)
        return True

    with tempfile.TemporaryDirectory() as folder:
        return Soak(pool, sigkill, kill_every_s, Path(folder)).run(jobs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray", action="store_true", help="also measure --workers ray (needs sdweb[ray])")
    parser.add_argument("--step-ms", type=float, default=20.0)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--soak-jobs", type=int, default=200, help="jobs in the soak (0: no soak)")
    parser.add_argument("--kill-every", type=float, default=10.0, help="seconds between kills in the soak")
    args = parser.parse_args()
    step_s = args.step_ms / 1000
    report = {"bench": "scale", "step_ms": args.step_ms, "jobs": args.jobs, "cpus": os.cpu_count(),
              "local": local_figures(args.jobs, step_s)}
    if args.soak_jobs:
        report["local"]["soak"] = local_soak(args.soak_jobs, step_s, args.kill_every)
    if args.ray:
        import ray

        report["ray"] = ray_figures(args.jobs, step_s)
        if args.soak_jobs:
            report["ray"]["soak"] = ray_soak(args.soak_jobs, step_s, args.kill_every)
        ray.shutdown()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
