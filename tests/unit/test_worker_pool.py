"""Several workers behind one queue: messages, flags, FIFO and affinity scheduling, interrupt and skip."""

import pickle
import random
import threading
import time

import pytest
from PIL import Image

from sdweb.core.errors import NotFoundError, UserError
from sdweb.generation.jobs import DONE, INTERRUPTED, Job, JobInterrupted, JobQueue
from sdweb.generation.pool.local import LocalPool
from sdweb.generation.pool.messages import WorkItem, WorkResult, decode_preview, encode_preview
from sdweb.generation.pool.scheduler import Scheduler, WorkerView
from sdweb.generation.pool.setup import parse_workers_flag, worker_device_ids
from sdweb.generation.pool.worker import Worker


class FakeDevice:
    """A worker's stand-in for a model manager: holds one checkpoint, counts loads, runs steps."""

    def __init__(self, steps=2, step_s=0.002, load_s=0.01):
        self.held: list[str] = []
        self.loads = 0
        self.steps, self.step_s, self.load_s = steps, step_s, load_s

    def run(self, job, context):
        if job.checkpoint is not None and job.checkpoint not in self.held:
            time.sleep(self.load_s)
            self.held, self.loads = [job.checkpoint], self.loads + 1
        context.start_batch(0, self.steps)
        for step in range(1, self.steps + 1):
            time.sleep(self.step_s)
            context.report_step(step)
        return (job.request, job.worker_id)

    def loaded(self):
        return list(self.held)


def _pool(count, **device_args):
    devices = [FakeDevice(**device_args) for _ in range(count)]
    workers = [Worker(f"w{index}", device.run, loaded=device.loaded) for index, device in enumerate(devices)]
    return LocalPool(workers), devices


def _submit_mixed(queue, jobs, checkpoints):
    """Jobs over the checkpoints in a fixed shuffled order: a plain rotation would let four FIFO workers in lockstep
    each keep one checkpoint (4 loads, as affinity), so FIFO's thrashing would depend on timing."""
    order = random.Random(7)
    return [queue.submit("txt2img", index, checkpoint=order.choice(checkpoints)) for index in range(jobs)]


def test_twenty_jobs_over_four_workers_all_finish_once_in_fifo_start_order():
    started = []
    lock = threading.Lock()
    devices = [FakeDevice(steps=3) for _ in range(4)]

    def runner_for(device):
        def run(job, context):
            with lock:
                started.append(job.request)
            return device.run(job, context)
        return run

    pool = LocalPool([Worker(f"w{index}", runner_for(device)) for index, device in enumerate(devices)])
    queue = JobQueue(pool=pool, scheduler=Scheduler("fifo"))
    jobs = [queue.submit("txt2img", index) for index in range(20)]
    results = [job.wait(30) for job in jobs]
    queue.shutdown()
    assert [value for value, _ in results] == list(range(20))
    assert started == list(range(20))  # each job started once, in submission order
    assert all(job.status == DONE for job in jobs)
    assert len({worker for _, worker in results}) > 1  # the work was spread


def test_affinity_loads_each_checkpoint_about_once_fifo_thrashes():
    loads = {}
    for mode in ("affinity", "fifo"):
        pool, devices = _pool(4, steps=2, step_s=0.003, load_s=0.02)
        queue = JobQueue(pool=pool, scheduler=Scheduler(mode))
        jobs = _submit_mixed(queue, 80, ["a", "b", "c", "d"])
        for job in jobs:
            job.wait(60)
        queue.shutdown()
        loads[mode] = sum(device.loads for device in devices)
    # 4 checkpoints loaded once each, and a few more once a checkpoint's last jobs are done and its worker helps
    # with another's backlog (6-7 here); about 3 in 4 FIFO jobs find another checkpoint loaded (54-70 here)
    assert loads["affinity"] <= 10, loads
    assert loads["fifo"] > 3 * loads["affinity"], loads


