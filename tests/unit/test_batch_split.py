"""Batches split into per-image parts over several workers: A1111's seed arithmetic, the noise each image gets,
and the head's queue gathering the parts in order (progress, interrupt, skip, failures, lost workers)."""

import threading
import time

import pytest
import torch
from PIL import Image

from sdweb.core.errors import UserError
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.extensions.api import AlwaysVisible, Callbacks, Script
from sdweb.extensions.scripts import LoadedScript, ScriptRunner
from sdweb.generation.jobs import DONE, FAILED, INTERRUPTED, JobInterrupted, JobQueue
from sdweb.generation.pool.local import LocalPool
from sdweb.generation.pool.worker import Worker
from sdweb.generation.service import GenerationResult
from sdweb.generation.split import merge_results, split_request
from sdweb.samplers.rng import ImageRNG
from sdweb.testing.faults import KillablePool, WorkerLost

SHAPE = (4, 8, 8)


@pytest.mark.parametrize("options", [
    {}, {"subseeds": [5, 6, 7], "subseed_strength": 0.3}, {"seed_resize_from": (48, 80)},
    {"eta_noise_seed_delta": 31337}, {"source": "NV"}, {"subseeds": [5, 6, 7], "subseed_strength": 0.5,
                                                        "seed_resize_from": (96, 48), "source": "NV"},
])
def test_each_image_of_a_batch_gets_the_noise_it_gets_alone(options):
    """What makes a split exact: every draw (initial noise, sampler noise) of image k equals a one-image run
    with that image's seed and subseed, for every variation, resize, ENSD and noise source."""
    subseeds = options.pop("subseeds", [])
    batch = ImageRNG(SHAPE, [10, 11, 12], subseeds=subseeds, source=options.pop("source", "CPU"), **options)
    draws = [batch.next() for _ in range(3)]
    for index in range(3):
        alone = ImageRNG(SHAPE, [10 + index], subseeds=subseeds[index:index + 1], source=batch.source, **options)
        for draw in draws:
            assert torch.equal(alone.next()[0], draw[index])


def test_a_batch_splits_with_a1111_seed_arithmetic():
    request = Txt2ImgRequest(prompt="a cat", seed=100, subseed=7, batch_size=2, n_iter=3)
    parts = split_request(request)
    assert [(part.seed, part.subseed) for part in parts] == [(100 + k, 7 + k) for k in range(6)]
    assert all(part.batch_size == 1 and part.n_iter == 1 and part.prompt == "a cat" for part in parts)
    varied = split_request(request.model_copy(update={"subseed_strength": 0.4}))
    assert [(part.seed, part.subseed) for part in varied] == [(100, 7 + k) for k in range(6)]
    random_seed = split_request(request.model_copy(update={"seed": -1}))
    first = random_seed[0].seed
    assert first >= 0 and [part.seed for part in random_seed] == [first + k for k in range(6)]
    assert request.seed == 100 and request.batch_size == 2  # the job's own request is untouched


def test_what_is_not_split():
    assert split_request(Txt2ImgRequest(prompt="one image")) is None
    image = Image.new("RGB", (64, 64))
    assert split_request(Img2ImgRequest(init_images=[image, image], batch_size=2)) is None  # images by position
    assert len(split_request(Img2ImgRequest(init_images=[image], batch_size=2))) == 2


def _part(seed, incomplete=(), notes=()):
    return GenerationResult(images=[Image.new("RGB", (8, 8), (seed % 255, 0, 0))], infotexts=[f"seed {seed}"],
                            seeds=[seed], subseeds=[seed + 1000], prompts=["p"], negative_prompts=["n"],
                            incomplete=list(incomplete), notes=list(notes),
                            info={"seed": seed, "all_seeds": [seed], "batch_size": 1, "sampler_name": "Euler"})


def test_parts_merge_in_image_order():
    request = Txt2ImgRequest(prompt="p", seed=5, batch_size=2, n_iter=2)
    merged = merge_results(request, [_part(5, notes=["x"]), None, _part(7, incomplete=[0], notes=["x", "y"]),
                                     _part(8)])
    assert merged.seeds == [5, 7, 8] and merged.infotexts == ["seed 5", "seed 7", "seed 8"]
    assert merged.incomplete == [1] and merged.notes == ["x", "y"]
    assert merged.info["all_seeds"] == [5, 7, 8] and merged.info["batch_size"] == 2
    assert merged.info["sampler_name"] == "Euler" and merged.info["notes"] == ["x", "y"]
    assert merge_results(request, [None, None]).images == []


class ListSplitter:
    """Splits a list request into its items; gathers the parts' values in order (None for one never run)."""

    def __init__(self):
        self.gathered = []

    def split(self, kind, request):
        return list(request) if isinstance(request, list) else None

    def gather(self, job, results):
        values = [result.value if result is not None else None for result in results]
        self.gathered.append(values)
        return values


