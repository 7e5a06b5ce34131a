"""--workers ray on one box with fake GPUs (the policy still picks the CPU): same images as local, files
written once by the head, interrupt, progress from the actors."""

import threading
import time

import pytest

ray = pytest.importorskip("ray")

from sdweb.cli import parse_options  # noqa: E402
from sdweb.core.requests import Txt2ImgRequest  # noqa: E402
from sdweb.generation.jobs import DONE, INTERRUPTED, JobInterrupted  # noqa: E402
from sdweb.generation.service import SaveOptions  # noqa: E402
from sdweb.state import build_app_state  # noqa: E402
from sdweb.testing.tiny import write_tiny  # noqa: E402

pytestmark = pytest.mark.ray

SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler"}
SAVE = SaveOptions(save_samples=True, save_grid=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    for name, seed in (("alpha", 1), ("beta", 2)):
        write_tiny("sd1", folder / "models" / "Stable-diffusion" / f"{name}.safetensors", seed=seed)
    return folder


@pytest.fixture(scope="module")
def ray_state(data):
    ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, log_to_driver=False)
    state = build_app_state(parse_options(["--data-dir", str(data), "--workers", "ray", "--device-ids", "0,1"], {}))
    yield state
    state.queue.shutdown()
    ray.shutdown()


def test_actors_report_as_workers(ray_state):
    infos = ray_state.queue.pool.workers()
    assert [info.id for info in infos] == ["ray-0", "ray-1"]
    assert all(info.device == "cpu" and not info.busy for info in infos)
    assert len({info.extra["pid"] for info in infos}) == 2
    for info in infos:  # each actor reports the files of its own models folder (matched by hash at submit)
        assert {file.name for file in info.checkpoints} == {"alpha.safetensors", "beta.safetensors"}
    assert len(ray_state.runtimes) == 1  # the head's own (saves, splits); the actors hold the models


def test_same_seed_gives_byte_identical_png_on_local_and_ray(ray_state, data):
    request = Txt2ImgRequest(prompt="a lighthouse", seed=42, **SMALL)
    from_ray = ray_state.submit("txt2img", request, SAVE).wait(300)
    local = build_app_state(parse_options(["--data-dir", str(data)], {}))
    try:
        from_local = local.submit("txt2img", request, SAVE).wait(300)
    finally:
        local.queue.shutdown()
    assert from_ray.infotexts == from_local.infotexts
    assert from_ray.images[0].tobytes() == from_local.images[0].tobytes()
    ray_file, local_file = from_ray.saved_paths[0], from_local.saved_paths[0]
    assert ray_file != local_file and ray_file.read_bytes() == local_file.read_bytes()


def test_jobs_finish_once_each_with_one_file_written_by_the_head(ray_state):
    titles = [entry.title for entry in ray_state.registry.checkpoints]
    jobs = [ray_state.submit("txt2img", Txt2ImgRequest(prompt=f"a boat {index}", seed=index, **SMALL,
                                                       override_settings={"sd_model_checkpoint": titles[index % 2]}),
                             SAVE) for index in range(8)]
    results = [job.wait(300) for job in jobs]
    assert all(job.status == DONE for job in jobs)
    paths = [path for result in results for path in result.saved_paths]
    assert len(set(paths)) == 8 and all(path.is_file() for path in paths)
    assert {job.worker_id for job in jobs} == {"ray-0", "ray-1"}
    assert sum(info.loads for info in ray_state.queue.pool.workers()) <= 3


def test_interrupt_stops_a_ray_job_and_progress_arrives(ray_state):
    request = Txt2ImgRequest(prompt="a storm", seed=1, **{**SMALL, "steps": 150})
    job = ray_state.submit("txt2img", request, SAVE)
    deadline = time.monotonic() + 120
    while job.progress.sampling_step < 2:
        assert time.monotonic() < deadline and not job.finished.is_set()
        time.sleep(0.02)
    seen = job.progress.sampling_step
    asked = time.monotonic()
    threading.Thread(target=ray_state.queue.interrupt, args=(job.id,)).start()
    result = job.wait(60)  # as A1111: an interrupted batch still returns what it had
    stopped_after = time.monotonic() - asked
    assert result.interrupted and job.progress.sampling_step < 150 and seen >= 2
    assert stopped_after < 10


def test_interrupt_of_a_waiting_job_never_reaches_a_worker(ray_state):
    blocker = ray_state.submit("txt2img", Txt2ImgRequest(prompt="x", seed=1, **{**SMALL, "steps": 40}), SAVE)
    others = [ray_state.submit("txt2img", Txt2ImgRequest(prompt="y", seed=2, **SMALL), SAVE) for _ in range(3)]
    assert ray_state.queue.interrupt(others[-1].id)
    with pytest.raises(JobInterrupted):
        others[-1].wait(5)
    assert others[-1].status == INTERRUPTED and others[-1].worker_id is None
    for job in (blocker, *others[:-1]):
        job.wait(300)


def test_a_split_batch_comes_back_as_pngs_and_the_head_writes_it_once(ray_state):
    request = Txt2ImgRequest(prompt="a kite", seed=900, batch_size=2, n_iter=2, **SMALL)
    job = ray_state.submit("txt2img", request, SaveOptions(save_samples=True, save_grid=True))
    result = job.wait(300)
    assert job.status == DONE and {part.worker_id for part in job.parts} == {"ray-0", "ray-1"}
    assert result.seeds == [900, 901, 902, 903] and len(result.images) == 4
    assert all(f"Seed: {seed}," in text for seed, text in zip(result.seeds, result.infotexts, strict=True))
    assert len(result.saved_paths) == 5 and len(set(result.saved_paths)) == 5  # four images and the grid
    assert all(path.is_file() for path in result.saved_paths)


@pytest.mark.slow  # ~2 min on 2 cores: the restarted actor imports torch and diffusers and loads again
def test_a_sigkilled_actor_mid_job_gives_the_job_once_with_progress_never_going_backwards(ray_state, data):
    import os
    import signal

    files_before = set(data.rglob("*.png"))
    request = Txt2ImgRequest(prompt="a crash", seed=7, **{**SMALL, "steps": 60})
    job = ray_state.submit("txt2img", request, SAVE)
    deadline = time.monotonic() + 120
    while job.progress.sampling_step < 3:
        assert time.monotonic() < deadline and not job.finished.is_set()
        time.sleep(0.01)
    pid = {info.id: info.extra["pid"] for info in ray_state.queue.pool.workers()}[job.worker_id]
    os.kill(pid, signal.SIGKILL)
    fractions = []
    while not job.finished.is_set():
        fractions.append(job.progress.fraction())
        time.sleep(0.005)
    result = job.wait(0)
    assert job.status == DONE and set(data.rglob("*.png")) - files_before == set(result.saved_paths)
    assert len(result.saved_paths) == 1
    assert all(later >= earlier for earlier, later in zip(fractions, fractions[1:], strict=False))
    assert pid not in {info.extra["pid"] for info in ray_state.queue.pool.workers()}  # the actor was restarted
    again = ray_state.submit("txt2img", Txt2ImgRequest(prompt="a crash", seed=7, **SMALL), SAVE).wait(300)
    assert len(again.saved_paths) == 1 and again.saved_paths[0] != result.saved_paths[0]
