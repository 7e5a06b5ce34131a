"""Extensions end to end on the tiny model: discovery, enable/disable, Script hooks with UI defaults and API
args, setup() callbacks (settings, API routes), a broken extension reported, built-in outpainting."""

import textwrap

import numpy as np
import pytest
from PIL import Image

from sdweb.cli import parse_options
from sdweb.core.errors import NotFoundError
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny
from sdweb.testing.client import local_client

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 3, "prompt": "a cat"}

PROBE = '''
    import gradio as gr
    from fastapi import APIRouter
    from sdweb.extensions.api import AlwaysVisible, OptionSpec, Script

    class PromptProbe(Script):
        def title(self):
            return "Prompt probe"

        def show(self, is_img2img):
            return AlwaysVisible

        def ui(self, is_img2img):
            return [gr.Checkbox(label="Enable", value=False), gr.Textbox(label="Suffix", value=", probed")]

        def before_process(self, p, enabled, suffix):
            if enabled:
                p.prompt = p.prompt + suffix
                p.extra_generation_params["Probe"] = "on"

    class Shouter(Script):
        def title(self):
            return "Shouter"

        def ui(self, is_img2img):
            return [gr.Slider(minimum=1, maximum=5, value=2, step=1)]

        def before_process(self, p, times):
            p.prompt = p.prompt.upper() + "!" * int(times)

    class Failing(Script):
        def title(self):
            return "Failing"

        def show(self, is_img2img):
            return AlwaysVisible

        def process(self, p):
            raise RuntimeError("boom in process")

    def setup(context):
        context.add_option(OptionSpec("probe_greeting", "hello", "Probe greeting", "Prompt probe"))
        router = APIRouter()

        @router.get("/probe/hello")
        def hello():
            return {"greeting": context.setting("probe_greeting")}

        context.on_app_started(lambda app: app.include_router(router))
'''


def _write_extension(root, name, files):
    for relative, text in files.items():
        path = root / "extensions" / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_tiny("sd1", root / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    _write_extension(root, "probe", {"scripts/probe.py": PROBE, "javascript/probe.js": "window.probe = 1;",
                                     "style.css": ".probe { color: red; }"})
    _write_extension(root, "broken", {"scripts/broken.py": "raise ImportError('this extension is broken')\n"})
    _write_extension(root, "quitter", {"scripts/quit.py": "import sys\nsys.exit(3)\n"})
    return root


@pytest.fixture(scope="module")
def state(data):
    app_state = build_app_state(parse_options(["--data-dir", str(data), "--api"], {}))
    yield app_state
    app_state.queue.shutdown()


def test_extensions_are_discovered_and_broken_ones_reported(state):
    by_name = {ext.name: ext for ext in state.extensions.extensions}
    assert by_name["probe"].loaded and by_name["probe"].scripts == ["Prompt probe", "Shouter", "Failing"]
    assert not by_name["broken"].loaded and "this extension is broken" in by_name["broken"].error
    assert not by_name["quitter"].loaded and "SystemExit" in by_name["quitter"].error
    assert "poor_mans_outpainting" not in by_name  # A1111's own scripts are not extensions
    assert "window.probe = 1;" in state.extensions.javascript()
    assert ".probe" in state.extensions.css()


def test_always_on_script_defaults_and_api_args(state):
    plain = state.service.txt2img(Txt2ImgRequest(**SMALL), None, NO_SAVE)
    assert plain.infotexts[0].startswith("a cat\n")  # defaults: the checkbox is off
    assert any("boom in process" in note for note in plain.notes)  # a failing script is noted, not fatal
    probed = state.service.txt2img(Txt2ImgRequest(**SMALL, alwayson_scripts={"PROMPT PROBE": {"args": [True]}}),
                                   None, NO_SAVE)
    assert probed.infotexts[0].startswith("a cat, probed\n") and "Probe: on" in probed.infotexts[0]


def test_selected_script_by_name_with_args(state):
    result = state.service.txt2img(Txt2ImgRequest(**SMALL, script_name="shouter", script_args=[3]), None, NO_SAVE)
    assert result.infotexts[0].startswith("A CAT!!!\n")
    with pytest.raises(NotFoundError, match="not found") as caught:
        state.service.txt2img(Txt2ImgRequest(**SMALL, script_name="nope"), None, NO_SAVE)
    assert "shouter" in caught.value.hint


def test_extension_setting_and_route(state):
    assert state.settings.get("probe_greeting") == "hello"
    assert "probe_greeting" in {option.key for option in state.settings.extra_options()}
    client = local_client(create_app(state))
    assert client.get("/probe/hello").json() == {"greeting": "hello"}


def test_disabling_removes_scripts_routes_and_settings(data):
    disabled = build_app_state(parse_options(["--data-dir", str(data), "--api"], {}))
    try:
        disabled.settings.update({"disabled_extensions": ["probe"]})
    finally:
        disabled.queue.shutdown()
    again = build_app_state(parse_options(["--data-dir", str(data), "--api"], {}))
    try:
        assert not again.extensions.find("probe").loaded
        request = Txt2ImgRequest(**SMALL, alwayson_scripts={"prompt probe": {"args": [True]}})
        assert again.service.txt2img(request, None, NO_SAVE).infotexts[0].startswith("a cat\n")
        assert local_client(create_app(again)).get("/probe/hello").status_code == 404
        assert "probe_greeting" not in {option.key for option in again.settings.extra_options()}
    finally:
        again.settings.update({"disabled_extensions": []})
        again.queue.shutdown()


def test_disable_all_extensions_flag_keeps_nothing(data):
    state = build_app_state(parse_options(["--data-dir", str(data), "--disable-all-extensions"], {}))
    try:
        assert not any(ext.loaded for ext in state.extensions.extensions)
    finally:
        state.queue.shutdown()


def test_builtin_poor_mans_outpainting_by_script_name(state):
    init = Image.new("RGB", (64, 64), (10, 200, 30))
    request = Img2ImgRequest(init_images=[init], script_name="Poor man's outpainting",
                             script_args=[32, 4, "fill", ["right"]], **SMALL)
    result = state.service.img2img(request, None, NO_SAVE)
    assert result.images[0].size == (128, 64)
    pixels = np.asarray(result.images[0].convert("RGB"), dtype=np.int16)
    assert np.abs(pixels[:, :40] - np.array([10, 200, 30])).max() <= 2  # the original stays
    assert "Script: Poor man's outpainting" in result.infotexts[0]


def test_scripts_and_extension_status_appear_on_the_page(state):
    from sdweb.ui.app import build_blocks
    from sdweb.ui.tabs.extensions import installed_table

    config = build_blocks(state).get_config_file()
    props = [component["props"] for component in config["components"]]
    elem_ids = {prop.get("elem_id") for prop in props}
    assert {"txt2img_script_prompt_probe", "img2img_script_prompt_probe", "txt2img_script_shouter"} <= elem_ids
    img2img_script = next(prop for prop in props if prop.get("elem_id") == "img2img_script")
    assert ["Poor man's outpainting"] in [list(choice[:1]) for choice in img2img_script["choices"]]
    table = installed_table(state)
    assert "this extension is broken" in table and "probe" in table