def _stepper(steps=4, step_s=0.005, fail_on=None, gate=None):
    def run(job, context):
        if gate is not None:
            gate.wait(5)
        if job.request == fail_on:
            raise UserError(f"item {job.request} is bad", code="bad_item")
        context.start_batch(0, steps)
        for step in range(1, steps + 1):
            time.sleep(step_s)
            context.report_step(step)
        return (job.request, job.worker_id)

    return run


def _queue(workers, run, splitter=None, **queue_args):
    pool = LocalPool([Worker(f"w{index}", run) for index in range(workers)])
    return JobQueue(pool=pool, splitter=splitter or ListSplitter(), **queue_args)


def test_a_split_job_runs_on_every_worker_and_is_gathered_once_in_order():
    splitter = ListSplitter()
    queue = _queue(3, _stepper(steps=5), splitter)
    job = queue.submit("txt2img", list(range(9)))
    fractions = []
    while not job.finished.is_set():
        fractions.append(job.progress.fraction())
        time.sleep(0.002)
    values = job.wait(1)
    queue.shutdown()
    assert job.status == DONE and [value for value, _ in values] == list(range(9))
    assert len({worker for _, worker in values}) == 3 and splitter.gathered == [values]
    assert len(job.parts) == 9 and all(part.result is None for part in job.parts)  # images live in the result
    assert all(later >= earlier for earlier, later in zip(fractions, fractions[1:], strict=False))
    assert job.progress.fraction() == 1.0 and 0 < max(fractions[:-1] or [0]) <= 1.0
    assert queue.get(job.id) is job and queue.finished()[-1] is job


def test_one_worker_runs_the_job_whole():
    splitter = ListSplitter()
    queue = _queue(1, lambda job, context: job.request, splitter)
    assert queue.submit("txt2img", [1, 2]).wait(5) == [1, 2]
    queue.shutdown()
    assert splitter.gathered == []


