"""Building the app state and running the first job (what the API, the job queue and the first image need)
import neither gradio nor fastapi: their imports cost seconds of every cold start and only the server and the
page need them. The always-on ControlNet gives its arguments' defaults without building its UI. Checked in a
fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sdweb.testing.tiny import write_tiny

SCRIPT = """
import sys
from sdweb.cli import parse_options
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.state import build_app_state

def loaded(*packages):
    return sorted(name for name in sys.modules if name.split(".")[0] in packages)

state = build_app_state(parse_options(["--data-dir", sys.argv[1], "--no-hashing"], {}))
titles = [entry.name for entry in state.registry.checkpoints]
print("CHECKPOINTS", titles)
print("STATE", loaded("gradio", "fastapi"))
request = Txt2ImgRequest(prompt="a cat", steps=1, width=64, height=64)
bound = [script.title for script in state.service.scripts.bind("txt2img", request).scripts]
result = state.service.txt2img(request, None, SaveOptions(save_samples=False, save_grid=False))
state.queue.shutdown()
print("IMAGES", len(result.images), "ControlNet" in bound)
print("JOB", loaded("gradio", "fastapi"))
"""


@pytest.mark.slow  # CI time (30 min for everything); ./run-tests.sh -m slow runs it
def test_the_app_state_and_the_first_job_import_neither_gradio_nor_fastapi(tmp_path):
    write_tiny("sd1", tmp_path / "data" / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data")], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines()
                 if line.startswith(("CHECKPOINTS", "STATE", "IMAGES", "JOB")))
    assert lines["CHECKPOINTS"] == "['tiny.safetensors']"  # the state really was built on the data dir
    assert lines["IMAGES"] == "1 True"  # one image, with the always-on ControlNet bound
    assert lines["STATE"] == "[]"
    assert lines["JOB"] == "[]"
