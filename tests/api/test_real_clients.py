"""Real A1111 clients against a real sdweb server on 127.0.0.1: webuiapi, a course-style requests script,
and sd-parsers reading the PNGs we return."""

import base64
import io
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
from PIL import Image

from sdweb.testing.server import free_port, stop_process_group, wait_until_answers

webuiapi = pytest.importorskip("webuiapi")

SMALL = {"width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module", params=["local", pytest.param("ray", marks=[pytest.mark.ray, pytest.mark.slow])])
def server(request, tmp_path_factory):
    """The server on its default local worker, and with `--workers ray` (two actors on one box, a private Ray
    that the server starts itself): the clients must not see a difference."""
    workers = []
    if request.param == "ray":
        pytest.importorskip("ray")
        workers = ["--workers", "ray", "--device-ids", "0,1"]
    data = tmp_path_factory.mktemp("data")
    from sdweb.testing.tiny import write_tiny

    # the demo checkpoint is a tiny SD1: a tiny SD1 ControlNet fits it
    write_tiny("controlnet", data / "models" / "ControlNet" / "control_tiny_canny.safetensors", seed=7)
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(data / "gradio")}
    process = subprocess.Popen([sys.executable, "-m", "sdweb", "--nowebui", "--no-download-sd-model", "--data-dir", str(data), "--port",
                                str(port), *workers], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_until_answers(f"{base}/internal/ping", process, timeout=300 if workers else 120)
    yield base, port, data
    stop_process_group(process)


@pytest.mark.slow  # CI time (30 min for everything); ./run-tests.sh -m slow runs it
def test_course_style_script(server, tmp_path):
    base, _, _ = server
    payload = {"prompt": "a lighthouse at dusk", "negative_prompt": "blurry", "seed": 42, **SMALL}
    response = requests.post(f"{base}/sdapi/v1/txt2img", json=payload, timeout=300)
    response.raise_for_status()
    image = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
    image.save(tmp_path / "output.png")
    assert Image.open(tmp_path / "output.png").size == (64, 64)


def test_webuiapi_txt2img_img2img_pnginfo_options(server):
    _, port, _ = server
    api = webuiapi.WebUIApi(host="127.0.0.1", port=port, sampler="Euler a", steps=2)
    result = api.txt2img(prompt="a cat", negative_prompt="ugly", seed=5, width=64, height=64)
    assert result.image.size == (64, 64) and result.info["seed"] == 5
    assert "Negative prompt: ugly" in result.image.info["parameters"]
    mask = Image.new("RGB", (64, 64), "black")
    mask.paste((255, 255, 255), (16, 16, 48, 48))
    inpainted = api.img2img(images=[result.image], mask_image=mask, prompt="a dog", width=64, height=64,
                            denoising_strength=0.6, steps=2)
    assert inpainted.image.size == (64, 64)
    info = api.png_info(result.image)
    assert info.info.startswith("a cat\nNegative prompt: ugly")
    names = [m["title"] for m in api.get_sd_models()]
    api.util_set_model(names[0])
    assert api.get_options()["sd_model_checkpoint"] == names[0]
    api.set_options({"CLIP_stop_at_last_layers": 2})
    assert api.get_options()["CLIP_stop_at_last_layers"] == 2
    api.set_options({"CLIP_stop_at_last_layers": 1})
    assert "Euler a" in api.util_get_sampler_names()
    assert [s["name"] for s in api.get_schedulers()][0] == "automatic"


def test_webuiapi_progress_and_interrupt(server):
    _, port, _ = server
    api = webuiapi.WebUIApi(host="127.0.0.1", port=port, sampler="Euler", steps=150)
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("r", api.txt2img(prompt="x", width=64, height=64,
                                                                                  n_iter=4)))
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = api.get_progress()
        if progress["state"]["sampling_step"] > 0:
            break
        time.sleep(0.05)
    assert progress["state"]["job_count"] == 4 and progress["progress"] > 0
    api.interrupt()
    thread.join(120)
    # as A1111, what was being made comes back; with two workers, one image from each
    assert 1 <= len(outcome["r"].images) <= len(requests.get(f"http://127.0.0.1:{port}/sdweb/v1/workers",
                                                                timeout=30).json())
    assert api.get_progress()["state"]["job_count"] == 0


