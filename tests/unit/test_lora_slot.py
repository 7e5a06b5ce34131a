"""LoRAs packed into one fixed slot (models.lora_slot) compute what peft computes with them as separate adapters,
for any weights and any mix of ranks, layers and layer kinds (Linear and 3x3 / 1x1 Conv2d)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.lora_slot import MIN_SLOT_RANK, SLOT_ADAPTER, CompiledLoraSlot, take_layers
from sdweb.testing.tiny import WIDE_LORA_TARGETS, build_tiny_pipeline, write_tiny, write_wide_lora


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slot")
    return {"a": write_tiny("lora", folder / "a.safetensors", seed=1),
            "b": write_tiny("lora", folder / "b.safetensors", seed=2),
            "wide": write_wide_lora(folder / "wide.safetensors", rank=MIN_SLOT_RANK + 8)}


def _unet_inputs():
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(2, 4, 8, 8, generator=generator), torch.tensor(10),
            torch.randn(2, 77, 32, generator=generator))


def _unet_out(unet):
    sample, timestep, context = _unet_inputs()
    with torch.no_grad():
        return unet(sample, timestep, encoder_hidden_states=context).sample


def _reference(files, weights):
    """peft's own result: each LoRA its own adapter with its weight."""
    pipe = build_tiny_pipeline("sd1", 1)
    for name in weights:
        pipe.load_lora_weights(load_file(files[name]), adapter_name=name)
    pipe.unet.set_adapters(list(weights), list(weights.values()))
    return _unet_out(pipe.unet)


def _slot_pipe(files):
    pipe = build_tiny_pipeline("sd1", 1)
    layers = {}
    for name, path in files.items():
        pipe.load_lora_weights(load_file(path), adapter_name=name)
        layers[name] = take_layers(pipe.unet, name, path.name)
    assert not [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and len(m.lora_A)]  # all taken out
    return pipe, layers


def test_packed_loras_equal_separate_adapters(files):
    pipe, layers = _slot_pipe(files)
    base = _unet_out(pipe.unet)
    slot = CompiledLoraSlot()
    cases = [{"a": 1.0}, {"b": 0.5}, {"a": 1.0, "b": 0.7}, {"a": -0.4, "b": 1.3}]
    assert slot.fill(pipe.unet, [(layers["a"], 1.0)]) == "the first LoRA"
    assert slot.rank == MIN_SLOT_RANK
    for weights in cases:
        assert slot.fill(pipe.unet, [(layers[name], w) for name, w in weights.items()]) is None  # values only
        out = _unet_out(pipe.unet)
        assert (out - base).abs().max() > 1e-3  # the LoRAs do something
        torch.testing.assert_close(out, _reference(files, weights), rtol=1e-4, atol=1e-5)


def test_the_slot_grows_for_new_layers_and_rank_once(files):
    pipe, layers = _slot_pipe(files)
    slot = CompiledLoraSlot()
    slot.fill(pipe.unet, [(layers["a"], 1.0)])
    targets = slot.targets
    reason = slot.fill(pipe.unet, [(layers["a"], 0.8), (layers["wide"], 0.6)])
    assert reason == "a LoRA for 2 more layers"
    assert slot.targets == targets | set(WIDE_LORA_TARGETS) and slot.rank == 2 * MIN_SLOT_RANK
    torch.testing.assert_close(_unet_out(pipe.unet), _reference(files, {"a": 0.8, "wide": 0.6}),
                               rtol=1e-4, atol=1e-5)
    assert slot.fill(pipe.unet, [(layers["wide"], 1.0), (layers["b"], 1.0)]) is None  # fits now
    torch.testing.assert_close(_unet_out(pipe.unet), _reference(files, {"wide": 1.0, "b": 1.0}),
                               rtol=1e-4, atol=1e-5)
    adapters = {n for m in pipe.unet.modules() if hasattr(m, "lora_A") for n in m.lora_A}
    assert adapters == {SLOT_ADAPTER}


def test_a_dora_lora_is_refused_by_name(files):
    pipe = build_tiny_pipeline("sd1", 1)
    pipe.load_lora_weights(load_file(files["a"]), adapter_name="a")
    for module in pipe.unet.modules():
        if hasattr(module, "use_dora") and "a" in module.use_dora:
            module.use_dora["a"] = True
            break
    with pytest.raises(InvalidModelFileError, match="a.safetensors is a DoRA LoRA.*without --compile"):
        take_layers(pipe.unet, "a", "a.safetensors")
