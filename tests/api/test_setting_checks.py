"""Settings that name a model file (issue 17 item 10): `sd_vae` must be Automatic, None or a listed VAE (checked
like sd_model_checkpoint, in POST /options, override_settings, the quick settings and the Settings tab), and
`--ckpt /abs/path` is the selected checkpoint at start and the one generation uses."""

from __future__ import annotations

import gradio as gr
import pytest

from sdweb.cli import parse_options
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client
from sdweb.testing.tiny import write_tiny
from sdweb.ui.app import save_setting
from sdweb.ui.tabs.settings import apply_settings

SMALL = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 5}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data = tmp_path_factory.mktemp("setting-checks")
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "a-first.safetensors", seed=1)
    write_tiny("vae", data / "models" / "VAE" / "tiny.vae.safetensors")
    picked = write_tiny("sd1", tmp_path_factory.mktemp("elsewhere") / "picked.safetensors", seed=2)
    state = build_app_state(parse_options(["--data-dir", str(data), "--nowebui", "--ckpt", str(picked)], {}))
    yield state, local_client(create_app(state), raise_server_exceptions=False), picked
    state.queue.shutdown()


@pytest.mark.parametrize("name", ["no-such-vae.safetensors", "../../etc/passwd", "a-first.safetensors"])
def test_unknown_vae_is_refused_everywhere_naming_it(app, name):
    state, client, _ = app
    answer = client.post("/sdapi/v1/options", json={"sd_vae": name})
    assert answer.status_code == 404 and name in answer.text and "vae_not_found" in answer.text, answer.text
    assert client.get("/sdapi/v1/options").json()["sd_vae"] == "Automatic"
    answer = client.post("/sdapi/v1/txt2img", json={**SMALL, "override_settings": {"sd_vae": name}})
    assert answer.status_code == 404 and name in answer.text, answer.text
    with pytest.raises(gr.Error, match="not found"):
        save_setting(state, "sd_vae", name)
    message, saved = apply_settings(state.settings, {"sd_vae": name})
    assert not saved and name in message
    assert state.settings.get("sd_vae") == "Automatic"


@pytest.mark.parametrize(("sent", "stored"), [("tiny.vae.safetensors", "tiny.vae.safetensors"),
                                              ("tiny.vae", "tiny.vae.safetensors"), ("None", "None"),
                                              ("Automatic", "Automatic")])
def test_listed_vaes_and_the_special_values_are_accepted(app, sent, stored):
    _, client, _ = app
    answer = client.post("/sdapi/v1/options", json={"sd_vae": sent})
    assert answer.status_code == 200, answer.text
    assert client.get("/sdapi/v1/options").json()["sd_vae"] == stored
    client.post("/sdapi/v1/options", json={"sd_vae": "Automatic"})


def test_ckpt_is_selected_at_start_and_used_for_generation(app):
    state, client, picked = app
    assert state.selected_checkpoint().path == picked.resolve()
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("picked.safetensors")
    answer = client.post("/sdapi/v1/txt2img", json=SMALL)
    assert answer.status_code == 200, answer.text
    assert '"sd_model_name": "picked"' in answer.json()["info"]
    assert [entry.path for entry in state.registry.checkpoints].count(picked.resolve()) == 1
    # the user may still choose another one; the quick settings then show that one
    assert client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "a-first.safetensors"}).status_code == 200
    assert state.selected_checkpoint().name == "a-first.safetensors"
