"""The /sdapi/v1 contract on the demo model through create_app (--nowebui): every route answers, A1111's
shapes and quirks, override_settings, grids, errors and faults, and the shared FIFO queue."""

import json
import threading

import pytest
from api_kit import image_of, png_b64
from PIL import Image

from sdweb.cli import parse_options
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client
from sdweb.testing.tiny import write_tiny

SMALL = {"width": 64, "height": 64, "steps": 2}
# Processed.js() keys (A1111 1.10; strict clients such as sd-backend-client validate all of them).
INFO_KEYS = {"prompt", "all_prompts", "negative_prompt", "all_negative_prompts", "seed", "all_seeds", "subseed",
             "all_subseeds", "subseed_strength", "width", "height", "sampler_name", "cfg_scale", "steps",
             "batch_size", "restore_faces", "face_restoration_model", "sd_model_name", "sd_model_hash",
             "sd_vae_name", "sd_vae_hash", "seed_resize_from_w", "seed_resize_from_h", "denoising_strength",
             "extra_generation_params", "index_of_first_image", "infotexts", "styles", "job_timestamp",
             "clip_skip", "is_using_inpainting_conditioning", "version"}
GET_ROUTES = ["cmd-flags", "options", "samplers", "schedulers", "upscalers", "latent-upscale-modes", "sd-models",
              "sd-vae", "loras", "embeddings", "hypernetworks", "face-restorers", "realesrgan-models",
              "prompt-styles", "memory", "scripts", "script-info", "extensions", "progress"]
POST_ROUTES = ["refresh-checkpoints", "refresh-vae", "refresh-loras", "refresh-embeddings", "interrupt", "skip",
               "unload-checkpoint", "reload-checkpoint"]
POSTPROCESS_ROUTES = ["extra-single-image", "extra-batch-images", "interrogate"]
NOT_BUILT = ["create/embedding", "train/embedding", "create/hypernetwork", "train/hypernetwork"]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    state = build_app_state(parse_options(["--data-dir", str(data), "--nowebui"], {}))
    with local_client(create_app(state)) as client:
        yield client, state, data
    state.queue.shutdown()


def test_every_route_answers(api):
    client, _, _ = api
    for route in GET_ROUTES:
        assert client.get(f"/sdapi/v1/{route}").status_code == 200, route
    for route in POST_ROUTES:
        response = client.post(f"/sdapi/v1/{route}")
        assert response.status_code == 200, (route, response.text)
    for route in NOT_BUILT:
        response = client.post(f"/sdapi/v1/{route}", json={})
        assert response.status_code == 501, route
        body = response.json()
        assert body["error"] == "NotImplemented" and "not available" in body["detail"] and body["body"] == ""
    for route in POSTPROCESS_ROUTES:  # wired on the real app: an empty body is the user's error, not a 501
        response = client.post(f"/sdapi/v1/{route}", json={})
        assert 400 <= response.status_code < 500 and response.status_code != 501, (route, response.text)
    assert client.post("/sdapi/v1/server-stop").status_code == 404, "needs --api-server-stop"
    paths = client.get("/openapi.json").json()["paths"]
    assert {f"/sdapi/v1/{r}" for r in GET_ROUTES + POST_ROUTES + NOT_BUILT + POSTPROCESS_ROUTES} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_list_shapes(api):
    client, state, _ = api
    assert client.get("/sdapi/v1/hypernetworks").json() == []
    scripts = client.get("/sdapi/v1/scripts").json()
    assert set(scripts) == {"txt2img", "img2img"}
    assert all(title == title.lower() for titles in scripts.values() for title in titles)
    assert [u["name"] for u in client.get("/sdapi/v1/upscalers").json()][:1] == ["None"]
    assert client.get("/sdapi/v1/latent-upscale-modes").json()[0] == {"name": "Latent"}
    model = client.get("/sdapi/v1/sd-models").json()[0]
    assert set(model) == {"title", "model_name", "hash", "sha256", "filename", "config"}
    assert set(client.get("/sdapi/v1/memory").json()) >= {"ram", "cuda"}
    flags = client.get("/sdapi/v1/cmd-flags").json()
    assert flags["nowebui"] is True and "webui_is_non_local" in flags


