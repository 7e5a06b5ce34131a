"""Building the app state (what the API, the job queue and the first image need) does not import gradio: its
import costs seconds of every cold start and only the page needs it. Checked in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

from sdweb.testing.tiny import write_tiny

SCRIPT = """
import sys
from sdweb.cli import parse_options
from sdweb.state import build_app_state
state = build_app_state(parse_options(["--data-dir", sys.argv[1], "--no-hashing"], {}))
titles = [entry.name for entry in state.registry.checkpoints]
state.queue.shutdown()
print("CHECKPOINTS", titles)
print("GRADIO", sorted(name for name in sys.modules if name == "gradio" or name.startswith("gradio.")))
"""


def test_building_the_app_state_does_not_import_gradio(tmp_path):
    write_tiny("sd1", tmp_path / "data" / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data")], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("CHECKPOINTS", "GRADIO")))
    assert lines["CHECKPOINTS"] == "['tiny.safetensors']"  # the state really was built on the data dir
    assert lines["GRADIO"] == "[]"
