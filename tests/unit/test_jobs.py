import re
import threading
import time

import pytest

from sdweb.core.errors import UserError
from sdweb.generation.jobs import DONE, FAILED, INTERRUPTED, JobInterrupted, JobQueue, new_task_id


def _stepping_runner(steps=5, delay=0.01, log=None):
    def run(job, context):
        context.set_job_count(1)
        context.start_batch(0, steps)
        for step in range(1, steps + 1):
            time.sleep(delay)
            context.report_step(step)
        if log is not None:
            log.append(job.request)
        return f"result-{job.request}"

    return run


def test_task_id_shape():
    assert re.fullmatch(r"task\(txt2img-[A-Z0-9]{7}\)", new_task_id("txt2img"))


def test_jobs_run_in_submission_order_and_none_is_lost():
    order = []
    queue = JobQueue(_stepping_runner(steps=2, delay=0.001, log=order))
    jobs = [queue.submit("txt2img", i) for i in range(30)]
    assert [job.wait(30) for job in jobs] == [f"result-{i}" for i in range(30)]
    assert order == list(range(30))
    assert all(job.status == DONE for job in jobs)
    queue.shutdown()


def test_concurrent_submitters_all_complete():
    queue = JobQueue(_stepping_runner(steps=1, delay=0.001))
    results = []
    lock = threading.Lock()

    def client(n):
        value = queue.run("txt2img", n, timeout=30)
        with lock:
            results.append(value)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted(f"result-{n}" for n in range(10))
    queue.shutdown()


def test_progress_and_queue_position():
    gate = threading.Event()

    def run(job, context):
        context.start_batch(0, 10)
        context.report_step(3)
        gate.wait(10)
        return job.request

    queue = JobQueue(run)
    first = queue.submit("txt2img", "a")
    second = queue.submit("img2img", "b")
    deadline = time.monotonic() + 5
    while queue.current() is None or first.progress.sampling_step < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert queue.current() is first
    assert first.progress.fraction() == pytest.approx(0.3)
    assert queue.position(second.id) == 0 and queue.position(first.id) is None
    gate.set()
    assert second.wait(10) == "b"
    assert queue.get(first.id) is first
    queue.shutdown()


def test_interrupt_running_job_and_the_next_one_still_runs():
    started = threading.Event()

    def run(job, context):
        if job.request == "slow":
            started.set()
            while True:
                time.sleep(0.01)
                context.report_step(1)
        return "ok"

    queue = JobQueue(run)
    slow = queue.submit("txt2img", "slow")
    nxt = queue.submit("txt2img", "fast")
    assert started.wait(5)
    assert queue.interrupt()
    with pytest.raises(JobInterrupted):
        slow.wait(5)
    assert slow.status == INTERRUPTED
    assert nxt.wait(5) == "ok"
    queue.shutdown()


def test_interrupt_a_waiting_job_by_id():
    gate = threading.Event()
    queue = JobQueue(lambda job, context: gate.wait(10) and job.request)
    running = queue.submit("txt2img", "first")
    waiting = queue.submit("txt2img", "second")
    assert queue.interrupt(waiting.id)
    with pytest.raises(JobInterrupted):
        waiting.wait(1)
    gate.set()
    assert running.wait(5) == "first"
    queue.shutdown()


def test_failing_job_reports_error_and_worker_survives():
    def run(job, context):
        if job.request == "bad":
            raise UserError("Sampler 'nope' not found.")
        if job.request == "crash":
            raise RuntimeError("boom")
        return "fine"

    queue = JobQueue(run)
    bad, crash, good = (queue.submit("txt2img", r) for r in ("bad", "crash", "good"))
    with pytest.raises(UserError, match="nope"):
        bad.wait(5)
    with pytest.raises(RuntimeError, match="boom"):
        crash.wait(5)
    assert good.wait(5) == "fine"
    assert bad.status == FAILED and crash.status == FAILED
    queue.shutdown()


def test_skip_sets_flag_for_running_job_only():
    seen = []
    gate = threading.Event()

    def run(job, context):
        context.start_batch(0, 1)
        gate.wait(5)
        seen.append(context.skipped)
        context.start_batch(1, 1)  # a new batch clears skip
        seen.append(context.skipped)
        return None

    queue = JobQueue(run)
    assert not queue.skip()
    job = queue.submit("txt2img", None)
    while queue.current() is None:
        time.sleep(0.01)
    assert queue.skip()
    gate.set()
    job.wait(5)
    assert seen == [True, False]
    queue.shutdown()
