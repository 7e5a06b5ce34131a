"""Several local workers sharing the CPU (--device-ids 0,1): real tiny models, files written once each."""

import pytest

from sdweb.cli import parse_options
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.jobs import DONE
from sdweb.generation.service import SaveOptions
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    for name, seed in (("alpha", 1), ("beta", 2)):
        write_tiny("sd1", data / "models" / "Stable-diffusion" / f"{name}.safetensors", seed=seed)
    app_state = build_app_state(parse_options(["--data-dir", str(data), "--device-ids", "0,1"], {}))
    yield app_state
    app_state.queue.shutdown()


def test_two_workers_run_interleaved_checkpoints_with_few_loads_and_one_file_each(state):
    titles = [entry.title for entry in state.registry.checkpoints]
    assert len(state.queue.pool.workers()) == 2
    jobs = []
    for index in range(8):
        request = Txt2ImgRequest(prompt=f"a cat {index}", seed=100 + index, **SMALL,
                                 override_settings={"sd_model_checkpoint": titles[index % 2]})
        jobs.append(state.submit("txt2img", request, SaveOptions(save_samples=True, save_grid=False)))
    results = [job.wait(300) for job in jobs]
    assert all(job.status == DONE for job in jobs)
    paths = [path for result in results for path in result.saved_paths]
    assert len(paths) == 8 and len(set(paths)) == 8 and all(path.is_file() for path in paths)
    for index, result in enumerate(results):
        assert f"Seed: {100 + index}" in result.infotexts[0]
        assert titles[index % 2].split(" ")[0].rsplit(".", 1)[0] in result.infotexts[0]
    infos = state.queue.pool.workers()
    assert sum(info.loads for info in infos) <= 3  # affinity: each checkpoint stays on one worker (+1 spread)
    assert {job.worker_id for job in jobs} == {"local-0", "local-1"}


def test_same_seed_gives_the_same_image_on_either_worker(state):
    request = Txt2ImgRequest(prompt="a dog", seed=7, **SMALL)
    no_save = SaveOptions(save_samples=False, save_grid=False)
    first, second = (runtime.service.txt2img(request, None, no_save) for runtime in state.runtimes)
    assert first.images[0].tobytes() == second.images[0].tobytes()


def test_workers_and_queue_routes(state):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from sdweb.api.a1111.app import mount_api

    app = FastAPI()
    mount_api(app, state)
    with TestClient(app) as client:
        response = client.post("/sdapi/v1/txt2img", json={"prompt": "a fox", "seed": 3, **SMALL})
        assert response.status_code == 200
        workers = client.get("/sdweb/v1/workers").json()
        assert [worker["id"] for worker in workers] == ["local-0", "local-1"]
        assert all(worker["device"] == "cpu" and worker["busy"] is False for worker in workers)
        assert any(worker["loaded"] for worker in workers)
        queue = client.get("/sdweb/v1/queue").json()
        assert queue["waiting"] == [] and queue["running"] == []
        last = queue["finished"][-1]
        assert last["status"] == "done" and last["worker"] in {"local-0", "local-1"} and last["progress"] == 1.0
        assert last["workers"] == [last["worker"]] and last["images"] == 0  # one image: not split
        assert {file["name"] for file in workers[0]["checkpoints"]} == {"alpha.safetensors", "beta.safetensors"}


def test_a_batch_splits_over_both_workers_and_the_head_writes_it_as_one_batch(state):
    """batch_size 2 x n_iter 2: four per-image parts on both workers, gathered in order. Seeds, infotexts, file
    names, params.txt and the grid are the unsplit batch's; each image is the one its seed gives alone (a batch's
    batched model calls round the last float bits differently: at most 1/255 from the unsplit batch)."""
    import numpy as np
    from PIL import Image

    from sdweb.generation.received import NO_SAVE

    request = Txt2ImgRequest(prompt="a heron", seed=500, batch_size=2, n_iter=2, **SMALL)
    job = state.submit("txt2img", request, SaveOptions(save_samples=True, save_grid=True))
    result = job.wait(300)
    assert job.status == DONE and len(job.parts) == 4
    assert {part.worker_id for part in job.parts} == {"local-0", "local-1"}
    unsplit = state.runtimes[0].service.txt2img(request, None, NO_SAVE)
    assert result.seeds == unsplit.seeds == [500, 501, 502, 503]
    assert result.infotexts == unsplit.infotexts and result.info["all_seeds"] == unsplit.info["all_seeds"]
    for image, twin in zip(result.images, unsplit.images, strict=True):
        assert np.abs(np.asarray(image, int) - np.asarray(twin, int)).max() <= 1
    alone = state.runtimes[1].service.txt2img(request.model_copy(update={"seed": 502, "batch_size": 1,
                                                                         "n_iter": 1}), None, NO_SAVE)
    assert alone.images[0].tobytes() == result.images[2].tobytes() and alone.infotexts[0] == result.infotexts[2]
    samples, grid = result.saved_paths[:4], result.saved_paths[4]
    assert [path.name.split("-", 1)[1] for path in samples] == ["500.png", "501.png", "502.png", "503.png"]
    assert len({int(path.name.split("-")[0]) for path in samples}) == 4  # four counters, one file each
    for path, infotext in zip(samples, result.infotexts, strict=True):
        assert Image.open(path).info["parameters"] == infotext
    assert Image.open(grid).size == unsplit.grid.size and "grids" in str(grid.parent)
    assert state.paths.params_file.read_text(encoding="utf-8") == result.infotexts[0]


def test_a_checkpoint_no_worker_has_is_refused_naming_the_node_and_the_file(state):
    """Workers on another machine report the files of their own models folder; the head refuses a job whose
    checkpoint none of them has (by hash) and sends one that some have only to those."""
    import dataclasses

    import pytest

    from sdweb.core.errors import NotFoundError
    from sdweb.generation.jobs import JobQueue
    from sdweb.generation.pool.local import LocalPool
    from sdweb.generation.pool.presence import checkpoint_file
    from sdweb.generation.pool.worker import Worker

    alpha, beta = (state.registry.find_checkpoint(name) for name in ("alpha.safetensors", "beta.safetensors"))
    local = {info.id: info for info in state.queue.pool.workers()}
    assert {file.name for file in local["local-0"].checkpoints} >= {"alpha.safetensors", "beta.safetensors"}

    def remote(worker_id, files):
        return Worker(worker_id, lambda job, context: job.worker_id, node="node-b",
                      checkpoints=lambda: tuple(checkpoint_file(entry) for entry in files))

    queue = JobQueue(pool=LocalPool([remote("ray-0", [beta]), remote("ray-1", [])]))
    elsewhere = dataclasses.replace(state, queue=queue)
    try:
        request = Txt2ImgRequest(prompt="x", override_settings={"sd_model_checkpoint": alpha.title}, **SMALL)
        with pytest.raises(NotFoundError, match=r"alpha\.safetensors .*node-b \(ray-0, ray-1\)"):
            elsewhere.submit("txt2img", request, SaveOptions())
        assert queue.pending() == [] and queue.finished() == []  # nothing queued
        on_beta = elsewhere.submit("txt2img", request.model_copy(update={
            "override_settings": {"sd_model_checkpoint": beta.title}}), SaveOptions())
        assert on_beta.workers_allowed == frozenset({"ray-0"}) and on_beta.wait(10) == "ray-0"
    finally:
        queue.shutdown()
