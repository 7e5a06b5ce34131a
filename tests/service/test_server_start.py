"""The README's promise: a fresh data folder serves the UI on the demo model, offline."""

import json
import os
import subprocess
import sys
import time
import urllib.request

from sdweb.models.demo import DEMO_TITLE
from sdweb.testing.server import free_port, stop_process_group


def _get(url: str, timeout: float = 120.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_fresh_data_dir_serves_ui_and_api_on_the_demo_model(tmp_path):
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    process = subprocess.Popen([sys.executable, "-m", "sdweb", "--no-download-sd-model", "--data-dir", str(tmp_path), "--port", str(port),
                                "--api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        page = _get(f"http://127.0.0.1:{port}/")
        assert b"<html" in page.lower()
        config = json.loads(_get(f"http://127.0.0.1:{port}/config"))
        values = [c["props"].get("value") for c in config["components"]
                  if c.get("props", {}).get("elem_id") == "sd_model_checkpoint"]
        assert values == [DEMO_TITLE]
        models = json.loads(_get(f"http://127.0.0.1:{port}/sdapi/v1/sd-models"))
        assert [m["title"] for m in models] == [DEMO_TITLE]
        for folder in ("models/Stable-diffusion", "models/Lora", "models/VAE", "embeddings", "outputs"):
            assert (tmp_path / folder).is_dir()
    finally:
        stop_process_group(process)
    log = process.stdout.read().decode()
    assert "demo" in log
