"""Running a command for an extension (git, pip, install.py): output streamed line by line, a timeout that kills
the whole process group, secrets redacted from what is shown."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from sdweb.core.errors import UserError
from sdweb.extensions.giturl import redact_text

Progress = Callable[[str], None]
OUTPUT_TAIL_LINES = 20


def kill_process_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()


def run_streamed(command: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float, progress: Progress,
                 secrets: tuple[str, ...] = ()) -> tuple[int, list[str]]:
    """Run `command`, passing each output line (stdout and stderr) to `progress` on this thread.
    Returns (exit code, last lines); raises UserError when it runs past `timeout` (it is killed)."""
    try:
        process = subprocess.Popen(list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                                   errors="replace", start_new_session=os.name == "posix")
    except OSError as error:
        raise UserError(f"Cannot run {Path(command[0]).name}: {error.strerror or error}.", code="command_missing",
                        hint="Check that it is installed and on PATH.") from error
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        kill_process_group(process)

    timer = threading.Timer(timeout, on_timeout)
    timer.daemon = True
    timer.start()
    tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            line = redact_text(raw.rstrip("\r\n"), secrets)
            if line:
                tail.append(line)
                progress(line)
        code = process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:
            kill_process_group(process)
            process.wait()
    if timed_out.is_set():
        raise UserError(f"{Path(command[0]).name} did not finish within {timeout:.0f} s and was stopped.",
                        code="command_timeout", hint="\n".join(tail))
    return code, list(tail)
