"""Process environment the app needs before gradio, huggingface_hub or diffusers are imported. The offline and
no-telemetry defaults themselves are `sdweb.startup_environment` (set when sdweb is imported, before torch)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sdweb import startup_environment


def apply_app_environment(tmp_dir: Path) -> None:
    """No Gradio analytics whatever the user set, and Gradio's file cache inside our own tmp folder (not the
    system tmp)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    gradio_tmp = tmp_dir / "gradio"
    gradio_tmp.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GRADIO_TEMP_DIR", str(gradio_tmp))


def child_environment(tmp_dir: Path) -> dict[str, str]:
    """The environment of a child process sdweb starts (the benchmarks' whole-process runs): this one's, with the
    offline and no-telemetry values forced and Gradio's files under `tmp_dir`."""
    return {**os.environ, **startup_environment(sys.platform), "GRADIO_TEMP_DIR": str(tmp_dir / "gradio")}