def test_sd_parsers_reads_our_png(server):
    sd_parsers = pytest.importorskip("sd_parsers")
    base, _, _ = server
    payload = {"prompt": "a red fox", "negative_prompt": "text", "seed": 77, "cfg_scale": 6.5,
               "sampler_name": "DPM++ 2M", **SMALL}
    body = requests.post(f"{base}/sdapi/v1/txt2img", json=payload, timeout=300).json()
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    info = sd_parsers.ParserManager().parse(image)
    assert info is not None
    assert [p.value for p in info.prompts] == ["a red fox"]
    assert [p.value for p in info.negative_prompts] == ["text"]
    sampler = info.samplers[0]
    assert sampler.name == "DPM++ 2M"
    assert sampler.parameters["seed"] == "77" or sampler.parameters["seed"] == 77
    assert str(sampler.parameters["steps"]) == "2" and str(sampler.parameters["cfg_scale"]) == "6.5"


def test_webuiapi_extra_single_image(server):
    _, port, _ = server
    api = webuiapi.WebUIApi(host="127.0.0.1", port=port)
    source = Image.new("RGB", (40, 24), (200, 30, 90))
    result = api.extra_single_image(image=source, upscaler_1="Lanczos", upscaling_resize=2)
    assert result.image.size == (80, 48)


def test_webuiapi_controlnet_unit_end_to_end(server):
    _, port, _ = server
    api = webuiapi.WebUIApi(host="127.0.0.1", port=port, sampler="Euler", steps=3)
    assert "control_tiny_canny" in " ".join(api.controlnet_model_list())
    assert "canny" in api.controlnet_module_list()
    square = Image.new("RGB", (64, 64), "black")
    square.paste((255, 255, 255), (16, 16, 48, 48))
    model = next(name for name in api.controlnet_model_list() if "control_tiny_canny" in name)
    common = {"prompt": "a house", "seed": 9, "width": 64, "height": 64}
    plain = api.txt2img(**common)
    unit = webuiapi.ControlNetUnit(image=square, module="canny", model=model, weight=1.0)
    controlled = api.txt2img(**common, controlnet_units=[unit])
    assert controlled.image.size == (64, 64)
    difference = abs(np.asarray(plain.image, dtype=np.int16) - np.asarray(controlled.image, dtype=np.int16))
    assert difference.max() > 0
    assert "ControlNet 0:" in controlled.info["infotexts"][0]


def test_webuiapi_builtin_scripts(server):
    """The issue's client call: SD upscale with ["", 8, "Lanczos", 2.0]; and an X/Y/Z plot's grid comes first."""
    _, port, _ = server
    api = webuiapi.WebUIApi(host="127.0.0.1", port=port, sampler="Euler", steps=1)
    init = Image.new("RGB", (32, 32), (200, 60, 60))
    upscaled = api.img2img(images=[init], prompt="a cat", width=64, height=64, denoising_strength=0.3,
                           script_name="sd upscale", script_args=["", 8, "Lanczos", 2.0])
    assert len(upscaled.images) == 1 and upscaled.image.size == (64, 64)
    assert "SD upscale upscaler: Lanczos" in upscaled.image.info["parameters"]
    plot = api.txt2img(prompt="a cat", width=64, height=64, seed=3, script_name="X/Y/Z plot",
                       script_args=[4, "1, 2", [], 0, "", [], 0, "", [], True, True, False, False, False, False,
                                    False, 0, False])
    assert len(plot.images) == 3 and plot.info["index_of_first_image"] == 1
    assert plot.images[0].width == 2 * 64 and plot.images[0].height > 64, "X labels only"
    assert "X Type: Steps" in plot.images[0].info["parameters"]


def test_the_jobs_ran_on_the_workers_the_server_was_started_with(server, request):
    base, _, _ = server
    workers = requests.get(f"{base}/sdweb/v1/workers", timeout=30).json()
    finished = requests.get(f"{base}/sdweb/v1/queue", timeout=30).json()["finished"]
    expected = ["ray-0", "ray-1"] if request.node.callspec.params["server"] == "ray" else ["local-0"]
    assert [worker["id"] for worker in workers] == expected
    assert finished and {job["worker"] for job in finished} <= set(expected)
