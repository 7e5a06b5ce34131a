"""GPU checks (skipped without CUDA): full-size random-weight SD 1.5 / SDXL built from the bundled configs under
the default plan (fp16 + SDPA), --medvram and --lowvram, with their peak VRAM; the OOM retry with model CPU
offload; LoRA and VAE swaps on an fp16 model."""

from __future__ import annotations

import contextlib
import gc
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sdweb.cli import parse_options
from sdweb.runtime import memory
from sdweb.runtime.policy import apply_plan_to_pipeline, plan_runtime, probe_hardware

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

GIB = 1024**3
# (family, native size, default peak bound, lowvram peak bound) in GiB: loose, for any CUDA card with room
BOUNDS = {"sd1": (512, 6.0, 2.5), "sdxl": (1024, 18.0, 8.0)}  # the SDXL VAE decodes in fp32


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _fullsize_pipeline(family_name: str, tmp_path: Path):
    """The family's bundled configs with random weights, built in fp16 on the GPU (fast) then left to the plan."""
    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from sdweb.models.families import get_family
    from sdweb.models.loader import config_files, write_config_dir

    family = get_family(family_name)
    root = write_config_dir(family, config_files(family, {}, {}), tmp_path / "configs")

    def config(component: str) -> dict:
        return json.loads((root / component / "config.json").read_text())

    components = {}
    with torch.device("cuda"), _default_dtype(torch.float16):
        components["unet"] = diffusers.UNet2DConditionModel.from_config(config("unet"))
        components["vae"] = diffusers.AutoencoderKL.from_config(config("vae"))
        components["text_encoder"] = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
        if family.has_text_encoder_2:
            components["text_encoder_2"] = CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(root / "text_encoder_2"))
    scheduler_config = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
    components["scheduler"] = getattr(diffusers, scheduler_config["_class_name"]).from_config(scheduler_config)
    components["tokenizer"] = CLIPTokenizer.from_pretrained(root / "tokenizer", model_max_length=77)
    if family.has_text_encoder_2:
        components["tokenizer_2"] = CLIPTokenizer.from_pretrained(root / "tokenizer_2", model_max_length=77)
    else:
        components |= {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    pipe = getattr(diffusers, family.load_pipeline)(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _peak_run(family_name: str, flags: list[str], tmp_path: Path) -> int:
    size = BOUNDS[family_name][0]
    plan = plan_runtime(parse_options(flags, {}), probe_hardware())
    pipe = _fullsize_pipeline(family_name, tmp_path)
    pipe.to("cpu")
    memory.free_memory(plan.device)
    torch.cuda.reset_peak_memory_stats(plan.device)
    apply_plan_to_pipeline(pipe, plan, is_sdxl=family_name == "sdxl")
    if not flags:
        from diffusers.models.attention_processor import AttnProcessor2_0

        assert pipe.unet.dtype == torch.float16
        assert {type(p) for p in pipe.unet.attn_processors.values()} == {AttnProcessor2_0}
    with torch.no_grad(), plan.autocast_context(), plan.sdpa_context():
        images = pipe("a photo of a cat", num_inference_steps=2, width=size, height=size, output_type="np",
                      generator=torch.Generator("cpu").manual_seed(0)).images
    peak = torch.cuda.max_memory_allocated(plan.device)
    print(f"\n{family_name} {size}px {flags or ['(default)']}: peak VRAM {peak / GIB:.2f} GiB, "
          f"finite {bool(np.isfinite(images).all())}; {plan.describe()}")
    assert images.shape == (1, size, size, 3)
    del pipe
    gc.collect()
    memory.free_memory(plan.device)
    return peak


@pytest.mark.parametrize("family_name", ["sd1", "sdxl"])
def test_fullsize_peak_vram_default_medvram_lowvram(family_name, tmp_path):
    _, default_bound, lowvram_bound = BOUNDS[family_name]
    default = _peak_run(family_name, [], tmp_path)
    medvram = _peak_run(family_name, ["--medvram"], tmp_path)
    lowvram = _peak_run(family_name, ["--lowvram"], tmp_path)
    assert default < default_bound * GIB
    assert medvram < default
    assert lowvram < medvram and lowvram < lowvram_bound * GIB


# --------------------------------------------------------------------------- the service on the GPU (tiny model)


@pytest.fixture(scope="module")
def gpu_state(tmp_path_factory):
    from sdweb.state import build_app_state
    from sdweb.testing.tiny import write_tiny

    data = tmp_path_factory.mktemp("data")
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny-sd1.safetensors", seed=1)
    write_tiny("vae", data / "models" / "VAE" / "other.safetensors", seed=7)
    write_tiny("lora", data / "models" / "Lora" / "tiny-lora.safetensors", seed=1)
    state = build_app_state(parse_options(["--data-dir", str(data)], {}))
    assert state.plan.device.startswith("cuda")
    yield state
    state.queue.shutdown()


def _image(state, prompt: str = "a cat", **overrides):
    from sdweb.core.requests import Txt2ImgRequest
    from sdweb.generation.service import SaveOptions

    request = Txt2ImgRequest(prompt=prompt, width=64, height=64, steps=3, sampler_name="Euler", seed=1,
                             override_settings=overrides)
    result = state.service.txt2img(request, None, SaveOptions(save_samples=False, save_grid=False))
    return np.asarray(result.images[0], dtype=np.int16), result


def test_gpu_oom_in_the_unet_is_retried_with_model_offload(gpu_state):
    base, _ = _image(gpu_state)
    pipe = gpu_state.manager.get(None).base_pipeline
    left = [1]

    def fail_once(module, inputs):
        if left[0]:
            left[0] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 30.00 GiB")

    handle = pipe.unet.register_forward_pre_hook(fail_once)
    try:
        image, result = _image(gpu_state)
    finally:
        handle.remove()
    assert "Out of memory: this batch was run again with VAE tiling and model CPU offload." in result.notes
    assert np.abs(image - base).max() <= 2
    assert not hasattr(pipe.unet, "_hf_hook") and pipe.unet.device.type == "cuda"  # offload was for the retry


def test_gpu_lora_and_vae_on_fp16(gpu_state):
    base, _ = _image(gpu_state, sd_vae="None")
    assert gpu_state.manager.get(None).base_pipeline.unet.dtype == torch.float16
    assert np.array_equal(_image(gpu_state, "a cat <lora:tiny-lora:0>", sd_vae="None")[0], base)
    assert np.abs(_image(gpu_state, "a cat <lora:tiny-lora:1>", sd_vae="None")[0] - base).max() > 10
    assert np.array_equal(_image(gpu_state, sd_vae="None")[0], base)
    swapped, result = _image(gpu_state, sd_vae="other.safetensors")
    assert np.abs(swapped - base).max() > 10 and "VAE: other.safetensors" in result.infotexts[0]
    vae = gpu_state.manager.get(None).base_pipeline.vae
    assert vae.device.type == "cuda" and vae.dtype == gpu_state.plan.vae_dtype
    assert np.array_equal(_image(gpu_state, sd_vae="None")[0], base)