def test_one_popular_checkpoint_still_uses_every_worker():
    pool, devices = _pool(3, steps=3, step_s=0.01)
    queue = JobQueue(pool=pool, scheduler=Scheduler("affinity"))
    jobs = [queue.submit("txt2img", index, checkpoint="only") for index in range(12)]
    workers = {job.wait(30)[1] for job in jobs}
    queue.shutdown()
    assert workers == {"w0", "w1", "w2"}


def test_affinity_takes_a_head_that_waited_too_long():
    scheduler = Scheduler("affinity", max_wait_s=5)
    old = Job(id="old", kind="txt2img", request=None, checkpoint="b")
    mine = Job(id="mine", kind="txt2img", request=None, checkpoint="a")
    me = WorkerView("w0", held={"a"})
    other = WorkerView("w1", held={"b"}, busy=True)
    assert scheduler.pick([old, mine], me, [me, other], now=old.created_at + 1) is mine  # old at the head from +1
    assert scheduler.pick([old, mine], me, [me, other], now=old.created_at + 5.5) is mine
    assert scheduler.pick([old, mine], me, [me, other], now=old.created_at + 6.5) is old
    other.busy = False  # b's holder is free: it will take b; a worker holding nothing waits for it
    stranger = WorkerView("w2")
    assert scheduler.pick([old], stranger, [me, other, stranger], now=old.created_at + 1) is None


def test_a_deep_backlog_keeps_affinity_the_wait_counts_at_the_head():
    """80 jobs submitted at once are all older than max_wait_s long before the last runs: that age alone must not
    turn affinity into FIFO (seen with four Ray workers: 55 loads for 80 jobs over 4 checkpoints)."""
    scheduler = Scheduler("affinity", max_wait_s=5)
    jobs = [Job(id=str(index), kind="txt2img", request=None, checkpoint="ba"[index % 2]) for index in range(6)]
    me = WorkerView("w0", held={"a"})
    other = WorkerView("w1", held={"b"}, busy=True)  # the head's checkpoint: its holder will take it
    late = jobs[0].created_at + 60
    assert scheduler.pick(jobs, me, [me, other], now=late) is jobs[1]
    assert scheduler.pick(jobs, me, [me, other], now=late + 6) is jobs[0]  # at the head for 6 s > 5: taken


