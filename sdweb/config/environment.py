"""Process environment the app needs before gradio, huggingface_hub or diffusers are imported."""

from __future__ import annotations

import os
from pathlib import Path


def apply_app_environment(tmp_dir: Path) -> None:
    """Offline, no analytics, and Gradio's file cache inside our own tmp folder (not the system tmp)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    gradio_tmp = tmp_dir / "gradio"
    gradio_tmp.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GRADIO_TEMP_DIR", str(gradio_tmp))
