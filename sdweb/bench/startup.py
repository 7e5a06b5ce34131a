"""Process start to a usable server: `python -m sdweb --data-dir <fresh tmp> --port <free> --api` on the
built-in demo model.

Measured from Popen: the page at / answers HTTP 200; the API answers (/sdapi/v1/sd-models 200); the first
image is back (POST /sdapi/v1/txt2img, 64 px, 1 step: the checkpoint is loaded lazily by the first job, so this
includes the load); and the "Loaded <title> in X s" log line. Reference, interleaved: a bare
`python -c "import torch, diffusers, gradio"`, the floor any Python UI on these libraries pays.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from sdweb.bench.report import Row, SectionResult, median
from sdweb.config.environment import child_environment
from sdweb.testing.server import free_port, stop_process_group

PAGE_GOAL_SECONDS = 10.0
IMPORT_FLOOR = "import torch, diffusers, gradio"


def _wait_ok(url: str, deadline: float, data: bytes | None = None) -> bool:
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as response:
                if response.status == 200:
                    response.read()
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def start_once(timeout: float = 180.0) -> dict[str, Any]:
    """One fresh start; seconds from Popen to each milestone (None: not reached before the timeout)."""
    with tempfile.TemporaryDirectory(prefix="sdweb-start-") as tmp:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        process = subprocess.Popen([sys.executable, "-m", "sdweb", "--no-download-sd-model", "--data-dir", tmp, "--port", str(port), "--api"],
                                   env=child_environment(Path(tmp)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        marks: dict[str, float | None] = {"runtime_log": None, "serving_log": None, "page": None, "api": None,
                                          "first_image": None, "loaded_log": None}
        log_marks = {"runtime_log": " Runtime: ", "serving_log": "; open http://", "loaded_log": " Loaded "}
        log_lines: list[str] = []

        def read_log() -> None:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip()
                log_lines.append(line)
                for mark, needle in log_marks.items():
                    if marks[mark] is None and needle in line:
                        marks[mark] = time.monotonic() - started

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        deadline = started + timeout
        try:
            if _wait_ok(f"{base}/", deadline):
                marks["page"] = time.monotonic() - started
            if _wait_ok(f"{base}/sdapi/v1/sd-models", deadline):
                marks["api"] = time.monotonic() - started
            body = json.dumps({"prompt": "a cat", "steps": 1, "width": 64, "height": 64,
                               "sampler_name": "Euler"}).encode()
            if _wait_ok(f"{base}/sdapi/v1/txt2img", deadline, data=body):
                marks["first_image"] = time.monotonic() - started
        finally:
            stop_process_group(process)
            reader.join(timeout=5)
        marks_out: dict[str, Any] = dict(marks)
        marks_out["log_tail"] = log_lines[-5:]
        return marks_out


def import_floor_once() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", IMPORT_FLOOR], check=True, env=child_environment(Path(tempfile.gettempdir())),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def _median_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return median(present) if len(present) == len(values) and present else None


def run_startup(repeats: int) -> SectionResult:
    runs: list[dict[str, Any]] = []
    floors: list[float] = []
    for index in range(repeats):  # alternate which goes first
        if index % 2:
            floors.append(import_floor_once())
            runs.append(start_once())
        else:
            runs.append(start_once())
            floors.append(import_floor_once())
    floor = median(floors)
    page = _median_or_none([run["page"] for run in runs])
    rows = [
        Row("startup", "start -> 'Runtime:' log line (imports, state)",
            _median_or_none([run["runtime_log"] for run in runs]), "s"),
        Row("startup", "start -> 'open http://' log line (UI built)",
            _median_or_none([run["serving_log"] for run in runs]), "s"),
        Row("startup", "start -> page HTTP 200", page, "s", floor, f"<= {PAGE_GOAL_SECONDS:g} s",
            None if page is None else page <= PAGE_GOAL_SECONDS,
            note=f"reference: bare `python -c \"{IMPORT_FLOOR}\"`"),
        Row("startup", "start -> API answers", _median_or_none([run["api"] for run in runs]), "s", floor),
        Row("startup", "start -> 'Loaded' log line", _median_or_none([run["loaded_log"] for run in runs]), "s"),
        Row("startup", "start -> first image (load + 1 step)",
            _median_or_none([run["first_image"] for run in runs]), "s",
            note="the checkpoint loads lazily with the first job; this is 'checkpoint ready'"),
    ]
    return SectionResult("startup", rows, {"repeats": repeats, "runs": runs, "import_floor_seconds": floors})
