"""A1111's `modules.hashes`: sha256 of a file (sdweb's hashing)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def calculate_sha256(filename: str) -> str:
    digest = hashlib.sha256()
    with Path(filename).open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256(filename: str, title: str, use_addnet_hash: bool = False) -> str:
    return calculate_sha256(filename)


def sha256_from_cache(filename: str, title: str, use_addnet_hash: bool = False) -> str | None:
    return None
