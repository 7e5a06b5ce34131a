"""--api-auth / --gradio-auth guard every API route, also ones an extension adds to the app later, while
/internal/ping, CORS preflights and the Gradio UI (its own login) are left alone; cmd-flags hides secrets."""

import base64
import logging

import pytest
from fastapi import APIRouter

from sdweb.api.a1111.routes_info import redacted_flags
from sdweb.api.auth import check_basic_header
from sdweb.cli import parse_options
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client

CORE_ROUTES = [("GET", "/sdapi/v1/options"), ("GET", "/sdapi/v1/sd-models"), ("GET", "/sdapi/v1/progress"),
               ("GET", "/sdapi/v1/cmd-flags"), ("POST", "/sdapi/v1/interrupt"), ("POST", "/sdapi/v1/refresh-loras"),
               ("GET", "/sdapi/v1/embeddings"), ("GET", "/openapi.json")]
EXTENSION_ROUTES = [("GET", "/controlnet/version"), ("GET", "/sdapi/v1/my-extension/hello"),
                    ("POST", "/tagger/v1/interrogate")]


def _app(tmp_path, *argv):
    state = build_app_state(parse_options(["--data-dir", str(tmp_path), "--nowebui", *argv], {}))
    app = create_app(state)
    # How A1111 extensions add routes (on_app_started(demo, app)): straight onto the app, after the API.
    app.add_api_route("/controlnet/version", lambda: {"version": 2}, methods=["GET"])
    router = APIRouter()
    router.add_api_route("/sdapi/v1/my-extension/hello", lambda: {"hello": True}, methods=["GET"])
    router.add_api_route("/tagger/v1/interrogate", lambda: {"caption": {}}, methods=["POST"])
    app.include_router(router)
    return local_client(app), state


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    client, state = _app(tmp_path_factory.mktemp("auth"), "--api-auth", "bob:s3cret,amy:pw:with:colons",
                         "--cors-allow-origins", "http://krita.local")
    yield client
    state.queue.shutdown()


@pytest.mark.parametrize(("method", "path"), CORE_ROUTES + EXTENSION_ROUTES)
def test_every_route_needs_the_credentials(guarded, method, path):
    missing = guarded.request(method, path)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Basic"
    assert missing.json() == {"error": "HTTPException", "detail": "Not authenticated", "body": "",
                              "errors": "Not authenticated"}
    wrong = guarded.request(method, path, auth=("bob", "nope"))
    assert wrong.status_code == 401 and wrong.json()["detail"] == "Incorrect username or password"
    assert guarded.request(method, path, auth=("nobody", "s3cret")).status_code == 401
    assert guarded.request(method, path, auth=("bob", "s3cret")).status_code == 200
    assert guarded.request(method, path, auth=("amy", "pw:with:colons")).status_code == 200


def test_unknown_api_paths_and_docs_are_guarded_ping_is_not(guarded):
    assert guarded.get("/sdapi/v1/no-such-route").status_code == 401
    assert guarded.get("/sdapi/v1/no-such-route", auth=("bob", "s3cret")).status_code == 404
    assert guarded.get("/docs").status_code == 401
    assert guarded.get("/internal/ping").status_code == 200


