"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A crash or kill at any point leaves either the old file or the new one, never a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_folder(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


# what atomic_write_bytes leaves behind when killed mid-write: .<target name>.<mkstemp's 8 characters>.tmp
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temp_files(folder: str | os.PathLike[str], older_than_s: float = 600.0) -> list[Path]:
    """Delete the temp files of writers that were killed (older than `older_than_s`, so a writer still
    running in another process keeps its file) anywhere under `folder`; returns what was removed."""
    removed = []
    cutoff = time.time() - older_than_s
    for path in Path(folder).rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            if _TEMP_NAME.match(path.name) and path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
    return removed


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not supported on every platform (e.g. Windows), which is fine.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_stream(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A file handle to write `path` in pieces (a merged checkpoint, tensor by tensor): the data goes to a temp
    file beside it (mode 0666 less the umask), which replaces the target only when the block ends without an
    error; on an error the temp file is removed and the target is untouched."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        with os.fdopen(os.open(temp, flags, 0o666), "wb") as temp_file:
            yield temp_file
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(target.parent)
