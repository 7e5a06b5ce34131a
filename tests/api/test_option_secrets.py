"""Secret settings (the model downloader's tokens): never in GET /sdapi/v1/options, /cmd-flags or the log;
a password box in the Settings tab; a client that posts the options back does not wipe them."""

import json
import logging

import gradio as gr
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sdweb.api.a1111.app import mount_api
from sdweb.api.a1111.routes_info import public_settings
from sdweb.builtin_extensions.model_downloader import CIVITAI_TOKEN_SETTING, HF_TOKEN_SETTING
from sdweb.cli import parse_options
from sdweb.config.options import OPTIONS, make_option
from sdweb.state import build_app_state
from sdweb.ui.tabs.settings import build_settings_tab, component_for

HF_SECRET = "hf_TOPSECRETvalue123"
CIVITAI_SECRET = "civitai-SECRET-456"


def _state(tmp_path, *argv):
    return build_app_state(parse_options(["--data-dir", str(tmp_path), "--api", *argv], {}))


def _client(state):
    app = FastAPI()
    mount_api(app, state)
    return TestClient(app)


def test_tokens_are_flagged_secret_and_nothing_built_in_is(tmp_path):
    state = _state(tmp_path)
    try:
        assert state.settings.option(HF_TOKEN_SETTING).secret
        assert state.settings.option(CIVITAI_TOKEN_SETTING).secret
        assert not any(option.secret for option in OPTIONS)
    finally:
        state.queue.shutdown()


def test_options_and_cmd_flags_never_return_tokens(tmp_path, caplog):
    state = _state(tmp_path, "--api-log")
    try:
        caplog.set_level(logging.DEBUG)
        client = _client(state)
        assert client.post("/sdapi/v1/options", json={HF_TOKEN_SETTING: HF_SECRET,
                                                      CIVITAI_TOKEN_SETTING: CIVITAI_SECRET}).status_code == 200
        assert state.settings.get(HF_TOKEN_SETTING) == HF_SECRET  # settable through the API
        options = client.get("/sdapi/v1/options")
        assert options.status_code == 200
        assert HF_SECRET not in options.text and CIVITAI_SECRET not in options.text
        assert HF_TOKEN_SETTING not in options.json() and "samples_format" in options.json()
        assert "token_merging_ratio" in options.json()  # a built-in key that only sounds like a token
        flags = client.get("/sdapi/v1/cmd-flags")
        assert HF_SECRET not in flags.text and CIVITAI_SECRET not in flags.text
        # a client that posts everything it read back keeps the tokens
        posted_back = {k: v for k, v in options.json().items() if k != "sd_model_checkpoint"}  # no model here
        assert client.post("/sdapi/v1/options", json=posted_back).status_code == 200
        assert state.settings.get(HF_TOKEN_SETTING) == HF_SECRET
        assert HF_SECRET not in caplog.text and CIVITAI_SECRET not in caplog.text
    finally:
        state.queue.shutdown()


def test_tokens_of_a_disabled_downloader_stay_hidden(tmp_path):
    config = {HF_TOKEN_SETTING: HF_SECRET, "disabled_extensions": ["model_downloader"],
              "some_extension_api_key": "k-123", "some_extension_color": "blue"}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    state = _state(tmp_path)
    try:
        assert state.settings.option(HF_TOKEN_SETTING) is None  # nobody owns the key this run
        shown = _client(state).get("/sdapi/v1/options").json()
        assert HF_TOKEN_SETTING not in shown and "some_extension_api_key" not in shown
        assert shown["some_extension_color"] == "blue"
        current = ("sd_model_checkpoint", "sd_checkpoint_hash")  # GET names the checkpoint in use (bug 11)
        assert {k: v for k, v in public_settings(state.settings).items() if k not in current} == \
            {k: v for k, v in shown.items() if k not in current}
        assert shown["sd_model_checkpoint"]
    finally:
        state.queue.shutdown()


def test_settings_tab_shows_secrets_as_password_boxes(tmp_path):
    secret = make_option("x_token", "", "Extra", "A token", "str", secret=True)
    plain = make_option("x_text", "", "Extra", "Some text", "str")
    with gr.Blocks():
        assert component_for(secret, "abc").type == "password"
        assert component_for(plain, "abc").type == "text"
    state = _state(tmp_path)
    try:
        state.settings.update({HF_TOKEN_SETTING: HF_SECRET})
        with gr.Blocks():
            tab = build_settings_tab(state.settings)
        assert tab.components[HF_TOKEN_SETTING].type == "password"
        assert tab.components[CIVITAI_TOKEN_SETTING].type == "password"
        assert tab.components["samples_filename_pattern"].type == "text"
    finally:
        state.queue.shutdown()
