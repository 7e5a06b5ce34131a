"""The built-in ControlNet on the tiny SD1 and its tiny ControlNet file: units through alwayson_scripts
(sd-webui-controlnet's fields), the /controlnet routes, preprocessors."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from sdweb.builtin_extensions.controlnet.preprocessors import BY_NAME, canny_edges
from sdweb.builtin_extensions.controlnet.units import parse_unit, units_from_args
from sdweb.cli import parse_options
from sdweb.core.errors import UserError
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny
from sdweb.testing.client import local_client

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 4, "sampler_name": "Euler", "seed": 21, "prompt": "a house"}


def _b64(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _square(size=64):
    image = Image.new("RGB", (size, size), (0, 0, 0))
    image.paste(Image.new("RGB", (size // 2, size // 2), (255, 255, 255)), (size // 4, size // 4))
    return image


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    write_tiny("controlnet", data / "models" / "ControlNet" / "control_tiny_canny.safetensors", seed=7)
    app_state = build_app_state(parse_options(["--data-dir", str(data), "--api"], {}))
    yield app_state
    app_state.queue.shutdown()


def _unit(**fields):
    return {"enabled": True, "module": "canny", "model": "control_tiny_canny", "image": _b64(_square()),
            "weight": 1.0, **fields}


def _generate(state, *units, request_type=Txt2ImgRequest, **extra):
    scripts = {"controlnet": {"args": list(units)}} if units else {}
    request = request_type(**SMALL, alwayson_scripts=scripts, **extra)
    run = state.service.txt2img if request_type is Txt2ImgRequest else state.service.img2img
    return run(request, None, NO_SAVE)


def _pixels(result):
    return np.asarray(result.images[0].convert("RGB"), dtype=np.int16)


def test_canny_unit_changes_the_image_weight_zero_does_not(state):
    plain = _generate(state)
    canny = _generate(state, _unit())
    assert np.abs(_pixels(canny) - _pixels(plain)).max() > 0
    assert np.abs(_pixels(_generate(state, _unit(weight=0.0))) - _pixels(plain)).max() <= 1
    info = canny.infotexts[0]
    assert 'ControlNet 0: "Module: canny, Model: control_tiny_canny [' in info and "Weight: 1.0" in info
    assert len(canny.images) == 2  # the detected map is appended (not saved)
    assert np.asarray(canny.images[1].convert("L")).max() == 255


def test_two_units_and_guidance_end_and_disabled_units(state):
    one = _pixels(_generate(state, _unit()))
    two = _generate(state, _unit(), _unit(module="invert", image=_b64(_square().rotate(45))))
    assert not np.array_equal(_pixels(two), one)
    assert "ControlNet 1:" in two.infotexts[0]
    assert not np.array_equal(_pixels(_generate(state, _unit(guidance_end=0.5))), one)
    disabled = _generate(state, _unit(enabled=False))
    assert np.array_equal(_pixels(disabled), _pixels(_generate(state)))


def test_legacy_integer_enums_and_aliases(state):
    unit = parse_unit({"enabled": True, "control_mode": 2, "resize_mode": 0, "lowvram": True, "guidance": 0.7}, 0)
    assert (unit.control_mode, unit.resize_mode, unit.low_vram, unit.guidance_end) == \
        ("ControlNet is more important", "Just Resize", True, 0.7)
    assert parse_unit({"resize_mode": "Inner Fit (Scale to Fit)"}, 0).resize_mode == "Crop and Resize"
    with pytest.raises(UserError, match="control_mode"):
        parse_unit({"control_mode": "Louder"}, 0)
    with pytest.raises(UserError, match="guidance_start"):
        parse_unit({"guidance_start": 0.8, "guidance_end": 0.2}, 0)
    result = _generate(state, _unit(control_mode=2, resize_mode=0))
    assert "Control Mode: ControlNet is more important" in result.infotexts[0]


def test_errors_name_the_problem(state):
    with pytest.raises(UserError, match="no input image"):
        _generate(state, _unit(image=None))
    with pytest.raises(UserError, match="not found") as caught:
        _generate(state, _unit(model="control_nope"))
    assert "control_tiny_canny" in caught.value.hint
    with pytest.raises(UserError, match="preprocessor 'sparkle'"):
        _generate(state, _unit(module="sparkle"))


def test_img2img_uses_the_init_image_when_the_unit_has_none(state):
    init = _square().rotate(30)
    result = _generate(state, _unit(image=None), request_type=Img2ImgRequest, init_images=[init])
    assert result.images[0].size == (64, 64) and "ControlNet 0:" in result.infotexts[0]


def test_routes(state):
    client = local_client(create_app(state))
    assert client.get("/controlnet/version").json() == {"version": 3}
    models = client.get("/controlnet/model_list").json()["model_list"]
    assert len(models) == 1 and models[0].startswith("control_tiny_canny [")
    modules = client.get("/controlnet/module_list").json()
    assert {"none", "canny", "invert", "threshold", "shuffle"} <= set(modules["module_list"])
    assert modules["module_detail"]["canny"]["sliders"][0]["name"] == "Low Threshold"
    assert client.get("/controlnet/settings").json() == {"control_net_unit_count": 3}
    detected = client.post("/controlnet/detect", json={"controlnet_module": "canny",
                                                       "controlnet_input_images": [_b64(_square(128))]})
    assert detected.status_code == 200 and detected.json()["info"] == "Success"
    edges = Image.open(io.BytesIO(base64.b64decode(detected.json()["images"][0])))
    assert np.asarray(edges.convert("L")).max() == 255
    assert client.post("/controlnet/detect", json={"controlnet_module": "canny"}).status_code == 422
    assert client.post("/controlnet/detect", json={"controlnet_module": "nope",
                                                   "controlnet_images": [_b64(_square())]}).status_code == 422
    scripts = client.get("/sdapi/v1/scripts").json()
    assert "controlnet m2m" in scripts["txt2img"]


def test_canny_finds_the_square_outline():
    gray = np.zeros((64, 64), dtype=np.float32)
    gray[16:48, 16:48] = 255
    edges = canny_edges(gray, 100, 200)
    assert edges[16:48, 14:18].any() and not edges[28:36, 28:36].any() and not edges[:8, :8].any()


@pytest.mark.parametrize("name", [pre for pre, item in BY_NAME.items() if not item.needs_weights])
def test_every_weightless_preprocessor_returns_an_rgb_map(name):
    pre = BY_NAME[name]
    out = pre.run(_square(96), 64, pre.threshold_a.value if pre.threshold_a else -1,
                  pre.threshold_b.value if pre.threshold_b else -1)
    assert out.mode == "RGB" and min(out.size) >= 8


def test_ui_values_become_units():
    flat = [True, _square(), False, True, "canny", "control_tiny_canny", 0.8, 0.0, 1.0, -1, -1, -1, "Balanced",
            "Just Resize"] + [False, None, False, False, "none", "None", 1.0, 0.0, 1.0, -1, -1, -1, "Balanced",
                              "Crop and Resize"]
    units = units_from_args(flat)
    assert [unit.enabled for unit in units] == [True, False] and units[0].weight == 0.8


@pytest.mark.parametrize("is_img2img", [False, True])
def test_api_defaults_equal_the_ui_values(state, is_img2img):
    """API jobs take ControlNet's defaults without building its UI (no Gradio import on the first job)."""
    import gradio as gr

    script = next(loaded.script for loaded in state.service.scripts.scripts if loaded.script.title() == "ControlNet")
    with gr.Blocks():
        from_ui = [getattr(component, "value", None) for component in script.ui(is_img2img)]
    assert script.api_defaults(is_img2img) == from_ui
    assert len(from_ui) == 3 * 14  # three units (the default count), UI_FIELDS each


@pytest.mark.slow  # CI time (30 min for everything); ./run-tests.sh -m slow runs it
def test_api_job_does_not_import_gradio(tmp_path):
    """The first API image of a fresh process builds no Gradio UI for the always-on scripts."""
    import subprocess
    import sys

    write_tiny("sd1", tmp_path / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    code = (
        "import sys\n"
        "from sdweb.cli import parse_options\n"
        "from sdweb.state import build_app_state\n"
        "from sdweb.core.requests import Txt2ImgRequest\n"
        "from sdweb.generation.service import SaveOptions\n"
        f"state = build_app_state(parse_options(['--data-dir', {str(tmp_path)!r}, '--no-hashing'], {{}}))\n"
        "state.service.txt2img(Txt2ImgRequest(prompt='a', steps=1, width=64, height=64), None,"
        " SaveOptions(save_samples=False, save_grid=False))\n"
        "state.queue.shutdown()\n"
        "print('gradio' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
