"""--opt-fused-qkv and --compile on the tiny SD1 through the generation service: same images as the default
plan, LoRAs still apply (fused projections are undone first; compiled graphs recompile), and a compile failure
falls back to eager with one warning. The real torch.compile checks are slow (minutes on 2 CPU cores)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from sdweb.cli import parse_options
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.runtime.compile import compiled_forward, is_qkv_fused
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 3, "cfg_scale": 5.0}
TOLERANCE = 2  # max abs pixel difference allowed for "the same image within rounding"


def _make_state(root, name, flags):
    data = root / name
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny-sd1.safetensors", seed=1)
    write_tiny("lora", data / "models" / "Lora" / "my_lora.safetensors", seed=1)
    return build_app_state(parse_options(["--data-dir", str(data), "--no-hashing", *flags], {}))


def _image(state, prompt="a cat"):
    result = state.service.txt2img(Txt2ImgRequest(prompt=prompt, **SMALL), None, NO_SAVE)
    return np.asarray(result.images[0], dtype=np.int16)


def _diff(a, b):
    return int(np.abs(a - b).max())


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    root = tmp_path_factory.mktemp("opts")
    made = {"eager": _make_state(root, "eager", []), "fused": _make_state(root, "fused", ["--opt-fused-qkv"])}
    yield made
    for state in made.values():
        state.queue.shutdown()


def _unet(state):
    return state.manager.get("tiny-sd1.safetensors").base_pipeline.unet


def test_fused_qkv_gives_the_same_image(states):
    eager, fused = _image(states["eager"]), _image(states["fused"])
    assert is_qkv_fused(_unet(states["fused"])) and not is_qkv_fused(_unet(states["eager"]))
    assert type(next(iter(_unet(states["fused"]).attn_processors.values()))).__name__ == "FusedAttnProcessor2_0"
    assert _diff(eager, fused) <= TOLERANCE


def test_a_lora_on_a_fused_model_matches_the_unfused_model(states):
    base = _image(states["fused"])
    with_lora_unfused = _image(states["eager"], "a cat <lora:my_lora:1>")
    with_lora_fused = _image(states["fused"], "a cat <lora:my_lora:1>")
    assert _diff(with_lora_unfused, base) > 10  # the LoRA does change the image
    assert _diff(with_lora_fused, with_lora_unfused) <= TOLERANCE
    unet = _unet(states["fused"])
    assert not is_qkv_fused(unet) and not any(hasattr(m, "to_qkv") for m in unet.modules())
    assert _diff(_image(states["fused"]), base) <= TOLERANCE  # LoRA off again: base image
    states["fused"].manager.unload_loras()  # no LoRA layers left: fused again
    assert is_qkv_fused(unet)
    assert _diff(_image(states["fused"]), base) <= TOLERANCE


def test_a_compile_failure_falls_back_to_eager_with_one_warning(states, tmp_path, monkeypatch, caplog):
    def failing_compile(fn, dynamic):
        def compiled(*args, **kwargs):
            raise RuntimeError("simulated: InductorError: C++ compile error (no compiler)")

        return compiled

    monkeypatch.setattr(torch, "compile", failing_compile)
    state = _make_state(tmp_path, "compile-fails", ["--compile"])
    try:
        pipe = state.manager.get("tiny-sd1.safetensors").base_pipeline
        assert compiled_forward(pipe.unet) is not None and compiled_forward(pipe.vae.decoder) is not None
        with caplog.at_level(logging.WARNING, logger="sdweb.runtime.compile"):
            image = _image(state)
            again = _image(state)
        assert np.array_equal(image, _image(states["eager"])) and np.array_equal(again, image)
        warnings = [r.getMessage() for r in caplog.records if r.name == "sdweb.runtime.compile"]
        assert warnings == ["torch.compile failed in the UNet (RuntimeError: simulated: InductorError: C++ compile "
                            "error (no compiler)); running the UNet and VAE decoder eagerly"]
        assert compiled_forward(pipe.unet) is None and compiled_forward(pipe.vae.decoder) is None
    finally:
        state.queue.shutdown()


def _compile_problem() -> str | None:
    try:
        out = torch.compile(lambda x: x * 2, dynamic=False)(torch.ones(2))
    except Exception as error:  # no C++ compiler, unsupported platform: say why in the skip
        return f"torch.compile cannot run here: {type(error).__name__}: {error}"
    return None if torch.equal(out, torch.full((2,), 2.0)) else "torch.compile gave a wrong result"


@pytest.mark.slow
def test_compiled_model_gives_the_same_images_and_loras_still_apply(states, tmp_path, caplog):
    problem = _compile_problem()
    if problem:
        pytest.skip(problem)
    state = _make_state(tmp_path, "compiled", ["--compile"])
    try:
        with caplog.at_level(logging.INFO, logger="sdweb.runtime.compile"):
            compiled = _image(state)
        pipe = state.manager.get("tiny-sd1.safetensors").base_pipeline
        wrapper = compiled_forward(pipe.unet)
        assert wrapper is not None and wrapper.failed is None and (2, 8, 8) in wrapper.compile_seconds
        assert any(r.getMessage().startswith("compiled UNet for 2x8x8 in ") for r in caplog.records)
        eager = _image(states["eager"])
        assert _diff(compiled, eager) <= TOLERANCE
        with_lora = _image(state, "a cat <lora:my_lora:1>")  # peft replaces UNet modules: dynamo recompiles
        assert _diff(with_lora, compiled) > 10
        assert _diff(with_lora, _image(states["eager"], "a cat <lora:my_lora:1>")) <= TOLERANCE
        assert compiled_forward(pipe.unet) is wrapper and wrapper.failed is None  # still compiled
        assert _diff(_image(state), eager) <= TOLERANCE
    finally:
        state.queue.shutdown()
