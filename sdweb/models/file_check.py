"""A quick look at a model file when it is listed: is it readable at all? Reads only the safetensors header, or
a torch zip's directory at the end of the file, so a truncated download, an empty file or a Git LFS pointer
is found without loading anything. A file with a problem is still listed (marked, with a warning in the log
naming it); only a job that uses it fails, with an error that names it.
"""

from __future__ import annotations

import logging
import threading
import zipfile
from pathlib import Path

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.reading import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, read_metadata

log = logging.getLogger(__name__)

_PICKLE_PROTOCOL_MARK = 0x80  # a pickle stream (protocol 2+) starts with this byte


def file_problem(path: Path) -> str | None:
    """What is wrong with the model file at `path` (a sentence naming it), or None when it looks readable."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in SAFETENSORS_SUFFIXES:
            read_metadata(path)  # checks that the header parses and the file holds every tensor it lists
            return None
        if suffix not in PICKLE_SUFFIXES:
            return None
        with path.open("rb") as handle:
            head = handle.read(64)
    except InvalidModelFileError as error:
        return error.message
    except OSError as error:
        return f"{path.name} cannot be read: {error.strerror or error}."
    if not head:
        return f"{path.name} is empty (0 bytes)."
    if head.startswith(b"version https://git-lfs"):
        return f"{path.name} is a Git LFS pointer, not the model itself."
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path):
                return None
        except (zipfile.BadZipFile, OSError) as error:
            return f"{path.name} is damaged (truncated download?): {error}."
    if head[0] != _PICKLE_PROTOCOL_MARK:
        return f"{path.name} is not a PyTorch model file."
    return None


class FileChecks:
    """`file_problem` per file, remembered until the file changes (size or time); each problem is logged once
    as a warning. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[Path, tuple[tuple[int, int], str | None]] = {}

    def problem(self, path: Path, kind: str) -> str | None:
        """The file's problem (None when fine); `kind` ("LoRA", "VAE", ...) words the log line."""
        path = Path(path)
        try:
            stat = path.stat()
        except OSError as error:
            return f"{path.name} cannot be read: {error.strerror or error}."
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._seen.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        problem = file_problem(path)
        with self._lock:
            self._seen[path] = (stamp, problem)
        if problem is not None:
            log.warning("%s file skipped (a job that uses it fails until it is replaced): %s (%s)", kind, problem,
                        path)
        return problem
