"""For tests and benchmarks that start a real sdweb server process: a free port, waiting until it answers,
stopping its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answers(url: str, process: subprocess.Popen, timeout: float = 120.0, **request_options) -> None:
    """Poll `url` until it answers (any status); fails when the process exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2, **request_options)
            return
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or too busy starting to answer
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)


def stop_process_group(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM to the server's process group (it runs with start_new_session=True), SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