def test_extras_on_the_real_app_upscale_2x_through_the_queue(api):
    client, state, data = api
    source = Image.linear_gradient("L").resize((40, 24)).convert("RGB")
    response = client.post("/sdapi/v1/extra-single-image", json={
        "image": "data:image/png;base64," + png_b64(source), "upscaling_resize": 2, "upscaler_1": "Lanczos"})
    assert response.status_code == 200, response.text
    body = response.json()
    result = image_of(body["image"])
    assert result.size == (80, 48)
    assert result.info.get("postprocessing", "").startswith("Postprocess upscale by: 2")  # the PNG keeps it
    assert "Postprocess upscale by: 2" in body["html_info"] and "Postprocess upscaler: Lanczos" in body["html_info"]
    finished = [job for job in state.queue.finished() if job.kind == "extras"]
    assert finished and finished[-1].status == "done", "extras run as a job of the shared queue"
    assert not list((data / "outputs").rglob("extras-images/*")), "API extras are not saved (as in A1111)"
    batch = client.post("/sdapi/v1/extra-batch-images", json={
        "imageList": [{"data": png_b64(source), "name": "a"}, {"data": png_b64(source.resize((10, 10))), "name": "b"}],
        "resize_mode": 1, "upscaling_resize_w": 30, "upscaling_resize_h": 20, "upscaler_1": "Nearest"})
    assert [image_of(image).size for image in batch.json()["images"]] == [(30, 20), (30, 20)]
    upscalers = [item["name"] for item in client.get("/sdapi/v1/upscalers").json()]
    assert upscalers[:3] == ["None", "Lanczos", "Nearest"]


def test_extras_user_errors_are_4xx(api):
    client, _, _ = api
    image = png_b64(Image.new("RGB", (16, 16)))
    unknown = client.post("/sdapi/v1/extra-single-image", json={"image": image, "upscaler_1": "No such model"})
    assert unknown.status_code == 404 and "No such model" in unknown.json()["detail"]
    assert "Lanczos" in unknown.json()["detail"] + unknown.json().get("hint", ""), "the error lists the upscalers"
    missing = client.post("/sdapi/v1/interrogate", json={"image": image})
    assert missing.status_code == 404 and "model" in missing.json()["detail"].lower()
    assert client.post("/sdapi/v1/extra-single-image", json={"image": "nope"}).status_code == 400
    assert client.get("/sdapi/v1/progress").status_code == 200, "the queue keeps serving"


def test_progress_shape_when_idle(api):
    client, _, _ = api
    body = client.get("/sdapi/v1/progress", params={"skip_current_image": "true"}).json()
    assert body["progress"] == 0 and body["eta_relative"] == 0 and body["current_image"] is None
    assert set(body["state"]) == {"skipped", "interrupted", "stopping_generation", "job", "job_count",
                                  "job_timestamp", "job_no", "sampling_step", "sampling_steps"}


def test_embeddings_loras_and_styles_from_the_files(api):
    client, state, data = api
    write_tiny("embedding", data / "embeddings" / "tiny-pt.pt", fmt="ckpt")
    write_tiny("embedding", data / "embeddings" / "tiny-st.safetensors")
    write_tiny("embedding-sdxl", data / "embeddings" / "tiny-xl.safetensors")
    (data / "embeddings" / "broken.pt").write_bytes(b"not a pickle")
    write_tiny("lora", data / "models" / "Lora" / "tiny-lora.safetensors")
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nCinematic,"{prompt}, film grain",blurry\n'
                                     "Plain,a photo,\n", encoding="utf-8")
    assert client.post("/sdapi/v1/refresh-embeddings").json() is None
    client.post("/sdapi/v1/refresh-loras")
    body = client.get("/sdapi/v1/embeddings").json()
    assert set(body) == {"loaded", "skipped"}
    assert set(body["loaded"]) == {"tiny-pt", "tiny-st"}, "the SD1 ones fit the (tiny SD1) demo model"
    assert set(body["skipped"]) == {"tiny-xl", "broken"}
    item = body["loaded"]["tiny-pt"]
    assert item["vectors"] == 2 and isinstance(item["shape"], int)
    assert set(item) == {"step", "sd_checkpoint", "sd_checkpoint_name", "shape", "vectors"}
    lora = client.get("/sdapi/v1/loras").json()[0]
    assert lora["name"] == "tiny-lora" and lora["metadata"]["ss_network_module"]
    assert client.get("/sdapi/v1/prompt-styles").json() == [
        {"name": "Cinematic", "prompt": "{prompt}, film grain", "negative_prompt": "blurry"},
        {"name": "Plain", "prompt": "a photo", "negative_prompt": ""}]