def test_a_waiting_split_job_shows_once_and_cancels_whole():
    gate = threading.Event()
    queue = _queue(2, _stepper(gate=gate))
    first = queue.submit("txt2img", "whole")  # both workers: the first takes it, the other waits on the gate too
    second = queue.submit("txt2img", "whole too")
    split = queue.submit("txt2img", [1, 2, 3])
    deadline = time.monotonic() + 5
    while len(queue.running()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert queue.pending() == [split] and queue.position(split.id) == 0
    assert queue.interrupt(split.id)
    with pytest.raises(JobInterrupted):
        split.wait(1)
    gate.set()
    assert first.wait(5)[0] == "whole" and second.wait(5)[0] == "whole too"
    queue.shutdown()
    assert split.status == INTERRUPTED and all(part.status == INTERRUPTED for part in split.parts)
    assert all(part.worker_id is None for part in split.parts)  # none reached a worker


def test_interrupt_stops_the_running_images_and_never_starts_the_others():
    started = []

    def run(job, context):
        started.append(job.request)
        context.start_batch(0, 1000)
        for step in range(1, 1001):
            time.sleep(0.002)
            context.report_step(step)
        return job.request

    queue = _queue(2, run)
    job = queue.submit("txt2img", list(range(6)))
    deadline = time.monotonic() + 5
    while len(started) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert queue.current() is job and sorted(queue.workers_of(job)) == ["w0", "w1"]
    assert queue.interrupt()
    with pytest.raises(JobInterrupted):
        job.wait(5)
    queue.shutdown()
    assert sorted(started) == [0, 1] and job.status == INTERRUPTED


def test_skip_reaches_the_running_images():
    skipped = []

    def run(job, context):
        context.start_batch(0, 1000)
        for step in range(1, 1001):
            if context.skipped:
                skipped.append(job.request)
                return "skipped"
            time.sleep(0.002)
            context.show_step(step)
        return "ran"

    queue = _queue(2, run)
    job = queue.submit("txt2img", [0, 1])
    deadline = time.monotonic() + 5
    while len(queue.workers_of(job)) < 2 or any(part.progress.sampling_step < 1 for part in job.parts):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert queue.skip()
    assert job.wait(5) == ["skipped", "skipped"]
    queue.shutdown()
    assert sorted(skipped) == [0, 1]


def test_a_failing_image_fails_the_job_with_its_error_and_stops_the_rest():
    queue = _queue(2, _stepper(steps=50, fail_on=3))
    job = queue.submit("txt2img", list(range(12)))
    with pytest.raises(UserError, match="item 3 is bad"):
        job.wait(10)
    queue.shutdown()
    assert job.status == FAILED
    assert sum(part.worker_id is None for part in job.parts) >= 6  # the later images never started


def _killed_once(pool_box, victims, steps=6):
    """A runner whose job is killed (its worker "dies") at step 2 the first time each victim job runs."""
    attempts = []

    def run(job, context):
        attempts.append((job.id, job.worker_id))
        context.start_batch(0, steps)
        for step in range(1, steps + 1):
            time.sleep(0.003)
            if step == 2 and job.id in victims:
                victims.discard(job.id)
                pool_box[0].kill(job.worker_id)
            context.report_step(step)
        return job.request

    return run, attempts


def test_a_job_whose_worker_was_lost_runs_again_on_another_worker_and_ends_once():
    box, received = [], []
    run, attempts = _killed_once(box, {"lost"})
    pool = KillablePool(LocalPool([Worker(f"w{index}", run) for index in range(2)]))
    box.append(pool)
    queue = JobQueue(pool=pool, retries=2, receive=lambda job, result: received.append(job.id) or result.value)
    job = queue.submit("txt2img", "x", task_id="lost")
    fractions = []
    while not job.finished.is_set():
        fractions.append(job.progress.fraction())
        time.sleep(0.001)
    assert job.wait(1) == "x" and job.status == DONE and job.attempt == 1
    queue.shutdown()
    assert [job_id for job_id, _ in attempts] == ["lost", "lost"] and pool.kills == 1
    assert attempts[0][1] != attempts[1][1]  # not again on the worker that was just lost
    assert received == ["lost"]  # the head received (and would save) its result once
    assert all(later >= earlier for earlier, later in zip(fractions, fractions[1:], strict=False))


def test_an_image_whose_worker_was_lost_runs_again_and_the_batch_is_gathered_once():
    box, splitter = [], ListSplitter()
    run, attempts = _killed_once(box, {"batch#2"})
    pool = KillablePool(LocalPool([Worker(f"w{index}", run) for index in range(2)]))
    box.append(pool)
    queue = JobQueue(pool=pool, retries=1, splitter=splitter)
    job = queue.submit("txt2img", list(range(4)), task_id="batch")
    assert job.wait(10) == [0, 1, 2, 3] and splitter.gathered == [[0, 1, 2, 3]]
    queue.shutdown()
    assert sorted(job_id for job_id, _ in attempts) == ["batch#0", "batch#1", "batch#2", "batch#2", "batch#3"]
    lost_image_workers = [worker_id for job_id, worker_id in attempts if job_id == "batch#2"]
    assert lost_image_workers[0] != lost_image_workers[1]


def test_a_job_whose_only_worker_was_lost_runs_again_there():
    box = []
    run, attempts = _killed_once(box, {"lost"})
    pool = KillablePool(LocalPool([Worker("w0", run)]))
    box.append(pool)
    queue = JobQueue(pool=pool, retries=1)
    assert queue.submit("txt2img", "x", task_id="lost").wait(5) == "x"
    queue.shutdown()
    assert attempts == [("lost", "w0"), ("lost", "w0")]


def test_a_job_that_loses_its_worker_too_often_fails():
    box = []
    run, _ = _killed_once(box, {"doomed"})
    pool = KillablePool(LocalPool([Worker("w0", run)]))
    box.append(pool)
    queue = JobQueue(pool=pool, retries=0)
    job = queue.submit("txt2img", "x", task_id="doomed")
    with pytest.raises(WorkerLost):
        job.wait(5)
    assert queue.submit("txt2img", "next").wait(5) == "next"  # the queue goes on
    queue.shutdown()


class Switchable(Script):
    """An always-on script that acts per image unless its first argument turns it on (as ControlNet's units)."""

    def __init__(self, title, always=True, per_image=True):
        self._title, self._always, self._per_image = title, always, per_image

    def title(self):
        return self._title

    def show(self, is_img2img):
        return AlwaysVisible if self._always else True

    def api_defaults(self, is_img2img):
        return [False]

    def per_image(self, *args):
        return self._per_image and not args[0]


class Undeclared(Script):
    def title(self):
        return "Wildcards"

    def show(self, is_img2img):
        return AlwaysVisible


def test_scripts_that_keep_images_independent():
    request = Txt2ImgRequest(prompt="p", batch_size=2)
    quiet = LoadedScript(Switchable("Units"), "controlnet")
    runner = ScriptRunner([quiet, LoadedScript(Switchable("X/Y/Z plot", always=False), "builtin")], Callbacks())
    assert runner.runs_per_image("txt2img", request)
    assert runner.runs_per_image("txt2img", request.model_copy(update={"alwayson_scripts": {"units": [False]}}))
    assert not runner.runs_per_image("txt2img", request.model_copy(update={"alwayson_scripts": {"units": [True]}}))
    assert not runner.runs_per_image("txt2img", request.model_copy(update={"script_name": "x/y/z plot"}))
    assert not runner.runs_per_image("txt2img", request.model_copy(update={"script_name": "no such script"}))
    unknown = ScriptRunner([quiet, LoadedScript(Undeclared(), "an-a1111-extension")], Callbacks())
    assert not unknown.runs_per_image("txt2img", request)  # Script's default: it may act per batch
    hooked = Callbacks()
    hooked.image_saved.append(lambda params: None)
    assert not ScriptRunner([quiet], hooked).runs_per_image("txt2img", request)


def test_controlnet_keeps_a_batch_whole_only_with_an_enabled_unit():
    from sdweb.builtin_extensions.controlnet import ControlNet

    script = ControlNet(context=None, models=None)
    assert script.per_image({"enabled": False, "model": "x"}) and script.per_image()
    assert not script.per_image({"enabled": True, "model": "x"}, {"enabled": False})
