"""Under offload a component waits on the CPU (model offload) or the meta device (sequential) between calls:
decoding and encoding must send their tensors where the hooks will run it, not where it sits."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from sdweb.runtime.execution import execution_device


def _pipe(vae: torch.nn.Module, run_on: str) -> SimpleNamespace:
    return SimpleNamespace(vae=vae, unet=torch.nn.Linear(1, 1), _execution_device=torch.device(run_on),
                           device=torch.device("cpu"))


def test_unhooked_component_runs_where_it_is():
    vae = torch.nn.Linear(2, 2)
    assert execution_device(_pipe(vae, "meta"), vae) == torch.device("cpu")


def test_model_offload_hook_on_the_component_means_the_execution_device():
    vae = torch.nn.Linear(2, 2)
    vae._hf_hook = object()  # accelerate's cpu_offload_with_hook puts its hook on the module itself
    assert execution_device(_pipe(vae, "meta"), vae) == torch.device("meta")


def test_sequential_offload_hooks_on_submodules_mean_the_execution_device():
    vae = torch.nn.Sequential(torch.nn.Linear(2, 2))
    vae[0]._hf_hook = object()  # sequential / group offload hook the children
    assert execution_device(_pipe(vae, "meta"), vae) == torch.device("meta")


def test_default_component_is_the_denoiser():
    pipe = _pipe(torch.nn.Linear(2, 2), "meta")
    pipe.unet._hf_hook = object()
    assert execution_device(pipe) == torch.device("meta")


def test_sequentially_offloaded_text_encoder_encodes_on_the_hooks_device():
    """accelerate's sequential offload (--lowvram) leaves the weights on the meta device and hooks every leaf:
    token ids made on the first parameter's device (meta) could not be moved ("Cannot copy out of meta tensor",
    seen on an H200 with SDXL --lowvram)."""
    from accelerate import cpu_offload

    from sdweb.prompts.conditioning import EncoderSlot, encode_slot
    from sdweb.testing.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline("sd1")
    slot = EncoderSlot(tokenizer=pipe.tokenizer, encoder=pipe.text_encoder, pad_id=pipe.tokenizer.eos_token_id,
                       layer="last")
    expected, _ = encode_slot(slot, "a (red:1.2) cat", clip_skip=1, emphasis="Original", comma_backtrack=20)
    cpu_offload(pipe.text_encoder, execution_device=torch.device("cpu"))
    assert next(pipe.text_encoder.parameters()).device == torch.device("meta")
    assert execution_device(None, pipe.text_encoder) == torch.device("cpu")
    offloaded, _ = encode_slot(slot, "a (red:1.2) cat", clip_skip=1, emphasis="Original", comma_backtrack=20)
    torch.testing.assert_close(offloaded, expected)