def test_cors_preflight_passes_and_a_401_carries_cors_headers(guarded):
    preflight = guarded.options("/sdapi/v1/options", headers={"Origin": "http://krita.local",
                                                               "Access-Control-Request-Method": "GET",
                                                               "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://krita.local"
    refused = guarded.get("/sdapi/v1/options", headers={"Origin": "http://krita.local"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "http://krita.local"


def test_gradio_auth_alone_guards_the_api_and_the_ui_keeps_its_own_login(tmp_path):
    state = build_app_state(parse_options(["--data-dir", str(tmp_path), "--api", "--gradio-auth", "amy:pw"], {}))
    try:
        client = local_client(create_app(state))
        assert client.get("/sdapi/v1/options").status_code == 401
        token = base64.b64encode(b"amy:pw").decode()
        assert client.get("/sdapi/v1/options", headers={"Authorization": f"Basic {token}"}).status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and "WWW-Authenticate" not in page.headers, "Gradio shows its login page"
    finally:
        state.queue.shutdown()


def test_no_credentials_no_guard(tmp_path):
    client, state = _app(tmp_path)
    try:
        for method, path in CORE_ROUTES + EXTENSION_ROUTES:
            assert client.request(method, path).status_code == 200, path
    finally:
        state.queue.shutdown()


@pytest.mark.parametrize(("header", "problem"), [
    (None, "Not authenticated"),
    ("Bearer abc", "Not authenticated"),
    ("Basic !!!", "Invalid authentication credentials"),
    ("Basic " + base64.b64encode(b"bob").decode(), "Incorrect username or password"),
    ("Basic " + base64.b64encode(b"bob:s3cret").decode(), None),
    ("basic " + base64.b64encode(b"bob:s3cret").decode(), None),
])
def test_basic_header_parsing(header, problem):
    assert check_basic_header(header, {"bob": "s3cret"}) == problem


def test_cmd_flags_hide_every_secret_also_extension_ones(tmp_path):
    options = parse_options(["--data-dir", str(tmp_path), "--api-auth", "bob:s3cret", "--gradio-auth", "a:pw1",
                             "--ngrok", "tok123", "--tls-keyfile", "/k.pem", "--tls-certfile", "/c.pem"], {})
    from_extensions = {"civitai_api_key": "k9", "hf_token": "hf_x", "my_ext_size": 3, "port": 1}  # preload.py flags
    flags = redacted_flags(options, from_extensions)
    text = repr(flags)
    for secret in ("s3cret", "pw1", "tok123", "k9", "hf_x"):
        assert secret not in text
    assert flags["tls_certfile"] == "/c.pem" and flags["api_auth"] == "<hidden>" and flags["civitai_api_key"] == "<hidden>"
    assert flags["my_ext_size"] == 3 and flags["port"] == options.port  # sdweb's own flag wins over a namesake


def test_api_log_writes_one_line_per_request(tmp_path, caplog):
    client, state = _app(tmp_path, "--api-log")
    try:
        with caplog.at_level(logging.INFO, logger="sdweb.api.requests"):
            client.get("/sdapi/v1/samplers")
        assert any("API 200" in r.getMessage() and "/sdapi/v1/samplers" in r.getMessage() for r in caplog.records)
    finally:
        state.queue.shutdown()


def test_subpath_behind_a_proxy_keeps_routes_and_guard(tmp_path):
    state = build_app_state(parse_options(["--data-dir", str(tmp_path), "--nowebui", "--api-auth", "a:b",
                                           "--subpath", "sd"], {}))
    try:
        client = local_client(create_app(state), root_path="/sd")  # what uvicorn's root_path gives the app
        for path in ("/sd/sdapi/v1/options", "/sd/docs"):
            assert client.get(path).status_code == 401
            assert client.get(path, auth=("a", "b")).status_code == 200
        assert client.get("/sd/internal/ping").status_code == 200
    finally:
        state.queue.shutdown()


def test_bind_host_and_port_follow_a1111s_flags(tmp_path):
    import contextlib
    import socket

    from sdweb.server import bind_host, pick_port

    def flags(*argv):
        return parse_options(["--data-dir", str(tmp_path), *argv], {})

    assert bind_host(flags()) == "127.0.0.1"
    assert bind_host(flags("--listen")) == "0.0.0.0"
    assert bind_host(flags("--listen", "--server-name", "10.1.2.3")) == "10.1.2.3"
    assert flags("--listen").webui_is_non_local and not flags().webui_is_non_local
    assert pick_port("127.0.0.1", 9123, nowebui=True) == 9123
    with socket.socket() as taken:
        with contextlib.suppress(OSError):  # already taken by someone else is fine too
            taken.bind(("127.0.0.1", 7861))
        assert pick_port("127.0.0.1", None, nowebui=True) > 7861, "the next free port after 7861"
