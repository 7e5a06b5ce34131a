"""An in-process client for the app create_app builds, sending what a local client sends.

Starlette's TestClient calls the server "testserver" in the Host header; sdweb answers only to its own names
(sdweb/api/hosts.py), so tests talk to it as http://127.0.0.1:7860, as a browser or webuiapi on this machine does.
"""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

LOCAL_BASE_URL = "http://127.0.0.1:7860"


def local_client(app: Any, raise_server_exceptions: bool = True, root_path: str = "") -> TestClient:
    return TestClient(app, base_url=LOCAL_BASE_URL, raise_server_exceptions=raise_server_exceptions,
                      root_path=root_path)
