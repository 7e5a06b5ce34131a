"""Load on a real server process: txt2img jobs from 10 threads over HTTP while another thread polls
/sdapi/v1/progress. All complete, one file per job on disk with its own prompt token in the infotext, the
queue runs them first-in first-out (its own submission/start/finish times, read back through a probe route),
and the server's RSS before/after is reported. 12 jobs in the default run, 50 with -m slow."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image
from reliability_helpers import ServerProcess

from sdweb.testing.tiny import write_tiny

THREADS = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    write_tiny("sd1", root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    process = ServerProcess(root)
    try:
        process.wait_ready()
        yield process, root
    finally:
        process.stop()


def _job(base: str, index: int) -> tuple[int, float, requests.Response]:
    body = {"prompt": f"a lighthouse, token{index:03d}x", "seed": 1000 + index, "width": 64, "height": 64,
            "steps": 2, "sampler_name": "Euler", "save_images": True, "force_task_id": f"task(load-{index:03d})"}
    return index, time.monotonic(), requests.post(f"{base}/sdapi/v1/txt2img", json=body, timeout=600)


def _run_load(server, jobs: int, summary) -> None:
    process, root = server
    base = process.base
    warm = requests.post(f"{base}/sdapi/v1/txt2img", json={"prompt": "warm up", "width": 64, "height": 64,
                                                            "steps": 2}, timeout=600)
    assert warm.status_code == 200, warm.text[:500]
    rss_before = process.rss_kib()
    outputs = root / "outputs" / "txt2img-images"
    existing = set(outputs.rglob("*.png")) if outputs.exists() else set()
    seen: list[str] = []
    polls = [0]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            state = requests.get(f"{base}/sdapi/v1/progress?skip_current_image=true", timeout=30).json()["state"]
            polls[0] += 1
            if state["job"] and (not seen or seen[-1] != state["job"]):
                seen.append(state["job"])
            time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda i: _job(base, i), range(jobs)))
    seconds = time.monotonic() - started
    stop.set()
    poller.join(30)
    assert [a.status_code for _, _, a in answers] == [200] * jobs, [a.text[:200] for _, _, a in answers if not a.ok]
    rss_after = process.rss_kib()

    files = sorted(set(outputs.rglob("*.png")) - existing)
    assert len(files) == jobs, f"{len(files)} files for {jobs} jobs"
    tokens = set()
    for path in files:
        with Image.open(path) as image:
            image.load()
            infotext = image.info["parameters"]
        token = infotext.split("token", 1)[1][:3]
        assert f"Seed: {1000 + int(token)}," in infotext, (path.name, infotext)
        tokens.add(int(token))
    assert tokens == set(range(jobs)), "every job's own prompt is in exactly one file"

    ids = ",".join(f"task(load-{i:03d})" for i in range(jobs))
    records = requests.get(f"{base}/probe/jobs", params={"ids": ids}, timeout=30).json()
    assert len(records) == jobs and all(r["status"] == "done" for r in records)
    by_submission = [r["id"] for r in sorted(records, key=lambda r: r["submitted"])]
    assert [r["id"] for r in sorted(records, key=lambda r: r["started"])] == by_submission, "not FIFO"
    assert [r["id"] for r in sorted(records, key=lambda r: r["finished"])] == by_submission, "not FIFO"
    observed = [job for job in seen if job.startswith("task(load-")]
    assert observed == [job for job in by_submission if job in observed], "/progress saw them out of order"
    growth = 100.0 * (rss_after - rss_before) / rss_before
    summary("load", f"{jobs}/{jobs} txt2img from {THREADS} threads in {seconds:.1f} s, {len(files)} files with "
                    f"their own infotext, FIFO by the queue's submission order (and {len(observed)} jobs seen in "
                    f"order by {polls[0]} /progress polls), RSS {rss_before // 1024} -> {rss_after // 1024} MiB "
                    f"({growth:+.1f}%)")


def test_load_fast(server, summary):
    _run_load(server, 12, summary)


@pytest.mark.slow
def test_load_50_jobs(server, summary):
    _run_load(server, 50, summary)