def test_info_keys_grid_first_and_send_images(api):
    client, _, _ = api
    body = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "batch_size": 2, "save_images": True,
                                                  **SMALL}).json()
    info = json.loads(body["info"])
    assert set(info) >= INFO_KEYS
    assert len(body["images"]) == 3 and info["index_of_first_image"] == 1
    assert len(info["infotexts"]) == 3 and image_of(body["images"][0]).size == (128, 64), "the grid comes first"
    quiet = client.post("/sdapi/v1/txt2img", json={"send_images": False, **SMALL}).json()
    assert quiet["images"] == [] and set(json.loads(quiet["info"])) >= INFO_KEYS


def test_null_means_default_and_parameters_echo_the_infotext_merge(api):
    client, _, _ = api
    text = "a tower\nSteps: 3, Sampler: Euler a, CFG scale: 4, Seed: 5, Size: 64x64"
    body = client.post("/sdapi/v1/txt2img", json={"infotext": text, "steps": 2, "seed": None, "styles": None,
                                                  "sampler_index": "Euler", "not_a_field": [1]})
    assert body.status_code == 200, body.text
    echo = body.json()["parameters"]
    assert echo["prompt"] == "a tower" and echo["steps"] == 2 and echo["sampler_name"] == "Euler a"
    assert echo["seed"] == 5, "null is the default, so the infotext fills it"
    assert "not_a_field" not in echo


def test_override_settings_apply_to_one_job_unless_kept(api):
    client, state, _ = api
    before = state.settings.get("CLIP_stop_at_last_layers")
    body = client.post("/sdapi/v1/txt2img", json={"override_settings": {"CLIP_stop_at_last_layers": 2}, **SMALL})
    assert "Clip skip: 2" in json.loads(body.json()["info"])["infotexts"][0]
    assert state.settings.get("CLIP_stop_at_last_layers") == before
    bad = client.post("/sdapi/v1/txt2img", json={"override_settings": {"CLIP_stop_at_last_layers": "x"}, **SMALL})
    assert bad.status_code == 422 and "CLIP_stop_at_last_layers" in bad.json()["detail"]
    ignored = client.post("/sdapi/v1/txt2img", json={"override_settings": {"api_enable_requests": False,
                                                                           "eta_noise_seed_delta": 31337},
                                                     "override_settings_restore_afterwards": False, **SMALL})
    assert ignored.status_code == 200
    assert state.settings.get("eta_noise_seed_delta") == 31337, "kept: restore_afterwards was false"
    assert state.settings.get("api_enable_requests") is True, "restrict_api keys are never set from the API"
    client.post("/sdapi/v1/options", json={"eta_noise_seed_delta": 0})


def test_user_errors_are_4xx_faults_5xx_and_the_server_keeps_serving(api, monkeypatch):
    import torch

    from sdweb.generation import service as service_module

    client, _, _ = api
    real = service_module.run_batch

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(service_module, "run_batch", exhausted)
    oom = client.post("/sdapi/v1/txt2img", json=SMALL)
    assert oom.status_code == 400
    assert oom.json()["code"] == "out_of_memory" and "--medvram" in oom.json()["hint"]
    assert set(oom.json()) >= {"error", "detail", "body", "errors"}

    def broken(*args, **kwargs):
        raise RuntimeError("something no user can fix")

    monkeypatch.setattr(service_module, "run_batch", broken)
    fault = local_client(client.app, raise_server_exceptions=False).post("/sdapi/v1/txt2img", json=SMALL)
    assert fault.status_code == 500 and fault.json()["error"] == "RuntimeError"
    monkeypatch.setattr(service_module, "run_batch", real)
    assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200
    assert client.post("/sdapi/v1/png-info", json={"image": "data:image/png;base64,AAAA"}).status_code == 400
    assert client.post("/sdapi/v1/txt2img", content=b"{not json", headers={"content-type": "application/json"}
                       ).status_code in (400, 422)


