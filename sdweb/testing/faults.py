"""Faults injected by tests at the OS-call level: a disk that is full for the files inside one folder."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _file_of(handle: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{handle}")  # Linux; elsewhere no file is "inside"
    except OSError:
        return ""


@contextlib.contextmanager
def disk_full(folder: Path, monkeypatch: Any) -> Iterator[None]:
    """While active, os.write and os.fsync on a file inside `folder` fail with ENOSPC, as on a full disk (a
    real full disk fails the write, or the fsync for data the kernel had accepted). `monkeypatch` is pytest's."""
    real_write, real_fsync = os.write, os.fsync
    prefix = str(Path(folder).resolve()) + os.sep

    def full(handle: int) -> bool:
        return _file_of(handle).startswith(prefix)

    def write(handle: int, data: Any) -> int:
        if full(handle):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(handle, data)

    def fsync(handle: int) -> None:
        if full(handle):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(handle)

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", write)
        patch.setattr(os, "fsync", fsync)
        yield