def test_interrupt_and_skip_reach_every_running_job():
    gate = threading.Event()
    seen = []

    def run(job, context):
        context.start_batch(0, 1)
        gate.wait(5)
        seen.append((job.request, context.skipped))
        while True:
            time.sleep(0.005)
            context.report_step(1)

    pool = LocalPool([Worker("w0", run), Worker("w1", run)])
    queue = JobQueue(pool=pool)
    jobs = [queue.submit("txt2img", index) for index in range(2)]
    deadline = time.monotonic() + 5
    while len(queue.running()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert queue.skip()
    gate.set()
    assert queue.interrupt()
    for job in jobs:
        with pytest.raises(JobInterrupted):
            job.wait(5)
        assert job.status == INTERRUPTED
    queue.shutdown()
    assert sorted(seen) == [(0, True), (1, True)]


def test_an_interrupt_sent_before_the_worker_starts_the_job_is_kept():
    worker = Worker("w0", lambda job, context: context.report_step(1) or "ran")
    worker.interrupt("task(x)")
    result = worker.run(WorkItem(job_id="task(x)", kind="txt2img", payload=None), None)
    assert result.status == INTERRUPTED and isinstance(result.error, JobInterrupted)


def test_progress_events_carry_a_small_jpeg_preview():
    events = []

    def run(job, context):
        context.start_batch(0, 4)
        context.report_step(2, Image.new("RGB", (1024, 768), (10, 200, 30)))
        return "done"

    worker = Worker("w0", run)
    result = worker.run(WorkItem(job_id="j", kind="txt2img", payload=None), events.append)
    assert result.status == DONE and result.value == "done"
    with_preview = [event for event in events if event.preview_jpeg]
    assert len(with_preview) == 1 and with_preview[0].step == 2 and with_preview[0].steps == 4
    preview = decode_preview(with_preview[0].preview_jpeg)
    assert preview.format == "JPEG" and max(preview.size) == 512
    assert [event.seq for event in events] == sorted(event.seq for event in events)
    assert encode_preview("not an image") is None


def test_messages_and_user_errors_pickle():
    error = pickle.loads(pickle.dumps(NotFoundError("Checkpoint 'x' not found.", hint="Copy it to node b.")))
    assert isinstance(error, NotFoundError) and error.code == "not_found" and error.hint == "Copy it to node b."
    assert error.status_code == 404
    result = pickle.loads(pickle.dumps(WorkResult(job_id="j", status="failed", error=UserError("bad", code="c"))))
    assert result.error.code == "c" and str(result.error) == "bad"


@pytest.mark.parametrize(("value", "expected"), [
    ("local", ("local", None)), (None, ("local", None)), ("ray", ("ray", None)),
    ("ray:10.0.0.5:6379", ("ray", "10.0.0.5:6379")),
])
def test_workers_flag(value, expected):
    choice = parse_workers_flag(value)
    assert (choice.kind, choice.address) == expected


@pytest.mark.parametrize("value", ["dask", "ray:", "ray:host", "ray:host:port"])
def test_workers_flag_refuses_nonsense(value):
    with pytest.raises(UserError, match="--workers"):
        parse_workers_flag(value)


@pytest.mark.parametrize(("ids", "device_id", "cuda", "expected"), [
    (None, None, 0, [None]), (None, None, 1, [None]), (None, None, 3, ["0", "1", "2"]),
    (None, "1", 3, ["1"]), ("0,2", None, 3, ["0", "2"]), ("0,1,2,3", None, 0, ["0", "1", "2", "3"]),
    ("0,0", None, 0, ["0", "0"]),
])
def test_worker_device_ids(ids, device_id, cuda, expected):
    assert worker_device_ids(ids, device_id, cuda) == expected


@pytest.mark.parametrize("ids", ["a,b", ",", "0,0"])
def test_worker_device_ids_refused(ids):
    with pytest.raises(UserError, match="--device-ids"):
        worker_device_ids(ids, None, 2)


@pytest.mark.parametrize(("ids", "device_id", "cuda", "expected"), [
    (None, None, 1, [None, None]), (None, None, 2, ["0", "0", "1", "1"]), ("1", None, 2, ["1", "1"]),
    (None, "1", 2, ["1", "1"]),
])
def test_workers_per_device(ids, device_id, cuda, expected):
    assert worker_device_ids(ids, device_id, cuda, per_device=2) == expected


def test_workers_per_device_refuses_zero():
    with pytest.raises(UserError, match="--workers-per-device"):
        worker_device_ids(None, None, 1, per_device=0)


def test_the_private_ray_cluster_gets_a_random_token_unless_the_user_chose_one():
    from sdweb.generation.pool.setup import private_ray_auth

    first, second = {}, {}
    private_ray_auth(first)
    private_ray_auth(second)
    assert first["RAY_AUTH_MODE"] == "token" and len(first["RAY_AUTH_TOKEN"]) == 64
    assert first["RAY_AUTH_TOKEN"] != second["RAY_AUTH_TOKEN"]
    chosen = {"RAY_AUTH_TOKEN": "mine"}
    private_ray_auth(chosen)
    assert chosen == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "mine"}
    from_file = {"RAY_AUTH_TOKEN_PATH": "/secrets/ray"}
    private_ray_auth(from_file)
    assert "RAY_AUTH_TOKEN" not in from_file
    disabled = {"RAY_AUTH_MODE": "disabled"}
    private_ray_auth(disabled)
    assert disabled == {"RAY_AUTH_MODE": "disabled"}  # the user's explicit choice stands
