"""webui.sh end to end: root refusal, COMMANDLINE_ARGS honoured (Forge's and an extension's flags among them), the
restart loop.

Each test runs a throw-away copy of the launcher files (webui.sh, pyproject.toml), so the user's own
webui-user.sh in this checkout (say with COMMANDLINE_ARGS="--api") never changes what is tested, and nothing
(an install stamp, tmp/restart) is left in the checkout."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sdweb.testing.server import free_port, stop_process_group

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER_FILES = ("webui.sh", "pyproject.toml")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="webui.sh is for Linux/macOS")


def launcher_copy(tmp_path: Path) -> Path:
    """webui.sh and what it reads, copied into a folder of their own (without the user's webui-user.sh)."""
    folder = tmp_path / "launcher"
    folder.mkdir()
    for name in LAUNCHER_FILES:
        shutil.copy2(ROOT / name, folder / name)
    return folder


def _launcher_env(tmp_path, commandline_args: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CI")}
    env.update({
        "VENV_DIR": "-",  # use the interpreter running the tests
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH")))),  # this checkout's sdweb
        "COMMANDLINE_ARGS": commandline_args,
        "SD_WEBUI_RESTART": str(tmp_path / "restart-marker"),
        "TORCH_COMMAND": "definitely-not-run",
    })
    return env


def _get_json(url: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.skipif(os.geteuid() != 0, reason="the root check only triggers as root")
def test_refuses_root_without_f(tmp_path):
    result = subprocess.run(["bash", str(launcher_copy(tmp_path) / "webui.sh"), "--exit"],
                            env=_launcher_env(tmp_path, ""), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "must not be launched as root" in result.stdout


def test_commandline_args_and_restart_loop(tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    # a Forge user's flags and an installed A1111 extension's own flag start it as they start Forge / A1111
    extension = data_dir / "extensions" / "civitai-helper"
    extension.mkdir(parents=True)
    (extension / "preload.py").write_text(
        'def preload(parser):\n    parser.add_argument("--civitai-api-key", type=str, default=None)\n')
    args = (f"--port {port} --api --nowebui --data-dir {data_dir} --skip-install --api-server-stop "
            "--cuda-malloc --cuda-stream --always-offload-from-vram --civitai-api-key k3y")
    log_file = tmp_path / "launcher.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(["bash", str(launcher_copy(tmp_path) / "webui.sh"), "-f"],
                                   env=_launcher_env(tmp_path, args), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        flags = _get_json(f"http://127.0.0.1:{port}/sdapi/v1/cmd-flags")
        assert flags["port"] == port and flags["api"] is True and flags["data_dir"] == str(data_dir)
        assert flags["medvram"] is True and flags["cuda_malloc"] is True  # Forge's offload flag is --medvram
        assert flags["civitai_api_key"] == "<hidden>"  # the extension's parser read it; a key is not shown
        assert _get_json(f"http://127.0.0.1:{port}/internal/ping") == {}
        # "Apply and restart": the marker file, then the app exits; the launcher starts it again.
        (tmp_path / "restart-marker").write_text("")
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        assert children, "the launcher should run the app as a child process"
        for child in children:
            os.kill(int(child), signal.SIGINT)
        time.sleep(1)
        assert _get_json(f"http://127.0.0.1:{port}/internal/ping") == {}
        assert process.poll() is None
        assert not (tmp_path / "restart-marker").exists()
        # The API's restart route does the same, cleanly.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/sdapi/v1/server-restart", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        time.sleep(1)
        assert _get_json(f"http://127.0.0.1:{port}/internal/ping") == {}
        assert process.poll() is None
        stop_process_group(process, timeout=20)
        assert log_file.read_text(errors="replace").count("Restarting sdweb") == 2
    finally:
        stop_process_group(process, timeout=20)
        # shown by pytest when the test fails: what the launcher and the app said
        print("launcher output:\n" + log_file.read_text(errors="replace"))
