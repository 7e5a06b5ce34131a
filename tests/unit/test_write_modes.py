"""File modes (issue 17 item 9) and a full disk (item 8) at the writer level: atomic writes keep the user's umask
(A1111's files are 0644 under umask 022), config.json stays 0600, a full disk gives "disk full: <path>, N MB free"
and leaves nothing behind, settings stay unchanged in memory when config.json cannot be written."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from sdweb.config.settings import Settings
from sdweb.core.atomic import atomic_write_bytes, make_temp_folder
from sdweb.core.errors import WriteFailedError
from sdweb.models.hashing import HashCache
from sdweb.testing.faults import disk_full


@contextlib.contextmanager
def _umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path, mask):
    with _umask(mask):
        written = atomic_write_bytes(tmp_path / "image.png", b"png")
        replaced = atomic_write_bytes(written, b"png again")
        folder = make_temp_folder(tmp_path, ".partial-")
    assert _mode(written) == _mode(replaced) == 0o666 & ~mask
    assert _mode(folder) == 0o777 & ~mask
    assert folder.name.startswith(".partial-") and not any(folder.iterdir())


def test_private_files_and_config_json_stay_0600(tmp_path):
    with _umask(0o022):
        secret = atomic_write_bytes(tmp_path / "secret", b"token", private=True)
        settings = Settings(tmp_path / "config.json")
        settings.update({"jpeg_quality": 90})
    assert _mode(secret) == 0o600
    assert _mode(tmp_path / "config.json") == 0o600


def test_a_full_disk_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out" / "image.png"
    atomic_write_bytes(target, b"the old picture")
    with disk_full(tmp_path, monkeypatch), pytest.raises(OSError) as raised:
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"the old picture"
    assert sorted(p.name for p in target.parent.iterdir()) == ["image.png"]
    error = WriteFailedError(raised.value, target)
    assert error.status_code == 507 and error.code == "disk_full"
    assert error.message.startswith(f"disk full: {target}, ") and error.message.endswith(" MB free")


def test_settings_unchanged_in_memory_when_config_json_cannot_be_written(tmp_path, monkeypatch):
    settings = Settings(tmp_path / "config.json")
    settings.update({"jpeg_quality": 90})
    before = (tmp_path / "config.json").read_bytes()
    with disk_full(tmp_path, monkeypatch), pytest.raises(WriteFailedError, match="disk full: .*config.json"):
        settings.update({"jpeg_quality": 55, "samples_format": "jpg"})
    assert settings.get("jpeg_quality") == 90 and settings.get("samples_format") == "png"
    assert (tmp_path / "config.json").read_bytes() == before
    assert json.loads(before)["jpeg_quality"] == 90


def test_the_hash_cache_is_not_worth_failing_for(tmp_path, monkeypatch, caplog):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"x" * 4096)
    cache = HashCache(tmp_path / "cache" / "hashes.json")
    with disk_full(tmp_path / "cache", monkeypatch):
        digest = cache.get(model, "sha256")
    assert len(digest) == 64 and "disk full" in caplog.text
