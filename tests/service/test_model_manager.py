"""Checkpoint switching through the service: outputs identical to a fresh load, LRU limit, memory released."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from sdweb.cli import parse_options
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 5}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    checkpoints = root / "models" / "Stable-diffusion"
    write_tiny("sd1", checkpoints / "a-sd1.safetensors", seed=1)
    write_tiny("sdxl", checkpoints / "b-sdxl.safetensors", seed=1)
    write_tiny("sd1", checkpoints / "c-sd1.safetensors", seed=2)
    write_tiny("lora", root / "models" / "Lora" / "tiny-lora.safetensors", seed=1)
    return root


@pytest.fixture
def state(data):
    app_state = build_app_state(parse_options(["--data-dir", str(data), "--no-hashing"], {}))
    yield app_state
    app_state.queue.shutdown()


def _image(state, checkpoint: str, limit: int, prompt: str = "a cat") -> np.ndarray:
    request = Txt2ImgRequest(prompt=prompt, override_settings={"sd_model_checkpoint": checkpoint,
                                                               "sd_checkpoints_limit": limit}, **SMALL)
    return np.asarray(state.service.txt2img(request, None, NO_SAVE).images[0], dtype=np.int16)


@pytest.mark.parametrize("limit", [1, 3])
def test_switching_sd1_sdxl_sd1_keeps_outputs_identical_to_a_fresh_load(state, limit):
    fresh_sd1 = _image(state, "a-sd1", limit)
    fresh_sdxl = _image(state, "b-sdxl", limit)
    assert state.manager.loaded_titles()[-1] == "b-sdxl.safetensors"
    assert np.array_equal(_image(state, "a-sd1", limit), fresh_sd1)
    assert np.array_equal(_image(state, "b-sdxl", limit), fresh_sdxl)
    assert len(state.manager.loaded_titles()) == min(limit, 2)


def test_a_lora_does_not_follow_the_model_across_switches(state):
    base = _image(state, "a-sd1", 1)
    with_lora = _image(state, "a-sd1", 1, "a cat <lora:tiny-lora:1>")
    assert not np.array_equal(with_lora, base)
    _image(state, "b-sdxl", 1)
    assert np.array_equal(_image(state, "a-sd1", 1), base)


def test_lru_keeps_the_limit_and_releases_evicted_weights(state):
    first = state.manager.get("a-sd1", limit=2)
    unet = weakref.ref(first.base_pipeline.unet)
    state.manager.get("b-sdxl", limit=2)
    assert state.manager.get("a-sd1", limit=2) is first  # cached: no reload
    state.manager.get("c-sd1", limit=2)  # evicts b (a was used more recently)
    assert state.manager.loaded_titles() == ["a-sd1.safetensors", "c-sd1.safetensors"]
    state.manager.get("b-sdxl", limit=2)  # evicts a
    del first
    gc.collect()
    assert unet() is None, "the evicted model's UNet is still referenced"


def test_the_cache_is_bounded_by_bytes_as_well_as_by_count(state):
    state.manager.unload_all()
    state.manager.get("a-sd1", limit=3)
    one_model = state.manager.loaded_bytes()
    assert one_model > 0
    state.manager.cache_bytes = int(one_model * 1.5)  # room for one tiny model, not two
    try:
        state.manager.get("c-sd1", limit=3)
        assert state.manager.loaded_titles() == ["c-sd1.safetensors"], "the count allowed 3, the bytes one"
        state.manager.cache_bytes = one_model * 10
        state.manager.get("a-sd1", limit=3)
        assert state.manager.loaded_titles() == ["c-sd1.safetensors", "a-sd1.safetensors"]
    finally:
        state.manager.cache_bytes = 1 << 62


def test_lookups_answer_while_a_checkpoint_loads_and_a_second_request_shares_the_load(state):
    import threading
    import time

    state.manager.unload_all()
    results = []
    loaders = [threading.Thread(target=lambda: results.append(state.manager.get("b-sdxl", limit=3)))
               for _ in range(2)]
    for thread in loaders:
        thread.start()
    deadline = time.monotonic() + 60
    while not state.manager._loading and time.monotonic() < deadline:
        time.sleep(0.001)
    started = time.monotonic()
    titles = state.manager.loaded_titles()  # the lock is not held for the whole load
    answered_in = time.monotonic() - started
    still_loading = bool(state.manager._loading)
    for thread in loaders:
        thread.join()
    assert still_loading and titles == [] and answered_in < 0.5
    assert len(results) == 2 and results[0] is results[1], "one load for both requests"


@pytest.mark.slow  # CI time: runs with ./run-tests.sh -m slow
def test_two_workers_loading_at_once_leave_torch_unpatched(data, tmp_path):
    """Two managers (two local workers) loading in parallel: accelerate's init_empty_weights swaps
    torch.nn.Module.register_parameter process-wide, and two overlapping swaps could leave it on the meta device
    for every later module. Loads hold MODEL_BUILD_LOCK, so a module built afterwards is a real one."""
    import threading

    import torch

    from sdweb.models.manager import ModelManager

    states = [build_app_state(parse_options(["--data-dir", str(data), "--no-hashing"], {})) for _ in range(2)]
    try:
        managers = [ModelManager(s.registry, s.plan, cache_dir=tmp_path / str(i)) for i, s in enumerate(states)]
        for _ in range(3):
            threads = [threading.Thread(target=manager.get, args=(name,), kwargs={"limit": 1})
                       for manager, name in zip(managers, ("a-sd1", "c-sd1"), strict=True)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for manager in managers:
                manager.unload_all()
        assert torch.nn.Linear(2, 2).weight.device.type == "cpu"
    finally:
        for state in states:
            state.queue.shutdown()
