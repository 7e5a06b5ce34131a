"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A crash or kill at any point leaves either the old file or the new one, never a half-written file.
Files and folders get the user's umask (0644 / 0755 under umask 022), as any program's files do: the temp
file is created with mode 0666 and the kernel applies the umask (tempfile.mkstemp would make it 0600).
`private=True` is for files holding secrets (config.json's tokens): 0600 whatever the umask.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
_TRIES = 100


def _random_part() -> str:
    return "".join(secrets.choice(_NAME_CHARACTERS) for _ in range(8))


def _create_temp_file(folder: Path, prefix: str, mode: int) -> tuple[int, Path]:
    for _ in range(_TRIES):
        temp = folder / f"{prefix}{_random_part()}.tmp"
        try:
            return os.open(temp, _OPEN_FLAGS, mode), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")


def _write_all(handle: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view):]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, private: bool = False,
                       durable: bool = True) -> Path:
    """Write via a temp file renamed into place: readers see the old or the new file, never a part. `durable`:
    fsync the data and the folder first (images, settings); off for files rewritten every job whose loss in a
    power cut costs nothing (params.txt), where the fsyncs cost a third of a second on a busy disk."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = _create_temp_file(target.parent, f".{target.name}.", 0o600 if private else 0o666)
    try:
        try:
            _write_all(handle, data)
            if durable:
                os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if durable:
        _fsync_folder(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, private: bool = False,
                      durable: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), private=private, durable=durable)


def make_temp_folder(parent: str | os.PathLike[str], prefix: str) -> Path:
    """A new empty folder `<parent>/<prefix><8 random characters>` with the umask's mode (for work that is
    renamed into place when complete; tempfile.mkdtemp would make it 0700)."""
    folder = Path(parent)
    for _ in range(_TRIES):
        candidate = folder / f"{prefix}{_random_part()}"
        try:
            candidate.mkdir(mode=0o777)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary folder name in {folder}")


# what atomic_write_bytes leaves behind when killed mid-write: .<target name>.<8 random characters>.tmp
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
    handle, temp = _create_temp_file(target.parent, f".{target.name}.", 0o666)
    try:
        with os.fdopen(handle, "wb") as temp_file:
            yield temp_file
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(target.parent)