def test_unload_and_reload_go_through_the_queue(api):
    client, state, _ = api
    client.post("/sdapi/v1/txt2img", json=SMALL)
    assert state.manager.loaded_titles()
    assert client.post("/sdapi/v1/unload-checkpoint").json() == {}
    assert state.manager.loaded_titles() == []
    assert client.post("/sdapi/v1/reload-checkpoint").json() == {}
    assert state.manager.loaded_titles()


def test_ten_requests_at_once_all_complete_in_submission_order(api):
    client, state, _ = api
    responses: dict[int, object] = {}

    def send(index: int) -> None:
        responses[index] = client.post("/sdapi/v1/txt2img", json={
            "prompt": f"job {index}", "seed": index, "force_task_id": f"task(api-concurrent-{index})", **SMALL})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert sorted(responses) == list(range(10))
    assert all(r.status_code == 200 for r in responses.values())
    assert [json.loads(responses[i].json()["info"])["seed"] for i in range(10)] == list(range(10))
    jobs = [state.queue.get(f"task(api-concurrent-{i})") for i in range(10)]
    assert all(job is not None and job.status == "done" for job in jobs), "none lost"
    by_submission = sorted(jobs, key=lambda job: job.created_at)
    started = [job.progress.started_at for job in by_submission]
    finished = [job.finished_at for job in by_submission]
    assert started == sorted(started) and finished == sorted(finished), "FIFO by submission"


def test_progress_reports_a_job_the_ui_submitted(api):
    from sdweb.core.requests import Txt2ImgRequest
    from sdweb.generation.service import SaveOptions

    client, state, _ = api
    job = state.submit("txt2img", Txt2ImgRequest(width=64, height=64, steps=150, n_iter=2),
                       SaveOptions(save_samples=False, save_grid=False))
    try:
        for _ in range(2000):
            progress = client.get("/sdapi/v1/progress").json()
            if progress["state"]["sampling_step"] > 0:
                break
        assert progress["state"]["job"] == job.id and progress["state"]["job_count"] == 2
        assert progress["current_image"] is None or image_of(progress["current_image"]).size[0] > 0
        assert client.get("/sdapi/v1/progress?skip_current_image=true").json()["current_image"] is None
    finally:
        client.post("/sdapi/v1/interrupt")
        job.finished.wait(120)


def test_scripts_come_from_the_extension_layer(api):
    client, state, _ = api
    scripts = client.get("/sdapi/v1/scripts").json()
    always, selectable = state.extensions.runner.visible(False)
    assert scripts["txt2img"] == [s.script.title().lower() for s in [*always, *selectable]]
    if "controlnet" in scripts["txt2img"]:  # webuiapi sends this when it sees ControlNet installed
        body = client.post("/sdapi/v1/txt2img", json={"alwayson_scripts": {"ControlNet": {"args": []}}, **SMALL})
        assert body.status_code == 200, body.text
    info = {item["name"]: item for item in client.get("/sdapi/v1/script-info").json()}
    assert all(set(item) >= {"name", "is_alwayson", "is_img2img", "args"} for item in info.values())
    missing = client.post("/sdapi/v1/txt2img", json={"script_name": "no such script", **SMALL})
    assert missing.status_code == 422 and missing.json()["detail"] == "Script 'no such script' not found"


def test_options_name_the_checkpoint_in_use_never_an_empty_string(api):
    """Bug 11: GET /options said sd_model_checkpoint "" while a model was loaded; clients read it from there."""
    client, state, _ = api
    first = state.registry.checkpoints[0]
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == first.title  # before any load
    assert client.post("/sdapi/v1/reload-checkpoint").status_code == 200
    options = client.get("/sdapi/v1/options").json()
    assert options["sd_model_checkpoint"] == state.manager.loaded_titles()[-1] == first.title
    assert state.settings.get("sd_model_checkpoint") in ("", first.title)  # reading it stores nothing
