"""What A1111 extensions get for `import subprocess`: the real module, except that a pip run
(`[sys.executable, "-m", "pip", ...]`, or `pip ...`) through `run`, `call`, `check_call` or `check_output` goes
through sdweb's pip guard (sdweb.extensions.pip_guard.run_pip_for_extension), as `launch.run_pip` does.

Extensions often start pip themselves (sd-dynamic-prompts' install.py does). Under the guard's PIP_CONSTRAINT such
a pip would only fail; through the guard a conflict is refused with a message naming the package, and a
requirement whose extras conflict (dynamicprompts[magicprompt] needs transformers<5) is installed without them.
Every other command, and `Popen`, is the real subprocess's (a pip started with Popen is still held by
PIP_CONSTRAINT).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdweb.extensions.pip_guard import RequirementConflict, run_pip_for_extension

CalledProcessError = subprocess.CalledProcessError
CompletedProcess = subprocess.CompletedProcess
PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT


def pip_arguments(command: Any, shell: bool = False) -> list[str] | None:
    """pip's own arguments when `command` runs pip (`python -m pip ...`, `pip ...`), else None."""
    if isinstance(command, str | bytes):
        if not shell and " " not in str(command):
            return None
        try:
            args = shlex.split(command.decode() if isinstance(command, bytes) else command)
        except ValueError:
            return None
    elif isinstance(command, Sequence):
        args = [str(arg) for arg in command]
    else:
        return None
    if len(args) >= 3 and Path(args[0]).name.startswith("python") and args[1:3] == ["-m", "pip"]:
        return args[3:] or None
    if len(args) >= 2 and Path(args[0]).name in ("pip", "pip3"):
        return args[1:]
    return None


def _run_pip(pip_args: list[str], capture: bool, cwd: Any) -> tuple[int, str]:
    """(exit code, pip's output) of a guarded pip run; pip's output is printed unless captured."""
    from sdweb.compat.a1111.launch import extension_name

    lines: list[str] = []

    def show(line: str) -> None:
        lines.append(line)
        if not capture:
            print(line, flush=True)

    try:
        code = run_pip_for_extension(extension_name(), pip_args, python=sys.executable, progress=show,
                                     cwd=Path(cwd) if cwd else None)
    except RequirementConflict as refused:
        show(refused.message)
        code = 1
    return code, "\n".join(lines) + ("\n" if lines else "")


def _captures(kwargs: dict[str, Any]) -> bool:
    return bool(kwargs.get("capture_output")) or kwargs.get("stdout") is PIPE


def _output(text: str, kwargs: dict[str, Any]) -> str | bytes:
    as_text = kwargs.get("text") or kwargs.get("universal_newlines") or kwargs.get("encoding")
    return text if as_text else text.encode()


def run(args: Any, *popenargs: Any, **kwargs: Any) -> subprocess.CompletedProcess:
    pip_args = pip_arguments(args, bool(kwargs.get("shell")))
    if pip_args is None:
        return subprocess.run(args, *popenargs, **kwargs)
    code, text = _run_pip(pip_args, _captures(kwargs), kwargs.get("cwd"))
    output = _output(text, kwargs) if _captures(kwargs) else None
    if kwargs.get("check") and code:
        raise CalledProcessError(code, args, output)
    return CompletedProcess(args, code, output, _output("", kwargs) if kwargs.get("capture_output") else None)


def call(args: Any, *popenargs: Any, **kwargs: Any) -> int:
    pip_args = pip_arguments(args, bool(kwargs.get("shell")))
    if pip_args is None:
        return subprocess.call(args, *popenargs, **kwargs)
    return _run_pip(pip_args, False, kwargs.get("cwd"))[0]


def check_call(args: Any, *popenargs: Any, **kwargs: Any) -> int:
    code = call(args, *popenargs, **kwargs)
    if code:
        raise CalledProcessError(code, args)
    return 0


def check_output(args: Any, *popenargs: Any, **kwargs: Any) -> Any:
    pip_args = pip_arguments(args, bool(kwargs.get("shell")))
    if pip_args is None:
        return subprocess.check_output(args, *popenargs, **kwargs)
    code, text = _run_pip(pip_args, True, kwargs.get("cwd"))
    if code:
        raise CalledProcessError(code, args, _output(text, kwargs))
    return _output(text, kwargs)


def __getattr__(name: str) -> Any:
    return getattr(subprocess, name)
