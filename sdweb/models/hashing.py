"""Model file hashes as A1111 computes them, with an on-disk cache keyed by path, mtime and size.

- sha256: the whole file (the first 10 hex are the "short hash" in titles and infotext);
- legacy hash: sha256 of 64 KiB at offset 1 MiB, first 8 hex (old infotexts carry it);
- addnet hash (LoRA): sha256 of a safetensors file's tensor data, after the 8-byte length and JSON header.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sdweb.core.atomic import atomic_write_text
from sdweb.core.errors import write_failure_message

log = logging.getLogger(__name__)

BLOCK = 1024 * 1024
ProgressCallback = Callable[[int, int], None]


def _hash_stream(handle, total: int, progress: ProgressCallback | None) -> str:
    digest = hashlib.sha256()
    done = 0
    while chunk := handle.read(BLOCK):
        digest.update(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    return digest.hexdigest()


def sha256_file(path: Path, progress: ProgressCallback | None = None) -> str:
    with open(path, "rb") as handle:
        return _hash_stream(handle, os.fstat(handle.fileno()).st_size, progress)


def legacy_model_hash(path: Path) -> str:
    """A1111's old 8-hex checkpoint hash; "NOFILE" when the file cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0x100000)
            return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]
    except OSError:
        return "NOFILE"


def addnet_hash_safetensors(path: Path) -> str:
    """kohya's LoRA hash: sha256 of everything after the safetensors header."""
    with open(path, "rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
        handle.seek(8 + header_length)
        size = os.fstat(handle.fileno()).st_size
        return _hash_stream(handle, size, None)


def _file_key(path: Path) -> tuple[float, int]:
    stat = path.stat()
    return stat.st_mtime, stat.st_size


class HashCache:
    """sha256 / legacy / addnet hashes per file, reused while the file's mtime and size are unchanged."""

    def __init__(self, cache_file: Path) -> None:
        self.cache_file = Path(cache_file)
        self._lock = threading.Lock()
        self._computing: dict[tuple[str, str], threading.Lock] = {}  # one reader per (file, kind) at a time
        self._entries: dict[str, dict] = self._read()
        self.files_read = 0  # how many times file content was read (tests check that a rescan reads none)

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.cache_file.read_text(encoding="utf-8"))
            return data.get("hashes", {}) if isinstance(data, dict) else {}
        except (OSError, ValueError, RecursionError):
            return {}

    def _save(self) -> None:
        """A cache only: a failed write (a full disk) is logged and the hash is computed again next time."""
        with self._lock:
            text = json.dumps({"hashes": self._entries}, indent=1, sort_keys=True)
        try:
            atomic_write_text(self.cache_file, text)
        except OSError as error:
            log.warning("Hash cache not saved (%s).", write_failure_message(error, self.cache_file))

    def cached(self, path: Path, kind: str) -> str | None:
        """The cached value of `kind` ("sha256", "legacy", "addnet") if the file is unchanged."""
        try:
            mtime, size = _file_key(path)
        except OSError:
            return None
        with self._lock:
            entry = self._entries.get(str(Path(path).resolve()))
        if entry and entry.get("mtime") == mtime and entry.get("size") == size:
            return entry.get(kind)
        return None

    def _store(self, path: Path, kind: str, value: str) -> None:
        mtime, size = _file_key(path)
        key = str(Path(path).resolve())
        with self._lock:
            entry = self._entries.get(key)
            if not entry or entry.get("mtime") != mtime or entry.get("size") != size:
                entry = {"mtime": mtime, "size": size}
                self._entries[key] = entry
            entry[kind] = value
        self._save()

    def get(self, path: Path, kind: str, progress: ProgressCallback | None = None) -> str:
        """Cached value, or compute (reading the file), store and return it. A second caller for the same file
        and kind (the first load while the background hasher reads that file) waits for the first one's result
        instead of reading the file again."""
        value = self.cached(path, kind)
        if value is not None:
            return value
        key = (str(Path(path).resolve()), kind)
        with self._lock:
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:
            value = self.cached(path, kind)
            if value is not None:
                return value
            return self._compute(path, kind, progress)

    def _compute(self, path: Path, kind: str, progress: ProgressCallback | None) -> str:
        self.files_read += 1
        if kind == "sha256":
            value = sha256_file(path, progress)
        elif kind == "legacy":
            value = legacy_model_hash(path)
        elif kind == "addnet":
            value = addnet_hash_safetensors(path)
        else:
            raise ValueError(f"unknown hash kind {kind!r}")
        self._store(path, kind, value)
        return value


class LoggingProgress:
    """Logs hashing progress of a big file every few seconds."""

    def __init__(self, label: str, every_seconds: float = 5.0) -> None:
        self.label = label
        self.every = every_seconds
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            log.info("Hashing %s: %d%% (%.0f MB of %.0f MB)", self.label, 100 * done // max(total, 1),
                     done / 1e6, total / 1e6)
