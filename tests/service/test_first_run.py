"""First-run model download against a local HTTP server (127.0.0.1 only): resume, checksum, offline."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdweb.cli import parse_options
from sdweb.models.first_run import (
    DownloadError,
    FirstRunStatus,
    ModelDownload,
    download_model,
    start_first_run_download,
)
from sdweb.models.registry import ModelRegistry
from sdweb.testing.server import free_port
from sdweb.testing.tiny import write_tiny

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, payload: bytes, honour_range: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload = payload
        self.honour_range = honour_range
        self.ranges: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/model.safetensors"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        payload = self.server.payload
        wanted = self.headers.get("Range")
        self.server.ranges.append(wanted)
        start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted and self.server.honour_range else 0
        if start >= len(payload) and wanted:
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(payload) - start))
        self.end_headers()
        self.wfile.write(payload[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[True, False], ids=["range", "no-range"])
def server(request) -> Iterator[_Server]:
    httpd = _Server(PAYLOAD, honour_range=request.param)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _spec(server: _Server, payload: bytes = PAYLOAD) -> ModelDownload:
    return ModelDownload(server.url, "model.safetensors", hashlib.sha256(payload).hexdigest())


def test_download_checks_the_hash_and_renames_into_place(server, tmp_path):
    path = download_model(_spec(server), tmp_path, progress=False)
    assert path == tmp_path / "model.safetensors" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "model.safetensors.partial").exists()


def test_download_resumes_a_partial_file(server, tmp_path):
    (tmp_path / "model.safetensors.partial").write_bytes(PAYLOAD[:300_000])
    path = download_model(_spec(server), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=300000-"]  # asked to resume; a server ignoring it sends all again


def test_complete_partial_file_is_finished_without_data(server, tmp_path):
    (tmp_path / "model.safetensors.partial").write_bytes(PAYLOAD)
    assert download_model(_spec(server), tmp_path, progress=False).read_bytes() == PAYLOAD


def test_wrong_checksum_keeps_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="sha256"):
        download_model(_spec(server, b"something else"), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_fails_fast(tmp_path):
    port = free_port()  # a port nobody listens on
    started = time.monotonic()
    with pytest.raises(DownloadError, match="cannot reach"):
        download_model(ModelDownload(f"http://127.0.0.1:{port}/x", "x.safetensors", "0" * 64), tmp_path,
                       timeout=1.0, progress=False)
    assert time.monotonic() - started < 5


def test_silent_server_times_out_instead_of_hanging(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x"
        started = time.monotonic()
        with pytest.raises(DownloadError):
            download_model(ModelDownload(url, "x.safetensors", "0" * 64), tmp_path, timeout=0.5, progress=False)
        assert time.monotonic() - started < 5


def _registry(root: Path) -> ModelRegistry:
    from sdweb.config.paths import resolve_paths

    paths = resolve_paths(parse_options(["--data-dir", str(root)], {}))
    paths.ensure_folders()
    registry = ModelRegistry(paths, no_hashing=True)
    registry.refresh_checkpoints()
    return registry


def test_first_run_downloads_in_the_background_then_the_file_is_the_checkpoint(tmp_path):
    payload = (tmp_path / "src.safetensors")
    write_tiny("sd1", payload, seed=1)
    httpd = _Server(payload.read_bytes(), honour_range=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        registry = _registry(tmp_path / "data")
        assert [entry.is_demo for entry in registry.checkpoints] == [True]
        options = parse_options([], {})
        spec = ModelDownload(httpd.url, "v1-5-pruned-emaonly.safetensors",
                             hashlib.sha256(payload.read_bytes()).hexdigest())
        status = FirstRunStatus()
        thread = start_first_run_download(registry, options, spec, status=status)
        assert thread is not None and status.state == "downloading"
        thread.join(30)
        assert [entry.name for entry in registry.checkpoints] == ["v1-5-pruned-emaonly.safetensors"]
        size = payload.stat().st_size
        assert (status.state, status.done_bytes, status.total_bytes) == ("done", size, size)  # the page's banner
        assert "is the default checkpoint now" in status.describe()
        assert start_first_run_download(registry, options, spec) is None  # a checkpoint exists now
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_first_run_download_is_skipped_when_not_wanted(tmp_path, caplog):
    registry = _registry(tmp_path / "data")
    spec = ModelDownload("http://127.0.0.1:9/x", "x.safetensors", "0" * 64)
    assert start_first_run_download(registry, parse_options(["--no-download-sd-model"], {}), spec) is None
    assert start_first_run_download(registry, parse_options(["--ckpt", "m.ckpt"], {}), spec) is None
    thread = start_first_run_download(registry, parse_options([], {}), spec,
                                      timeout=1.0)
    thread.join(10)
    assert [entry.is_demo for entry in registry.checkpoints] == [True]
    assert "using the built-in demo model" in caplog.text and "not retried" in caplog.text
    status = FirstRunStatus()  # the next start: the failure is remembered, nothing is tried
    assert start_first_run_download(registry, parse_options([], {}), spec,
                                    status=status) is None
    assert status.state == "failed" and "not retried" in status.describe()
