"""--compile with LoRAs through the generation service: after the first LoRA builds the UNet's LoRA slot, switching
LoRAs, stacking them and changing their weights never compiles the UNet again (dynamo's own graph count, with a
backend that runs the captured graphs eagerly so this runs in seconds), each state (LoRAs on / off) compiles once
with a warning, and the images equal the eager model's. A LoRA on layers the slot lacks grows it once (slow).
The real inductor figures: `python -m sdweb.bench --only lora_compile`."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounter

from sdweb.cli import parse_options
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.models.lora_slot import MIN_SLOT_RANK
from sdweb.runtime.compile import compiled_forward
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny, write_wide_lora

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 3, "cfg_scale": 5.0}
TOLERANCE = 2  # max abs pixel difference for "the same image within rounding"


def _make_state(data, flags):
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny-sd1.safetensors", seed=1)
    write_tiny("lora", data / "models" / "Lora" / "lora_a.safetensors", seed=1)
    write_tiny("lora", data / "models" / "Lora" / "lora_b.safetensors", seed=2)
    write_wide_lora(data / "models" / "Lora" / "wide.safetensors", rank=MIN_SLOT_RANK + 8)
    return build_app_state(parse_options(["--data-dir", str(data), "--no-hashing", *flags], {}))


def _image(state, prompt):
    result = state.service.txt2img(Txt2ImgRequest(prompt=prompt, **SMALL), None, NO_SAVE)
    return np.asarray(result.images[0], dtype=np.int16)


def _compile_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "sdweb.runtime.compile" and r.levelno == logging.WARNING]


@pytest.fixture
def counted_compile(monkeypatch):
    """torch.compile with a counting backend per compiled module class (UNet, VAE decoder)."""
    real_compile, counters = torch.compile, {}

    def compile_counted(fn, dynamic):
        counter = counters.setdefault(type(fn.__self__).__name__, CompileCounter())
        return real_compile(fn, dynamic=dynamic, backend=counter)

    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", compile_counted)
    yield counters
    torch._dynamo.reset()


@pytest.fixture
def states(tmp_path, counted_compile):
    made = {"eager": _make_state(tmp_path / "eager", []), "compiled": _make_state(tmp_path / "compiled", ["--compile"])}
    yield made
    for state in made.values():
        state.queue.shutdown()


def _same_as_eager(states, prompt, image):
    return int(np.abs(image - _image(states["eager"], prompt)).max()) <= TOLERANCE


def _unet_graphs(counted_compile):
    return counted_compile["UNet2DConditionModel"].frame_count


def test_switching_loras_and_weights_never_recompiles_the_unet(states, counted_compile, caplog):
    prompts = ["a cat <lora:lora_a:1>", "a cat <lora:lora_b:0.5>", "a cat <lora:lora_a:1> <lora:lora_b:0.7>",
               "a cat", "a cat <lora:lora_b:1.2>", "a cat <lora:lora_a:-0.5>"]
    graphs, images = [], {}
    with caplog.at_level(logging.INFO, logger="sdweb.runtime.compile"):
        for prompt in prompts:
            images[prompt] = _image(states["compiled"], prompt)
            graphs.append(_unet_graphs(counted_compile))
    pipe = states["compiled"].manager.get("tiny-sd1.safetensors").base_pipeline
    assert compiled_forward(pipe.unet).failed is None
    # the first job compiles with the slot in place: 1 graph; LoRAs off: a second (each state once); none after
    assert graphs == [1, 1, 1, 2, 2, 2]
    warnings = _compile_warnings(caplog)
    assert len(warnings) == 1 and warnings[0].startswith("recompiled UNet for 2x8x8") and "(a guard changed" in warnings[0]
    for prompt in prompts:
        assert _same_as_eager(states, prompt, images[prompt]), prompt
    assert int(np.abs(images["a cat <lora:lora_a:1>"] - images["a cat"]).max()) > 10  # the LoRA does something


@pytest.mark.slow
def test_the_first_lora_and_one_on_new_layers_each_recompile_once(states, counted_compile, caplog):
    with caplog.at_level(logging.INFO, logger="sdweb.runtime.compile"):
        _image(states["compiled"], "a cat")
        _image(states["compiled"], "a cat <lora:lora_a:1>")
        assert _unet_graphs(counted_compile) == 2
        wide = _image(states["compiled"], "a cat <lora:lora_a:0.8> <lora:wide:0.6>")  # new layers, more rank
        assert _unet_graphs(counted_compile) == 3
        again = _image(states["compiled"], "a cat <lora:wide:1> <lora:lora_b:1>")
        assert _unet_graphs(counted_compile) == 3
    warnings = _compile_warnings(caplog)
    assert len(warnings) == 2, warnings
    assert "(LoRA slot built for the first LoRA)" in warnings[0]
    assert "(LoRA slot built for a LoRA for 2 more layers)" in warnings[1]
    assert _same_as_eager(states, "a cat <lora:lora_a:0.8> <lora:wide:0.6>", wide)
    assert _same_as_eager(states, "a cat <lora:wide:1> <lora:lora_b:1>", again)
