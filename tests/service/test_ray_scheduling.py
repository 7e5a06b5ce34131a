"""--workers ray with four actors on one box (fake GPUs; the policy still picks the CPU), real tiny models:
20 jobs finish once each in FIFO start order under --scheduling fifo; 4 checkpoints x 20 interleaved jobs load
at most 8 times under affinity (the same checks as tests/unit/test_worker_pool.py, through Ray)."""

import pytest

ray = pytest.importorskip("ray")

from sdweb.cli import parse_options  # noqa: E402
from sdweb.core.requests import Txt2ImgRequest  # noqa: E402
from sdweb.generation.jobs import DONE  # noqa: E402
from sdweb.generation.service import SaveOptions  # noqa: E402
from sdweb.state import build_app_state  # noqa: E402
from sdweb.testing.tiny import write_tiny  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # four actors each import torch and load: minutes on 2 cores

SMALL = {"width": 64, "height": 64, "steps": 1, "sampler_name": "Euler"}
SAVE = SaveOptions(save_samples=True, save_grid=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    for index in range(4):
        write_tiny("sd1", folder / "models" / "Stable-diffusion" / f"model{index}.safetensors", seed=index + 1)
    return folder


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _state(data, scheduling):
    return build_app_state(parse_options(["--data-dir", str(data), "--workers", "ray", "--device-ids", "0,1,2,3",
                                          "--scheduling", scheduling, "--no-hashing"], {}))


def test_twenty_jobs_over_four_ray_workers_finish_once_each_in_fifo_start_order(cluster, data):
    state = _state(data, "fifo")
    try:
        title = state.registry.checkpoints[0].title
        jobs = [state.submit("txt2img", Txt2ImgRequest(prompt=f"a boat {index}", seed=index, **SMALL,
                                                       override_settings={"sd_model_checkpoint": title}), SAVE)
                for index in range(20)]
        results = [job.wait(600) for job in jobs]
    finally:
        state.queue.shutdown()
    assert all(job.status == DONE for job in jobs)
    started = [job.progress.started_at for job in jobs]
    assert started == sorted(started)  # taken in the order they were submitted
    paths = [path for result in results for path in result.saved_paths]
    assert len(paths) == 20 and len(set(paths)) == 20 and all(path.is_file() for path in paths)
    assert len({job.worker_id for job in jobs}) > 1


def test_four_checkpoints_times_twenty_interleaved_jobs_load_at_most_eight_times_under_affinity(cluster, data):
    state = _state(data, "affinity")
    try:
        titles = sorted(entry.title for entry in state.registry.checkpoints)
        jobs = [state.submit("txt2img", Txt2ImgRequest(prompt="a kite", seed=index, **SMALL,
                                                       override_settings={"sd_model_checkpoint": titles[index % 4]}),
                             SaveOptions(save_samples=False, save_grid=False))
                for index in range(80)]
        for job in jobs:
            job.wait(900)
        infos = state.queue.pool.workers()
        loads = sum(info.loads for info in infos)
    finally:
        state.queue.shutdown()
    assert all(job.status == DONE for job in jobs)
    assert 4 <= loads <= 8, [(info.id, info.loads, info.jobs_done) for info in infos]
