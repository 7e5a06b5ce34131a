import base64
import os

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sdweb.api.a1111.app import mount_api
from sdweb.cli import parse_options
from sdweb.state import build_app_state
from sdweb.testing.client import local_client
from sdweb.testing.tiny import write_tiny


def _client(tmp_path, *argv):
    checkpoint = tmp_path / "models" / "Stable-diffusion" / "model.safetensors"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    if not checkpoint.exists():
        checkpoint.write_bytes(os.urandom(2048))
    state = build_app_state(parse_options(["--data-dir", str(tmp_path), "--api", *argv], {}))
    state.registry.wait_for_hashes()
    app = FastAPI()
    mount_api(app, state)
    return TestClient(app), state


def test_cmd_flags_never_reveal_secrets(tmp_path):
    client, _ = _client(tmp_path, "--api-auth", "bob:s3cret", "--gradio-auth", "amy:pw:with:colons")
    response = client.get("/sdapi/v1/cmd-flags", auth=("bob", "s3cret"))
    assert response.status_code == 200
    flags = response.json()
    assert "s3cret" not in response.text and "pw:with" not in response.text
    assert flags["api"] is True and flags["api_auth"] == "<hidden>"
    assert "X-Process-Time" in response.headers


@pytest.mark.parametrize("route", ["/sdapi/v1/cmd-flags", "/sdapi/v1/options", "/sdapi/v1/sd-models"])
def test_auth_required_when_configured(tmp_path, route):
    client, _ = _client(tmp_path, "--api-auth", "bob:s3cret")
    assert client.get(route).status_code == 401
    wrong = client.get(route, auth=("bob", "nope"))
    assert wrong.status_code == 401 and wrong.json()["detail"] == "Incorrect username or password"
    assert wrong.headers["WWW-Authenticate"] == "Basic"
    assert client.get(route, auth=("bob", "s3cret")).status_code == 200


def test_gradio_auth_alone_also_protects_the_api(tmp_path):
    client, _ = _client(tmp_path, "--gradio-auth", "amy:pw")
    assert client.get("/sdapi/v1/options").status_code == 401
    token = base64.b64encode(b"amy:pw").decode()
    assert client.get("/sdapi/v1/options", headers={"Authorization": f"Basic {token}"}).status_code == 200


def test_options_round_trip_and_validation(tmp_path):
    client, state = _client(tmp_path)
    options = client.get("/sdapi/v1/options").json()
    assert options["samples_format"] == "png" and options["CLIP_stop_at_last_layers"] == 1
    response = client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2, "my_ext_key": "v"})
    assert response.status_code == 200 and response.json() is None
    assert client.get("/sdapi/v1/options").json()["CLIP_stop_at_last_layers"] == 2
    assert state.paths.config_file.exists()
    bad = client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": "two"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "SettingsError" and "CLIP_stop_at_last_layers" in bad.json()["detail"]
    missing = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "no-such-model"})
    assert missing.status_code == 404 and "no-such-model" in missing.json()["detail"]


def test_model_lists(tmp_path):
    # a real (tiny) checkpoint: selecting one through POST /options checks the file, as A1111 loads it
    write_tiny("sd1", tmp_path / "models" / "Stable-diffusion" / "model.safetensors", seed=1)
    client, state = _client(tmp_path)
    models = client.get("/sdapi/v1/sd-models").json()
    assert len(models) == 1
    entry = state.registry.checkpoints[0]
    assert models[0] == {"title": entry.title, "model_name": "model", "hash": entry.sha256[:10],
                         "sha256": entry.sha256, "filename": str(entry.path), "config": None}
    assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "model"}).status_code == 200
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == entry.title
    (tmp_path / "models" / "VAE" / "v.safetensors").write_bytes(b"x")
    assert client.get("/sdapi/v1/sd-vae").json() == []
    assert client.post("/sdapi/v1/refresh-vae").status_code == 200
    assert client.get("/sdapi/v1/sd-vae").json()[0]["model_name"] == "v.safetensors"
    assert client.get("/sdapi/v1/hypernetworks").json() == []


def test_cors_flags_and_server_routes_need_their_flag(tmp_path):
    from sdweb.server import create_app

    state = build_app_state(parse_options(["--data-dir", str(tmp_path), "--api", "--nowebui",
                                           "--cors-allow-origins", "http://krita.local"], {}))
    client = local_client(create_app(state))
    response = client.get("/sdapi/v1/options", headers={"Origin": "http://krita.local"})
    assert response.headers["access-control-allow-origin"] == "http://krita.local"
    other = client.get("/sdapi/v1/options", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    assert client.post("/sdapi/v1/server-kill").status_code == 404
