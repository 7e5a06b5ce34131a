"""Tests never touch the user's own files in this checkout (webui-user.sh, config.json, models/, outputs/, ...):
each test uses its own data folder. An audit hook records every open or listing of those paths made in the
test process, and the test that made it fails with the path. (Servers that tests start in subprocesses get
an explicit --data-dir, and the launcher test runs a throw-away copy of the launcher files.)"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
USER_FILES = ("webui-user.sh", "webui-user.bat", "config.json", "ui-config.json", "params.txt", "styles.csv")
USER_FOLDERS = ("models", "outputs", "embeddings", "extensions", "cache", "log", "tmp")
KEPT_IN_GIT = (".gitkeep", "README.md")  # the empty folders' placeholders belong to the repository
WATCHED_EVENTS = ("open", "os.listdir", "os.scandir")

_files = {os.path.join(CHECKOUT, name) for name in USER_FILES}
_folders = tuple(os.path.join(CHECKOUT, name) for name in USER_FOLDERS)
_touched: list[str] = []


def _is_users(path: str) -> bool:
    if path in _files:
        return True
    for folder in _folders:
        if path == folder or path.startswith(folder + os.sep):
            return not path.endswith(KEPT_IN_GIT)
    return False


def _audit(event: str, args: tuple) -> None:
    if event not in WATCHED_EVENTS or not args:
        return
    target = args[0]
    if isinstance(target, int) or target is None:
        return
    try:
        path = os.path.abspath(os.fsdecode(target))
    except (TypeError, ValueError):
        return
    if _is_users(path):
        _touched.append(f"{event} {path}")


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def _leaves_the_users_files_alone():
    _touched.clear()
    yield
    if _touched:
        found = sorted(set(_touched))
        _touched.clear()
        pytest.fail("this test read the checkout's own user files (use a data folder of its own): "
                    + ", ".join(found[:5]), pytrace=False)


@pytest.fixture(scope="module")
def no_network() -> Iterator[None]:
    """A module's tests fail on any socket connect (loopback included): for code that must work offline."""
    def refuse(_sock: socket.socket, address: object) -> None:
        raise OSError(f"network access attempted: {address!r}")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        yield
