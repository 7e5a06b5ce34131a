"""/sdapi/v1 generation routes on the built-in demo model, through the real service and queue."""

import json
import threading
import time

import pytest
from api_kit import api_app, image_of, png_b64
from PIL import Image

SMALL = {"width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    with api_app(data) as (client, state):
        yield client, state, data


def test_txt2img_like_a1111(api):
    client, _, data = api
    response = client.post("/sdapi/v1/txt2img", json={"prompt": "a cat", "negative_prompt": "blurry", "seed": 7,
                                                      "batch_size": 2, "unknown_field": 1, **SMALL})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["images"]) == 2
    image = image_of(body["images"][0])
    assert image.size == (64, 64)
    assert "Negative prompt: blurry" in image.info["parameters"]
    assert "Sampler: Euler," in image.info["parameters"]  # the API's default sampler_index
    info = json.loads(body["info"])
    assert info["all_seeds"] == [7, 8] and info["seed"] == 7 and len(info["infotexts"]) == 2
    assert body["parameters"]["prompt"] == "a cat" and body["parameters"]["steps"] == 2
    assert not list((data / "outputs").rglob("*.png")), "the API saves only with save_images"


def test_same_seed_same_image_and_saving(api):
    client, _, data = api
    first = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "seed": 3, "save_images": True, **SMALL}).json()
    second = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "seed": 3, **SMALL}).json()
    assert image_of(first["images"][0]).tobytes() == image_of(second["images"][0]).tobytes()
    saved = list((data / "outputs" / "txt2img-images").rglob("*-3.png"))
    assert len(saved) == 1


@pytest.mark.parametrize(("payload", "status", "word"), [
    ({"sampler_name": "No Such Sampler"}, 404, "No Such Sampler"),
    ({"width": 65}, 422, "width"),
    ({"steps": 0}, 422, "steps"),
    ({"script_name": "no such plot"}, 422, "Script 'no such plot' not found"),
    ({"alwayson_scripts": {"NoSuchScript": {"args": []}}}, 422, "always on script NoSuchScript not found"),
])
def test_bad_requests_are_4xx_and_next_request_works(api, payload, status, word):
    client, _, _ = api
    response = client.post("/sdapi/v1/txt2img", json={**SMALL, **payload})
    assert response.status_code == status
    assert word in response.text
    assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200


def test_legacy_sampler_names_and_samplers_list(api):
    client, _, _ = api
    names = [s["name"] for s in client.get("/sdapi/v1/samplers").json()]
    assert names[0] == "DPM++ 2M" and "Euler a" in names
    body = client.post("/sdapi/v1/txt2img", json={"sampler_name": "DPM++ 2M Karras", **SMALL}).json()
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in json.loads(body["info"])["infotexts"][0]
    assert client.get("/sdapi/v1/schedulers").json()[0]["name"] == "automatic"


def test_img2img_with_mask_and_data_prefix(api):
    client, _, _ = api
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    response = client.post("/sdapi/v1/img2img", json={"init_images": [png_b64(init, prefix=True)],
                                                      "mask": png_b64(mask), "denoising_strength": 0.5, **SMALL})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parameters"]["init_images"] is None
    result = image_of(body["images"][0]).convert("RGB")
    assert result.getpixel((2, 2)) == (200, 30, 30), "unmasked pixels stay as they were"
    assert client.post("/sdapi/v1/img2img", json={**SMALL}).status_code == 404
    bad = client.post("/sdapi/v1/img2img", json={"init_images": ["not an image"], **SMALL})
    assert bad.status_code == 400 and "init_images[0]" in bad.json()["detail"]


def test_png_info_reads_our_infotext(api):
    client, _, _ = api
    body = client.post("/sdapi/v1/txt2img", json={"prompt": "a dog", **SMALL}).json()
    info = client.post("/sdapi/v1/png-info", json={"image": body["images"][0]}).json()
    assert info["info"].startswith("a dog\nSteps: 2")
    assert info["parameters"]["Steps"] == "2" and info["parameters"]["Prompt"] == "a dog"


def test_progress_and_interrupt_during_a_job(api):
    client, _, _ = api
    assert client.get("/sdapi/v1/progress").json()["state"]["job_count"] == 0
    results = {}

    def generate():
        results["response"] = client.post("/sdapi/v1/txt2img", json={**SMALL, "steps": 150, "n_iter": 3})

    thread = threading.Thread(target=generate)
    thread.start()
    deadline = time.monotonic() + 120
    progress = None
    while time.monotonic() < deadline:
        progress = client.get("/sdapi/v1/progress").json()
        if progress["state"]["sampling_step"] > 0:
            break
        time.sleep(0.05)
    assert progress["state"]["job"].startswith("task(")
    assert 0 < progress["progress"] <= 1
    assert client.post("/sdapi/v1/interrupt").json() == {}
    thread.join(120)
    response = results["response"]
    assert response.status_code == 200
    assert len(response.json()["images"]) == 1, "the interrupted batch still returns its partial image"


def test_infotext_field_fills_unset_fields(api):
    client, _, _ = api
    text = "a castle\nNegative prompt: fog\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 11, Size: 64x64"
    body = client.post("/sdapi/v1/txt2img", json={"infotext": text, "steps": 2}).json()
    info = json.loads(body["info"])
    assert info["prompt"] == "a castle" and info["negative_prompt"] == "fog" and info["seed"] == 11
    assert info["steps"] == 2 and info["sampler_name"] == "Euler a" and info["cfg_scale"] == 5


def test_unavailable_features_say_so(api):
    client, _, _ = api
    response = client.post("/sdapi/v1/train/embedding", json={})
    assert response.status_code == 501 and "not available" in response.json()["detail"]
