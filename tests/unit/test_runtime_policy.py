"""runtime.policy: a table of faked hardware x flags -> plan fields; the plan applied to a tiny real pipeline;
runtime.memory. GPU checks carry @pytest.mark.gpu and run only where CUDA is present."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
import torch

from sdweb.cli import parse_options
from sdweb.runtime import memory
from sdweb.runtime.policy import (
    GIB,
    TILE_ABOVE_LARGE,
    TILE_ABOVE_SMALL,
    CudaDevice,
    HardwareInfo,
    RuntimePlan,
    apply_plan_to_pipeline,
    plan_runtime,
    probe_hardware,
    set_vae_tiling_for_size,
)

FP16, FP32 = torch.float16, torch.float32
REPO = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO / "sdweb" / "models" / "configs" / "clip_tokenizer"


def _gpu(name: str, gib: int, capability: tuple[int, int] = (8, 6)) -> CudaDevice:
    return CudaDevice(name=name, total_memory_bytes=gib * GIB, capability=capability,
                      supports_bf16=capability >= (8, 0))


CPU = HardwareInfo(cpu_bf16=True)
CUDA4 = HardwareInfo(cuda_devices=(_gpu("NVIDIA GeForce RTX 3050 Laptop GPU", 4),))
CUDA8 = HardwareInfo(cuda_devices=(_gpu("NVIDIA GeForce RTX 3070", 8),))
CUDA24 = HardwareInfo(cuda_devices=(_gpu("NVIDIA GeForce RTX 3090", 24),))
CUDA24_XF = dataclasses.replace(CUDA24, xformers_importable=True)
TWO_GPUS = HardwareInfo(cuda_devices=(_gpu("NVIDIA GeForce RTX 3090", 24), _gpu("NVIDIA GeForce RTX 4090", 24)))
GTX1660 = HardwareInfo(cuda_devices=(_gpu("NVIDIA GeForce GTX 1660 SUPER", 6, (7, 5)),))
MPS = HardwareInfo(mps_available=True)
MPS_XF = dataclasses.replace(MPS, xformers_importable=True)

DEFAULT_CUDA = dict(device="cuda:0", unet_dtype=FP16, unet_compute_dtype=FP16, text_encoder_dtype=FP16,
                    vae_dtype=FP16, autocast=True, upcast_sampling=False, attention="sdpa", offload="none",
                    offload_only_for_sdxl=False, upcast_sdxl_vae=True, nan_check=True, channels_last=False)
ALL_FP32 = dict(unet_dtype=FP32, unet_compute_dtype=FP32, text_encoder_dtype=FP32, vae_dtype=FP32,
                autocast=False, upcast_sampling=False, upcast_sdxl_vae=False)
CPU_PLAN = dict(device="cpu", **ALL_FP32, attention="sdpa", offload="none", vae_tiling_threshold_pixels=0)
UPCAST = dict(unet_dtype=FP16, text_encoder_dtype=FP16, autocast=False, upcast_sampling=True)

# (id, hardware, flags, expected plan fields, a regex one of the reasons must match or None)
TABLE = [
    ("cpu-default", CPU, [], CPU_PLAN, r"no CUDA or MPS"),
    ("cpu-precision-half-ignored", CPU, ["--precision", "half"], CPU_PLAN, r"--precision half ignored"),
    ("cpu-upcast-ignored", CPU, ["--upcast-sampling"], CPU_PLAN, r"--upcast-sampling ignored"),
    ("cpu-no-half", CPU, ["--no-half"], CPU_PLAN, r"fp32 everywhere"),
    ("cpu-medvram-noop", CPU, ["--medvram"], dict(offload="none"), r"--medvram: no effect on cpu"),
    ("cpu-lowvram-noop", CPU, ["--lowvram"], dict(offload="none"), r"--lowvram: no effect on cpu"),
    ("cpu-xformers", CPU, ["--xformers"], dict(attention="sdpa"), r"xformers requested but not on CUDA"),
    ("cpu-device-id", CPU, ["--device-id", "1"], dict(device="cpu"), r"--device-id 1 ignored: no CUDA"),
    ("cuda24-default", CUDA24, [], dict(**DEFAULT_CUDA, vae_tiling_threshold_pixels=TILE_ABOVE_LARGE), None),
    ("cuda24-no-half", CUDA24, ["--no-half"], dict(device="cuda:0", **ALL_FP32), r"--no-half: fp32"),
    ("cuda24-no-half-upcast", CUDA24, ["--no-half", "--upcast-sampling"], dict(**ALL_FP32),
     r"--upcast-sampling has no effect"),
    ("cuda24-no-half-vae", CUDA24, ["--no-half-vae"],
     dict(unet_dtype=FP16, text_encoder_dtype=FP16, vae_dtype=FP32, autocast=True, upcast_sdxl_vae=False),
     r"--no-half-vae"),
    ("cuda24-precision-full", CUDA24, ["--precision", "full"],
     dict(unet_dtype=FP16, unet_compute_dtype=FP32, text_encoder_dtype=FP32, vae_dtype=FP32, autocast=False,
          upcast_sampling=False), r"--precision full"),
    ("cuda24-precision-full-no-half", CUDA24, ["--precision", "full", "--no-half"], ALL_FP32, r"--no-half"),
    ("cuda24-precision-half", CUDA24, ["--precision", "half"],
     dict(unet_dtype=FP16, unet_compute_dtype=FP16, text_encoder_dtype=FP16, vae_dtype=FP16, autocast=False,
          upcast_sampling=False, upcast_sdxl_vae=False), r"--precision half"),
    ("cuda24-upcast", CUDA24, ["--upcast-sampling"], dict(**UPCAST, vae_dtype=FP16, upcast_sdxl_vae=True),
     r"--upcast-sampling"),
    ("cuda24-upcast-no-half-vae", CUDA24, ["--upcast-sampling", "--no-half-vae"],
     dict(**UPCAST, vae_dtype=FP32, upcast_sdxl_vae=False), None),
    ("cuda24-medvram", CUDA24, ["--medvram"],
     dict(offload="model", offload_only_for_sdxl=False, vae_tiling_threshold_pixels=TILE_ABOVE_SMALL), r"--medvram"),
    ("cuda24-medvram-sdxl", CUDA24, ["--medvram-sdxl"], dict(offload="model", offload_only_for_sdxl=True),
     r"SDXL models only"),
    ("cuda24-lowvram", CUDA24, ["--lowvram"], dict(offload="sequential", offload_only_for_sdxl=False),
     r"--lowvram: sequential"),
    ("cuda24-lowvram-wins", CUDA24, ["--lowvram", "--medvram"], dict(offload="sequential"), None),
    ("cuda24-xformers-missing", CUDA24, ["--xformers"], dict(attention="sdpa"),
     r"xformers requested but not importable"),
    ("cuda24-xformers", CUDA24_XF, ["--xformers"], dict(attention="xformers"), r"--xformers"),
    ("cuda24-xformers-importable-not-asked", CUDA24_XF, [], dict(attention="sdpa"), None),
    ("cuda24-xformers-then-sdp-no-mem", CUDA24, ["--xformers", "--opt-sdp-no-mem-attention"],
     dict(attention="sdpa-no-mem"), r"not importable"),
    ("mps-xformers", MPS_XF, ["--xformers"], dict(attention="sdpa"), r"not on CUDA \(device mps\)"),
    ("cuda24-use-cpu-all", CUDA24, ["--use-cpu", "all"],
     dict(CPU_PLAN, interrogate_device="cpu", upscaler_device="cpu", gfpgan_device="cpu", codeformer_device="cpu"),
     r"--use-cpu all"),
    ("cuda24-use-cpu-sd", CUDA24, ["--use-cpu", "sd"],
     dict(CPU_PLAN, interrogate_device="cuda:0", upscaler_device="cuda:0", gfpgan_device="cuda:0"),
     r"--use-cpu sd"),
    ("cuda24-use-cpu-esrgan", CUDA24, ["--use-cpu", "esrgan"],
     dict(device="cuda:0", upscaler_device="cpu", interrogate_device="cuda:0", codeformer_device="cuda:0"), None),
    ("cuda24-use-cpu-interrogate-gfpgan", CUDA24, ["--use-cpu", "interrogate", "gfpgan"],
     dict(device="cuda:0", interrogate_device="cpu", gfpgan_device="cpu", codeformer_device="cuda:0",
          upscaler_device="cuda:0"), None),
    ("cuda24-use-cpu-unknown", CUDA24, ["--use-cpu", "vae"], dict(device="cuda:0"), r"unknown module\(s\) vae"),
    ("two-gpus-device-id-1", TWO_GPUS, ["--device-id", "1"],
     dict(device="cuda:1", upscaler_device="cuda:1", interrogate_device="cuda:1"), r"--device-id 1: using cuda:1"),
    ("one-gpu-device-id-1", CUDA24, ["--device-id", "1"], dict(device="cuda:0"), r"only 1 CUDA device"),
    ("device-id-not-a-number", CUDA24, ["--device-id", "x"], dict(device="cuda:0"), r"not a number"),
    ("two-gpus-use-cpu-sd-device-id", TWO_GPUS, ["--use-cpu", "sd", "--device-id", "1"],
     dict(device="cpu", upscaler_device="cuda:1"), None),
    ("cuda24-channels-last", CUDA24, ["--opt-channelslast"], dict(channels_last=True), r"channels_last"),
    ("cpu-channels-last", CPU, ["--opt-channelslast"], dict(channels_last=True), None),
    ("cuda24-disable-nan-check", CUDA24, ["--disable-nan-check"], dict(nan_check=False), r"NaN checks"),
    ("cuda24-sdp-no-mem", CUDA24, ["--opt-sdp-no-mem-attention"], dict(attention="sdpa-no-mem"), r"memory-efficient"),
    ("cuda24-sdp", CUDA24, ["--opt-sdp-attention"], dict(attention="sdpa"), None),
    ("cuda24-disable-split", CUDA24, ["--disable-opt-split-attention"], dict(attention="none"), r"plain attention"),
    ("cuda24-disable-split-wins", CUDA24_XF, ["--disable-opt-split-attention", "--xformers"],
     dict(attention="none"), None),
    ("cuda24-split", CUDA24, ["--opt-split-attention"], dict(attention="sliced"), r"slicing"),
    ("cuda24-split-v1", CUDA24, ["--opt-split-attention-v1"], dict(attention="sliced"), None),
    ("cuda24-split-invokeai", CUDA24, ["--opt-split-attention-invokeai"], dict(attention="sliced"), None),
    ("cuda24-sub-quad", CUDA24, ["--opt-sub-quad-attention"], dict(attention="sliced"), None),
    ("cuda24-lowram", CUDA24, ["--lowram"], dict(load_weights_to_device=True), r"--lowram"),
    ("cuda24-lowram-medvram", CUDA24, ["--lowram", "--medvram"], dict(load_weights_to_device=False),
     r"--lowram ignored \(offload model\)"),
    ("cuda24-ipex", CUDA24, ["--use-ipex"], dict(device="cuda:0"), r"--use-ipex"),
    ("cuda4-default", CUDA4, [], dict(**DEFAULT_CUDA, vae_tiling_threshold_pixels=TILE_ABOVE_SMALL),
     r"4 GB GPU: consider --medvram"),
    ("cuda4-medvram", CUDA4, ["--medvram"], dict(offload="model"), None),
    ("cuda4-lowvram", CUDA4, ["--lowvram"], dict(offload="sequential"), None),
    ("cuda8-default", CUDA8, [], dict(**DEFAULT_CUDA, vae_tiling_threshold_pixels=TILE_ABOVE_SMALL),
     r"8 GB GPU: consider --medvram-sdxl"),
    ("cuda8-medvram-sdxl", CUDA8, ["--medvram-sdxl"], dict(offload="model", offload_only_for_sdxl=True), None),
    ("gtx1660-default", GTX1660, [], dict(device="cuda:0", **UPCAST, vae_dtype=FP32, upcast_sdxl_vae=False),
     r"GTX 16xx"),
    ("gtx1660-no-half", GTX1660, ["--no-half"], dict(device="cuda:0", **ALL_FP32), None),
    ("gtx1660-upcast", GTX1660, ["--upcast-sampling"], dict(**UPCAST, vae_dtype=FP32), r"GTX 16xx"),
    ("mps-default", MPS, [], dict(device="mps", **UPCAST, vae_dtype=FP32, upcast_sdxl_vae=False, attention="sdpa",
                                  vae_tiling_threshold_pixels=TILE_ABOVE_SMALL), r"macOS defaults"),
    ("mps-no-half", MPS, ["--no-half"], dict(device="mps", **ALL_FP32), None),
    ("mps-precision-half", MPS, ["--precision", "half"], dict(vae_dtype=FP16, autocast=False, upcast_sampling=False),
     None),
    ("mps-upcast-keeps-fp32-vae", MPS, ["--upcast-sampling"], dict(**UPCAST, vae_dtype=FP32), None),
    ("mps-medvram-noop", MPS, ["--medvram"], dict(offload="none"), r"MPS shares memory"),
    ("mps-use-cpu-all", MPS, ["--use-cpu", "all"], dict(CPU_PLAN, upscaler_device="cpu"), None),
    ("mps-use-cpu-sd", MPS, ["--use-cpu", "sd"], dict(device="cpu", upscaler_device="mps"), None),
]


@pytest.mark.parametrize(("hardware", "flags", "expected", "reason"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_plan_table(hardware: HardwareInfo, flags: list[str], expected: dict, reason: str | None):
    plan = plan_runtime(parse_options(flags, {}), hardware)
    actual = {name: getattr(plan, name) for name in expected}
    assert actual == expected, plan.describe()
    if reason is not None:
        assert any(re.search(reason, text) for text in plan.reasons), plan.reasons
    assert plan.attention in ("sdpa", "sdpa-no-mem", "xformers", "sliced", "none")
    assert plan.offload in ("none", "model", "sequential", "group")
    assert plan.vae_slicing is True
    assert "\n" not in plan.describe()


def test_plan_is_frozen_and_pure():
    options = parse_options(["--medvram"], {})
    first, second = plan_runtime(options, CUDA24), plan_runtime(options, CUDA24)
    assert first == second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.device = "cpu"  # type: ignore[misc]


def test_probe_errors_become_reasons():
    broken = HardwareInfo(probe_errors=("CUDA probe failed (RuntimeError: driver too old); not using CUDA",))
    plan = plan_runtime(parse_options([], {}), broken)
    assert plan.device == "cpu"
    assert "driver too old" in plan.describe()


def test_describe_names_device_dtypes_attention_offload():
    line = plan_runtime(parse_options(["--no-half-vae", "--medvram-sdxl"], {}), CUDA24).describe()
    assert line.startswith("device cuda:0 (NVIDIA GeForce RTX 3090, 24 GB); UNet fp16, text encoder fp16, VAE fp32;")
    assert "attention sdpa" in line
    assert "offload model (SDXL only)" in line
    assert "--no-half-vae: VAE in fp32" in line
    full = plan_runtime(parse_options(["--precision", "full"], {}), CUDA24).describe()
    assert "UNet fp16 weights/fp32 compute" in full


def test_offload_for_medvram_sdxl():
    plan = plan_runtime(parse_options(["--medvram-sdxl"], {}), CUDA24)
    assert plan.offload_for(is_sdxl=True) == "model"
    assert plan.offload_for(is_sdxl=False) == "none"
    medvram = plan_runtime(parse_options(["--medvram"], {}), CUDA24)
    assert medvram.offload_for(is_sdxl=False) == "model"


def test_sdxl_vae_upcast_decision():
    plan = plan_runtime(parse_options([], {}), CUDA24)
    assert plan.vae_dtype_for(is_sdxl=True, force_upcast=True) == FP32
    assert plan.vae_dtype_for(is_sdxl=True, force_upcast=False) == FP16  # fp16-fix VAE
    assert plan.vae_dtype_for(is_sdxl=False, force_upcast=True) == FP16
    half = plan_runtime(parse_options(["--precision", "half"], {}), CUDA24)
    assert half.vae_dtype_for(is_sdxl=True, force_upcast=True) == FP16


def test_vae_tiling_threshold():
    small = plan_runtime(parse_options([], {}), CUDA8)
    assert not small.should_tile_vae(2048, 2048)
    assert small.should_tile_vae(2048, 2056)
    assert not plan_runtime(parse_options([], {}), CPU).should_tile_vae(8192, 8192)


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_sdpa_and_autocast_contexts():
    no_mem = plan_runtime(parse_options(["--opt-sdp-no-mem-attention"], {}), CPU)
    with no_mem.sdpa_context():
        query = torch.randn(1, 2, 4, 8)
        out = torch.nn.functional.scaled_dot_product_attention(query, query, query)
    assert out.shape == query.shape
    default = plan_runtime(parse_options([], {}), CUDA24)
    assert type(default.sdpa_context()).__name__ == "nullcontext"
    assert isinstance(default.autocast_context(), torch.autocast)
    assert type(plan_runtime(parse_options([], {}), CPU).autocast_context()).__name__ == "nullcontext"


def test_probe_hardware_on_this_machine():
    hardware = probe_hardware()
    assert isinstance(hardware, HardwareInfo)
    assert len(hardware.cuda_devices) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_probe_degrades_when_cuda_is_broken(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    def broken() -> bool:
        raise RuntimeError("CUDA driver version is insufficient")

    monkeypatch.setattr(torch.cuda, "is_available", broken)
    hardware = probe_hardware()
    assert hardware.cuda_devices == ()
    assert any("insufficient" in text for text in hardware.probe_errors)
    assert "insufficient" in caplog.text
    assert plan_runtime(parse_options([], {}), hardware).device in ("cpu", "mps")


def test_only_policy_probes_devices():
    pattern = re.compile(r"cuda\.is_available\(|backends\.mps|mps\.is_available\(")
    offenders = [str(path.relative_to(REPO)) for path in sorted((REPO / "sdweb").rglob("*.py"))
                 if path.name != "policy.py" and pattern.search(path.read_text(encoding="utf-8"))]
    assert offenders == []


# ----------------------------------------------------------------------------------------- tiny real pipeline


def tiny_pipeline():
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=8, attention_head_dim=4)
    vae = AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=32)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, projection_dim=32))
    tokenizer = CLIPTokenizer(vocab_file=str(TOKENIZER_DIR / "vocab.json"), merges_file=str(TOKENIZER_DIR / "merges.txt"),
                              model_max_length=77, pad_token="<|endoftext|>")
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        scheduler=DDIMScheduler(steps_offset=1, clip_sample=False), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _processor_names(module: torch.nn.Module) -> set[str]:
    return {type(processor).__name__ for processor in module.attn_processors.values()}


def _run(pipe, plan: RuntimePlan, size: int = 32, batch: int = 1, steps: int = 2):
    with plan.sdpa_context(), plan.autocast_context():
        result = pipe("a cat", num_inference_steps=steps, height=size, width=size, output_type="np",
                      num_images_per_prompt=batch, generator=torch.Generator("cpu").manual_seed(1))
    return result.images


def test_apply_cpu_default_plan_and_generate():
    pipe = tiny_pipeline()
    plan = plan_runtime(parse_options([], {}), CPU)
    apply_plan_to_pipeline(pipe, plan, is_sdxl=False)
    assert _processor_names(pipe.unet) == {"AttnProcessor2_0"}
    assert _processor_names(pipe.vae) == {"AttnProcessor2_0"}
    assert pipe.vae.use_slicing
    assert pipe.device.type == "cpu"
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {FP32}
    images = _run(pipe, plan, batch=2)
    assert images.shape == (2, 32, 32, 3)


@pytest.mark.parametrize(("flags", "unet_processors"), [
    (["--disable-opt-split-attention"], {"AttnProcessor"}),
    (["--opt-split-attention"], {"SlicedAttnProcessor"}),
    (["--opt-sdp-no-mem-attention"], {"AttnProcessor2_0"}),
])
def test_apply_attention_modes(flags: list[str], unet_processors: set[str]):
    pipe = tiny_pipeline()
    plan = plan_runtime(parse_options(flags, {}), CPU)
    apply_plan_to_pipeline(pipe, plan, is_sdxl=False)
    assert _processor_names(pipe.unet) == unet_processors
    assert _run(pipe, plan, steps=1).shape == (1, 32, 32, 3)


def test_apply_channels_last():
    pipe = tiny_pipeline()
    apply_plan_to_pipeline(pipe, plan_runtime(parse_options(["--opt-channelslast"], {}), CPU), is_sdxl=False)
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def test_apply_fp16_storage_fp32_compute():
    pipe = tiny_pipeline()
    plan = dataclasses.replace(plan_runtime(parse_options([], {}), CPU), unet_dtype=FP16)
    apply_plan_to_pipeline(pipe, plan, is_sdxl=False)
    assert pipe.unet.conv_in.weight.dtype == FP16
    images = _run(pipe, plan, steps=1)
    assert images.shape == (1, 32, 32, 3)


def test_apply_upcasts_sdxl_vae_only():
    plan = dataclasses.replace(plan_runtime(parse_options([], {}), CPU), vae_dtype=FP16, upcast_sdxl_vae=True)
    sdxl, sd1 = tiny_pipeline(), tiny_pipeline()
    apply_plan_to_pipeline(sdxl, plan, is_sdxl=True)
    apply_plan_to_pipeline(sd1, plan, is_sdxl=False)
    assert sdxl.vae.dtype == FP32
    assert sd1.vae.dtype == FP16


def test_offload_flags_are_noops_on_cpu():
    pipe = tiny_pipeline()
    plan = dataclasses.replace(plan_runtime(parse_options([], {}), CPU), offload="sequential")
    apply_plan_to_pipeline(pipe, plan, is_sdxl=False)
    assert not hasattr(pipe.unet, "_hf_hook")
    assert pipe.device.type == "cpu"


def test_set_vae_tiling_for_size():
    pipe = tiny_pipeline()
    plan = dataclasses.replace(plan_runtime(parse_options([], {}), CPU), vae_tiling_threshold_pixels=64 * 64)
    assert set_vae_tiling_for_size(pipe, plan, 128, 128) is True
    assert pipe.vae.use_tiling
    assert set_vae_tiling_for_size(pipe, plan, 64, 64) is False
    assert not pipe.vae.use_tiling


# ----------------------------------------------------------------------------------------------------- memory


def test_memory_stats_shape_on_cpu():
    stats = memory.memory_stats("cpu")
    assert set(stats) == {"ram", "cuda"}
    assert set(stats["ram"]) == {"free", "used", "total"}
    assert stats["ram"]["total"] > stats["ram"]["used"] > 0
    assert stats["ram"]["free"] == stats["ram"]["total"] - stats["ram"]["used"]
    assert stats["cuda"] == {"error": "unavailable"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_memory_stats_for_missing_cuda_device():
    assert set(memory.memory_stats("cuda:0")["cuda"]) == {"error"}


def test_is_out_of_memory():
    assert memory.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert memory.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)"))
    assert memory.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to ..."))
    assert memory.is_out_of_memory(MemoryError())
    wrapped = ValueError("decode failed")
    wrapped.__cause__ = torch.OutOfMemoryError("CUDA out of memory")
    assert memory.is_out_of_memory(wrapped)
    assert not memory.is_out_of_memory(ValueError("bad prompt"))
    assert not memory.is_out_of_memory(RuntimeError("expected scalar type Half but found Float"))


def test_free_memory_and_rss():
    memory.free_memory("cpu")
    memory.free_memory("cuda:0")  # guarded: harmless without CUDA
    memory.free_memory("mps")
    assert memory.process_rss_bytes() > 10 * 1024 * 1024


# ----------------------------------------------------------------------------------------------------- GPU


def _gpu_run(flags: list[str], offload: str | None = None) -> int:
    pipe = tiny_pipeline()
    plan = plan_runtime(parse_options(flags, {}), probe_hardware())
    if offload is not None:
        plan = dataclasses.replace(plan, offload=offload)
    assert plan.device.startswith("cuda"), plan.describe()
    memory.free_memory(plan.device)
    torch.cuda.reset_peak_memory_stats(plan.device)
    apply_plan_to_pipeline(pipe, plan, is_sdxl=False)
    images = _run(pipe, plan, size=64, batch=2, steps=2)
    peak = torch.cuda.max_memory_allocated(plan.device)
    print(f"\n{flags or ['(default)']} offload={plan.offload}: peak VRAM {peak / 2**20:.1f} MiB; {plan.describe()}")
    assert images.shape == (2, 64, 64, 3)
    assert torch.isfinite(torch.from_numpy(images)).all()
    return peak


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("flags", "offload"), [
    ([], None), (["--medvram"], None), (["--lowvram"], None), (["--lowvram"], "group"),
    (["--no-half-vae", "--opt-channelslast"], None), (["--opt-sdp-no-mem-attention"], None),
    (["--upcast-sampling"], None), (["--precision", "full"], None),
])
def test_gpu_plans_generate(flags: list[str], offload: str | None):
    _gpu_run(flags, offload)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_memory_stats_shape():
    plan = plan_runtime(parse_options([], {}), probe_hardware())
    torch.zeros(1024, device=plan.device)
    cuda = memory.memory_stats(plan.device)["cuda"]
    assert set(cuda) == {"system", "active", "allocated", "reserved", "inactive", "events"}
    assert cuda["allocated"]["current"] > 0


# Flux dev in bf16 (transformer 23.8 GB, T5-XXL 9.5 GB, CLIP-L 0.25 GB, VAE 0.17 GB) and in fp8 (transformer 11.9 GB)
FLUX_BF16 = {"transformer": int(23.8 * GIB), "text_encoder_2": int(9.5 * GIB), "text_encoder": int(0.25 * GIB),
             "vae": int(0.17 * GIB)}
FLUX_FP8 = {**FLUX_BF16, "transformer": int(11.9 * GIB)}
TWO_LARGE_ENCODERS = {"transformer": 20 * GIB, "text_encoder_3": int(9.5 * GIB), "text_encoder_2": 8 * GIB,
                      "vae": int(0.2 * GIB)}
CUDA80 = HardwareInfo(cuda_devices=(_gpu("NVIDIA A100", 80),))
CUDA16 = HardwareInfo(cuda_devices=(_gpu("NVIDIA RTX 4080", 16),))


@pytest.mark.parametrize(("hardware", "flags", "sizes", "offload", "on_cpu", "reason"), [
    (CUDA80, [], FLUX_BF16, "none", (), ""),
    (CUDA16, [], FLUX_FP8, "none", ("text_encoder_2",), r"text_encoder_2 \(9\.5 GB\) runs on the CPU"),
    (CUDA24, [], TWO_LARGE_ENCODERS, "model", (), r"needs 37\.7 GB.*model offload"),
    (CUDA24, [], FLUX_BF16, "group", (), r"group offload"),
    (CUDA8, [], FLUX_FP8, "group", (), r"group offload"),
    (CUDA24, ["--lowvram"], FLUX_FP8, "sequential", (), ""),  # a flag decides
    (CPU, [], FLUX_BF16, "none", (), ""),
])
def test_large_models_are_placed_by_size(hardware, flags, sizes, offload, on_cpu, reason):
    from sdweb.runtime.placement import place_model

    placement = place_model(plan_runtime(parse_options(flags, {}), hardware), sizes, is_sdxl=True)
    assert (placement.offload, placement.cpu_components) == (offload, on_cpu)
    assert re.search(reason, placement.reason) if reason else placement.reason == ""


@pytest.mark.parametrize("platform, fallback", [("darwin", "1"), ("linux", None), ("win32", None)])
def test_startup_environment_turns_on_the_mps_cpu_fallback_on_macos_only(platform, fallback):
    from sdweb import startup_environment

    defaults = startup_environment(platform)
    assert defaults.get("PYTORCH_ENABLE_MPS_FALLBACK") == fallback
    assert defaults["HF_HUB_OFFLINE"] == "1" and defaults["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_child_processes_run_offline_whatever_this_one_has(monkeypatch, tmp_path):
    from sdweb.config.environment import child_environment

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    env = child_environment(tmp_path)
    assert env["HF_HUB_OFFLINE"] == "1" and env["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert env["GRADIO_TEMP_DIR"] == str(tmp_path / "gradio") and env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize("value, said", [("1", "run on the CPU"), ("0", "fail: PYTORCH_ENABLE_MPS_FALLBACK")])
def test_the_mps_plan_says_whether_missing_ops_fall_back_to_the_cpu(monkeypatch, value, said):
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", value)
    plan = plan_runtime(parse_options([], {}), MPS)
    assert any(said in reason for reason in plan.reasons), plan.reasons
