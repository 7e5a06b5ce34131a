"""A checkpoint on no worker (by hash) is refused naming the nodes and the file; a checkpoint on some workers
runs only there."""

import pytest

from sdweb.core.errors import NotFoundError
from sdweb.generation.jobs import JobQueue
from sdweb.generation.pool.local import LocalPool
from sdweb.generation.pool.messages import CheckpointFile, WorkerInfo
from sdweb.generation.pool.presence import require_on_a_worker, same_file, workers_with
from sdweb.generation.pool.scheduler import Scheduler
from sdweb.generation.pool.worker import Worker

ALPHA = CheckpointFile("alpha.safetensors", "a" * 64, "1111aaaa")


@pytest.mark.parametrize(("present", "expected"), [
    (CheckpointFile("renamed.safetensors", "a" * 64, "1111aaaa"), True),  # another name, same file
    (CheckpointFile("alpha.safetensors", "b" * 64, "1111aaaa"), False),  # sha256 decides over the legacy hash
    (CheckpointFile("other.safetensors", None, "1111aaaa"), True),  # not hashed yet there: the legacy hash
    (CheckpointFile("alpha.safetensors", None, "2222bbbb"), False),  # same name, another file
])
def test_same_file_by_hash(present, expected):
    assert same_file(ALPHA, present) is expected


def test_diffusers_folders_match_by_name():
    folder = CheckpointFile("sd15-diffusers", None, "")
    assert same_file(folder, CheckpointFile("sd15-diffusers", None, ""))
    assert not same_file(folder, CheckpointFile("other", None, ""))


def _info(worker_id, node, files):
    return WorkerInfo(id=worker_id, node=node, device="cuda:0", checkpoints=files)


def test_a_checkpoint_on_no_worker_names_the_nodes_and_the_file():
    workers = [_info("ray-0", "node-a", (CheckpointFile("beta.safetensors", "c" * 64, "3333cccc"),)),
               _info("ray-1", "node-b", ()), _info("ray-2", "node-b", ())]
    with pytest.raises(NotFoundError) as raised:
        require_on_a_worker(ALPHA, workers)
    error = raised.value
    assert error.code == "checkpoint_not_on_workers" and error.status_code == 404
    assert "alpha.safetensors" in error.message and "sha256 aaaaaaaaaa" in error.message
    assert "node-a (ray-0); node-b (ray-1, ray-2)" in error.message and "node-a, node-b" in error.hint


def test_a_checkpoint_on_some_workers_runs_only_there():
    workers = [_info("ray-0", "node-a", (ALPHA,)), _info("ray-1", "node-b", ()), _info("w", "test", None)]
    assert require_on_a_worker(ALPHA, workers) == frozenset({"ray-0", "w"})
    assert [info.id for info in workers_with(ALPHA, workers)] == ["ray-0", "w"]
    assert require_on_a_worker(ALPHA, [workers[0], workers[2]]) is None  # all have it: any worker


def test_the_queue_gives_a_job_only_to_the_workers_allowed():
    pool = LocalPool([Worker(f"w{index}", lambda job, context: job.worker_id) for index in range(3)])
    for mode in ("fifo", "affinity"):
        queue = JobQueue(pool=pool, scheduler=Scheduler(mode))
        jobs = [queue.submit("txt2img", index, checkpoint="alpha", workers_allowed=frozenset({"w2"}))
                for index in range(6)]
        free = [queue.submit("txt2img", index) for index in range(6)]
        assert {job.wait(10) for job in jobs} == {"w2"}
        assert all(job.wait(10) in {"w0", "w1", "w2"} for job in free)
        queue.shutdown()
