"""The Queue and Workers panels' HTML, from the same views as /sdweb/v1/queue and /sdweb/v1/workers."""

import threading
import time

from sdweb.generation.jobs import JobQueue
from sdweb.generation.pool.local import LocalPool
from sdweb.generation.pool.worker import Worker
from sdweb.generation.queue_view import queue_view, workers_view
from sdweb.ui.queue_panel import queue_html, workers_html


class Halves:
    def split(self, kind, request):
        return list(request) if isinstance(request, list) else None

    def gather(self, job, results):
        return [result.value for result in results]


def test_queue_and_workers_panels_show_waiting_running_on_which_worker_and_done():
    gate = threading.Event()

    def run(job, context):
        context.start_batch(0, 4)
        context.report_step(1)
        gate.wait(10)
        return job.request

    workers = [Worker(f"gpu-{index}", run, device=f"cuda:{index}", device_name="RTX <test>",
                      node="box-a", loaded=lambda: ["alpha.safetensors [0123456789]"]) for index in range(2)]
    queue = JobQueue(pool=LocalPool(workers), splitter=Halves())
    done = queue.submit("txt2img", "first")
    deadline = time.monotonic() + 5
    while done.progress.sampling_step < 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    split = queue.submit("txt2img", ["a", "b"], checkpoint="beta.safetensors")
    while len(queue.workers_of(split)) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    waiting = queue.submit("img2img", "later", checkpoint="gamma.safetensors")
    page = queue_html(queue_view(queue))
    assert "Waiting (1)" in page and waiting.id in page and "gamma.safetensors" in page
    assert "Running (2)" in page and "(2 images)" in page and "25 %" in page
    panel = workers_html(workers_view(queue))
    assert panel.count("box-a") == 2 and "cuda:0 RTX &lt;test&gt;" in panel  # escaped
    assert f"busy: {done.id}" in panel and "alpha.safetensors [0123456789]" in panel
    gate.set()
    for job in (done, split, waiting):
        job.wait(10)
    page = queue_html(queue_view(queue))
    newest_first = [job.id for job in reversed(queue.finished())]
    queue.shutdown()
    assert "Nothing waiting." in page and "Nothing running." in page
    assert sorted(newest_first, key=page.index) == newest_first and len(newest_first) == 3
    assert "idle" in workers_html(workers_view(queue))
