"""Shared by the reliability tests: a real server process on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from sdweb.testing.server import free_port, stop_process_group

HERE = Path(__file__).parent


class ServerProcess:
    """A real sdweb server process (through tests/reliability/probe_server.py, which adds one read-only
    route listing the queue's job timestamps) on a free port."""

    def __init__(self, data: Path, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GRADIO_TEMP_DIR": str(data / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_OFFLINE": "1"}
        self.log = (data / "server.log").open("ab")
        self.process = subprocess.Popen([sys.executable, str(HERE / "probe_server.py"), "--nowebui", "--no-download-sd-model", "--data-dir",
                                         str(data), "--port", str(self.port), *extra], env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.base}/internal/ping", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            assert self.process.poll() is None, "the server exited during start"
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.3)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        stop_process_group(self.process)
        self.log.close()
