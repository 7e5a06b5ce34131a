"""Exposure: extension changes refused on a listening server, credentials on every HTTP route (API, extension
routes, Gradio's own), no file outside outputs/temp through Gradio's file routes, no secret in cmd-flags, and
model-downloader URLs that cannot point at local files or local hosts."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from starlette.routing import Mount, Route

from sdweb.builtin_extensions.model_downloader.sources import check_url
from sdweb.cli import parse_options
from sdweb.core.errors import UserError
from sdweb.extensions.installer import exposure_refusal, require_extension_access
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client

API_USER, API_PASSWORD = "bob", "api-s3cret-771"
UI_USER, UI_PASSWORD = "amy", "ui-s3cret-882"
SECRET = "SECRET-IN-CONFIG-5150"
# Gradio routes that answer without a login by design: the login page itself and static assets.
GRADIO_PUBLIC = {"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/robots.txt", "/manifest.json",
                 "/svelte/{path:path}", "/static/{path:path}", "/assets/{path:path}", "/pwa_icon", "/pwa_icon/{size}",
                 "/gradio_api/startup-events", "/monitoring/{key}", "/gradio_api/login_check", "/internal/ping",
                 "/gradio_api/favicon.ico", "/gradio_api/theme.css", "/gradio_api/runs", "/gradio_api/runs/",
                 # what the login page asks before a login: the app id, and who is logged in (null)
                 "/gradio_api/app_id", "/gradio_api/app_id/", "/gradio_api/token", "/gradio_api/token/",
                 "/gradio_api/user", "/gradio_api/user/"}
# Server-sent-event streams a TestClient cannot time out; Gradio keeps the heartbeat open without a login (it
# sends only keep-alive pings and takes no input), so it is left out here and reported.
STREAMS = {"/gradio_api/heartbeat/{session_hash}"}
FIGURES: dict[str, str] = {}


def _state(root: Path, *argv: str):
    (root / "config.json").write_text(json.dumps({"outdir_extras_samples": SECRET}), encoding="utf-8")
    return build_app_state(parse_options(["--data-dir", str(root), *argv], {}))


@pytest.mark.parametrize(("flags", "refused"), [
    ([], False), (["--listen"], True), (["--server-name", "10.0.0.5"], True),
    (["--listen", "--enable-insecure-extension-access"], False),
])
def test_extension_access_rule(tmp_path, flags, refused):
    options = parse_options(["--data-dir", str(tmp_path), *flags], {})
    message = exposure_refusal(options)
    assert (message is not None) == refused
    if refused:
        assert "--enable-insecure-extension-access" in message
        with pytest.raises(UserError) as error:
            require_extension_access(options)
        assert error.value.status_code == 403


def test_listening_server_refuses_extension_changes_over_http(tmp_path):
    state = _state(tmp_path, "--nowebui", "--listen")
    try:
        client = local_client(create_app(state), raise_server_exceptions=False)
        before = sorted(p.name for p in (tmp_path / "extensions").iterdir())
        calls = [("/sdweb/v1/extensions/install", {"url": "https://github.com/someone/sd-webui-evil"}),
                 ("/sdweb/v1/extensions/update", {"name": "sd-webui-evil"}),
                 ("/sdweb/v1/extensions/remove", {"name": "sd-webui-evil"}),
                 ("/sdweb/v1/extensions/check-updates", {"names": []}),
                 ("/sdapi/v1/model-downloader/downloads", {"url": "https://huggingface.co/a/b/resolve/main/m.safetensors"})]
        for path, body in calls:
            answer = client.post(path, json=body)
            assert answer.status_code == 403, (path, answer.status_code, answer.text[:300])
            assert "--enable-insecure-extension-access" in answer.text, path
        assert sorted(p.name for p in (tmp_path / "extensions").iterdir()) == before
        assert client.get("/sdweb/v1/extensions").status_code == 200  # listing is read-only
        FIGURES["extension access"] = f"{len(calls)} install/update/remove/download routes refused with --listen (403)"
    finally:
        state.queue.shutdown()


def _routes(routes, prefix: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += _routes(route.routes, prefix + route.path)
        elif hasattr(route, "effective_route_contexts"):  # FastAPI's wrapper around an included router
            for context in route.effective_route_contexts():
                for method in sorted((context.methods or {"GET"}) - {"HEAD", "OPTIONS"}):
                    found.append((method, prefix + context.path))
        elif isinstance(route, Route) or hasattr(route, "methods"):
            for method in sorted((getattr(route, "methods", None) or {"GET"}) - {"HEAD", "OPTIONS"}):
                found.append((method, prefix + route.path))
        elif hasattr(route, "routes"):
            found += _routes(route.routes, prefix)
    return found


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    root = tmp_path_factory.mktemp("exposed")
    state = _state(root, "--api", "--listen", "--api-auth", f"{API_USER}:{API_PASSWORD}",
                   "--gradio-auth", f"{UI_USER}:{UI_PASSWORD}")
    app = create_app(state)
    yield app, root
    state.queue.shutdown()


def test_every_route_needs_credentials(guarded):
    app, _ = guarded
    client = local_client(app, raise_server_exceptions=False)
    routes = sorted(set(_routes(app.routes)))
    assert any(path.startswith("/gradio_api") for _, path in routes) and any(
        path.startswith("/sdweb/v1/extensions") for _, path in routes)
    open_routes, checked, public = [], 0, 0
    for method, path in routes:
        url = re.sub(r"\{[^}]+\}", "x", path).replace("//", "/")
        if path.replace("//", "/") in STREAMS:
            continue
        if path.replace("//", "/") in GRADIO_PUBLIC:
            if method == "GET":  # open by design: nothing of the app's config, settings or files in it
                answer = client.get(url)
                assert SECRET not in answer.text and "sd_model_checkpoint" not in answer.text, url
                public += 1
            continue
        answer = client.request(method, url)
        checked += 1
        if answer.status_code < 400 or answer.status_code >= 500:
            open_routes.append(f"{method} {path}: {answer.status_code}")
    assert not open_routes, open_routes
    page = client.get("/")
    assert page.status_code == 200 and "sd_model_checkpoint" not in page.text and SECRET not in page.text
    assert client.get("/config").status_code == 401
    assert client.get("/sdapi/v1/options", auth=(API_USER, API_PASSWORD)).status_code == 200
    assert client.get("/sdapi/v1/options", auth=(UI_USER, UI_PASSWORD)).status_code == 401
    assert client.post("/login", data={"username": UI_USER, "password": UI_PASSWORD}).status_code == 200
    assert client.get("/config").status_code == 200  # logged in to the UI
    FIGURES["auth"] = (f"{checked} routes refused without credentials, {public} Gradio login/static routes open and "
                       f"leaking nothing, {len(STREAMS)} heartbeat stream not checked")


TRAVERSALS = ["../config.json", "..%2Fconfig.json", "%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd",
              "..%2F..%2F..%2F..%2Fetc%2Fpasswd", "....//....//etc/passwd", "%252e%252e%252fconfig.json",
              "outputs/../config.json", "outputs/..%2Fconfig.json"]


def test_gradio_serves_no_file_outside_outputs_and_temp(guarded):
    app, root = guarded
    client = local_client(app, raise_server_exceptions=False)
    assert client.post("/login", data={"username": UI_USER, "password": UI_PASSWORD}).status_code == 200
    targets = [*TRAVERSALS, str(root / "config.json"), str(root / "config.json").replace("/", "%2F"),
               str(root / "outputs" / ".." / "config.json")]
    served = []
    for prefix in ("/file=", "/gradio_api/file=", "/gradio_api/file/"):
        for target in targets:
            answer = client.get(prefix + target)
            if answer.status_code == 200 or SECRET in answer.text or "root:" in answer.text:
                served.append(f"{prefix}{target}: {answer.status_code}")
    assert not served, served
    FIGURES["file routes"] = f"{3 * len(targets)} traversal / absolute-path requests refused, config.json never served"


def test_cmd_flags_reveal_no_secret(guarded):
    app, _ = guarded
    flags = local_client(app).get("/sdapi/v1/cmd-flags", auth=(API_USER, API_PASSWORD))
    assert flags.status_code == 200
    for secret in (API_PASSWORD, UI_PASSWORD):
        assert secret not in flags.text
    assert flags.json()["api_auth"] == "<hidden>" and flags.json()["gradio_auth"] == "<hidden>"


LOCAL_URLS = ["file:///etc/passwd", "file://localhost/etc/passwd", "FILE:///C:/Windows/win.ini",
              "http://127.0.0.1:7860/sdapi/v1/options", "http://localhost/model.safetensors",
              "http://[::1]/model.safetensors", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/m.ckpt",
              "http://192.168.1.10/m.safetensors", "http://0.0.0.0/m.safetensors", "http://[::ffff:127.0.0.1]/m.pt",
              "http://2130706433/m.safetensors", "ftp://example.com/m.safetensors", "/etc/passwd",
              "../models/Stable-diffusion/x.safetensors", "gopher://127.0.0.1:25/"]


def test_model_downloader_refuses_local_targets(tmp_path):
    refused = 0
    for url in LOCAL_URLS:
        with pytest.raises(UserError) as error:
            check_url(url, allow_local=False, resolve_host=lambda host: ["127.0.0.1"])
        assert error.value.code in ("invalid_download_url", "download_local_refused"), (url, error.value.code)
        refused += 1
    state = _state(tmp_path, "--nowebui")
    try:
        client = local_client(create_app(state), raise_server_exceptions=False)
        started = client.post("/sdapi/v1/model-downloader/downloads", json={"url": "file:///etc/passwd",
                                                                             "kind": "checkpoint"})
        assert started.status_code < 500, started.text
        if started.status_code == 200:  # the job starts, then fails with the reason
            job_id = started.json()["id"]
            deadline = time.monotonic() + 30
            while (job := client.get(f"/sdapi/v1/model-downloader/downloads/{job_id}").json())["state"] not in (
                    "failed", "done", "cancelled") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert job["state"] == "failed" and "http" in json.dumps(job), job
        assert not list((tmp_path / "models").rglob("passwd*"))
    finally:
        state.queue.shutdown()
    FIGURES["downloader"] = f"{refused} local/file URLs refused (file://, loopback, private, link-local, other schemes)"


def test_exposure_summary(summary):
    summary("exposure", "; ".join(f"{k}: {v}" for k, v in FIGURES.items()) + "; cmd-flags: no secret")
