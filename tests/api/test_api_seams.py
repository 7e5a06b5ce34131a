"""The seams the extension layer and postprocessing plug into: scripts reach the typed request with their
canonical titles (A1111's 422s otherwise), and Extras / interrogate / upscaler lists call the backend."""

import base64
import io
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from sdweb.api.a1111.app import mount_api
from sdweb.api.a1111.seams import ApiBackends, ScriptDescription
from sdweb.cli import parse_options
from sdweb.state import build_app_state

SMALL = {"width": 64, "height": 64, "steps": 2}
SCRIPTS = {
    "txt2img": (ScriptDescription("X/Y/Z plot", False, False, ({"label": "X type", "value": "Seed"},)),
                ScriptDescription("ControlNet", True, False)),
    "img2img": (ScriptDescription("ControlNet", True, True),),
}


class Catalog:
    def scripts(self, mode):
        return SCRIPTS[mode]


class Extensions:
    def extensions(self):
        return [{"name": "sd-webui-controlnet", "remote": "https://example.invalid/cn.git", "branch": "main",
                 "commit_hash": "abc", "version": "abc", "commit_date": 1700000000, "enabled": True}]


class Postprocess:
    def __init__(self):
        self.calls = []

    def extras(self, images, params):
        self.calls.append(params)
        scale = params["upscaling_resize"]
        return [im.resize((int(im.width * scale), int(im.height * scale))) for im in images], "<p>done</p>"

    def upscalers(self):
        return [{"name": "R-ESRGAN 4x+", "model_name": "x4", "model_path": "/m", "model_url": None, "scale": 4}]

    def face_restorers(self):
        return [{"name": "CodeFormer", "cmd_dir": None}]

    def realesrgan_models(self):
        return [{"name": "R-ESRGAN 4x+", "path": "/m", "scale": 4}]

    def interrogate(self, image, model):
        return f"a {image.width}px picture ({model})"


@pytest.fixture(scope="module")
def seams(tmp_path_factory):
    state = build_app_state(parse_options(["--data-dir", str(tmp_path_factory.mktemp("seams")), "--api"], {}))
    state.service.scripts = None  # the fake catalog's scripts do not exist in the service; only the seam is tested
    backend = Postprocess()
    app = FastAPI()
    mount_api(app, state, backends=ApiBackends(scripts=Catalog(), extensions=Extensions(), postprocess=backend))
    with TestClient(app) as client:
        yield client, state, backend
    state.queue.shutdown()


def _b64(size=(32, 32)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_script_lists(seams):
    client, _, _ = seams
    assert client.get("/sdapi/v1/scripts").json() == {"txt2img": ["x/y/z plot", "controlnet"],
                                                       "img2img": ["controlnet"]}
    info = client.get("/sdapi/v1/script-info").json()
    xyz = next(item for item in info if item["name"] == "x/y/z plot")
    assert xyz["is_alwayson"] is False and xyz["is_img2img"] is False
    assert xyz["args"][0]["label"] == "X type" and xyz["args"][0]["value"] == "Seed"
    assert len(info) == 3
    assert client.get("/sdapi/v1/extensions").json()[0]["name"] == "sd-webui-controlnet"


def test_scripts_reach_the_typed_request_with_canonical_titles(seams):
    client, state, _ = seams
    response = client.post("/sdapi/v1/txt2img", json={
        "script_name": "x/y/z PLOT", "script_args": [1, "a"], "alwayson_scripts": {"controlnet": {"args": [{}]}},
        "force_task_id": "task(seam-1)", **SMALL})
    assert response.status_code == 200, response.text
    request = state.queue.get("task(seam-1)").request.request
    assert request.script_name == "X/Y/Z plot" and request.script_args == [1, "a"]
    assert request.alwayson_scripts == {"ControlNet": {"args": [{}]}}
    assert response.json()["parameters"]["script_name"] == "x/y/z PLOT", "parameters echo the request"


@pytest.mark.parametrize(("payload", "detail"), [
    ({"script_name": "Prompt matrix"}, "Script 'Prompt matrix' not found"),
    ({"script_name": "ControlNet"}, "Script 'ControlNet' not found"),
    ({"alwayson_scripts": {"ADetailer": {"args": []}}}, "always on script ADetailer not found"),
    ({"alwayson_scripts": {"X/Y/Z plot": {"args": []}}}, "Cannot have a selectable script in the always on"),
    ({"alwayson_scripts": {"ControlNet": "on"}}, "expected"),
])
def test_script_errors_are_a1111s_422(seams, payload, detail):
    client, _, _ = seams
    response = client.post("/sdapi/v1/txt2img", json={**SMALL, **payload})
    assert response.status_code == 422 and detail in response.json()["detail"]
    img2img = client.post("/sdapi/v1/img2img", json={"init_images": [_b64()], "script_name": "X/Y/Z plot", **SMALL})
    assert img2img.status_code == 422, "X/Y/Z plot is a txt2img script in this catalog"


def test_postprocess_backend(seams):
    client, _, backend = seams
    single = client.post("/sdapi/v1/extra-single-image", json={"image": "data:image/png;base64," + _b64(),
                                                               "upscaling_resize": 2, "upscaler_1": "R-ESRGAN 4x+"})
    assert single.status_code == 200, single.text
    body = single.json()
    assert body["html_info"] == "<p>done</p>"
    assert Image.open(io.BytesIO(base64.b64decode(body["image"]))).size == (64, 64)
    assert backend.calls[-1]["upscaler_1"] == "R-ESRGAN 4x+" and "image" not in backend.calls[-1]
    batch = client.post("/sdapi/v1/extra-batch-images", json={"imageList": [{"data": _b64(), "name": "a"},
                                                                            {"data": _b64((16, 16)), "name": "b"}],
                                                              "upscaling_resize": 1.5})
    assert [Image.open(io.BytesIO(base64.b64decode(i))).size for i in batch.json()["images"]] == [(48, 48),
                                                                                                   (24, 24)]
    bad = client.post("/sdapi/v1/extra-batch-images", json={"imageList": [{"data": "nope", "name": "a"}]})
    assert bad.status_code == 400 and "imageList[0].data" in bad.json()["detail"]
    assert client.post("/sdapi/v1/interrogate", json={"image": _b64()}).json() == {"caption": "a 32px picture (clip)"}
    assert client.post("/sdapi/v1/interrogate", json={}).status_code == 404
    assert client.get("/sdapi/v1/upscalers").json()[0]["name"] == "R-ESRGAN 4x+"
    assert client.get("/sdapi/v1/face-restorers").json() == [{"name": "CodeFormer", "cmd_dir": None}]
    assert client.get("/sdapi/v1/realesrgan-models").json()[0]["scale"] == 4


def test_without_a_postprocess_backend_extras_routes_are_501(seams):
    _, state, _ = seams
    app = FastAPI()
    mount_api(app, state, backends=ApiBackends())
    client = TestClient(app)
    for route in ("extra-single-image", "extra-batch-images", "interrogate"):
        response = client.post(f"/sdapi/v1/{route}", json={"image": _b64()})
        assert response.status_code == 501 and "not available" in response.json()["detail"], route
    assert [u["name"] for u in client.get("/sdapi/v1/upscalers").json()] == ["None", "Lanczos", "Nearest"]
    assert client.get("/sdapi/v1/face-restorers").json() == []


def test_info_still_a_json_string_with_scripts(seams):
    client, _, _ = seams
    body = client.post("/sdapi/v1/txt2img", json={"alwayson_scripts": {"ControlNet": {"args": []}}, **SMALL}).json()
    assert isinstance(json.loads(body["info"]), dict)
