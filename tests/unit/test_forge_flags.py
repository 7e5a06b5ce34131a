"""Forge's and sd-webui-controlnet's flags: a Forge user's COMMANDLINE_ARGS start sdweb, each flag does what its
sdweb equivalent does, and the ones with no effect say so in the Runtime line."""

import dataclasses
import subprocess
import sys

import pytest
import torch

from sdweb.cli import CommandLineError, parse_options
from sdweb.config import forge_flags
from sdweb.config.launch_options import CONTROLNET, FORGE, LaunchOptions, field_flag
from sdweb.config.paths import resolve_paths
from sdweb.runtime.policy import CudaDevice, HardwareInfo, plan_runtime

GIB = 1 << 30
RTX3060 = HardwareInfo(cuda_devices=tuple(
    CudaDevice(name=f"NVIDIA GeForce RTX 3060 #{index}", total_memory_bytes=12 * GIB, capability=(8, 6),
               supports_bf16=True) for index in range(2)))
HANDLED_APART = {"gpu_device_id", "forge_ref_a1111_home", "cuda_malloc", "pytorch_deterministic", "unet_in_bf16",
                 "vae_in_bf16"}


def _parse(args, tmp_path):
    return parse_options(["--data-dir", str(tmp_path)], {"COMMANDLINE_ARGS": args})


def test_each_forge_and_controlnet_flag_has_one_meaning():
    fields = [field.name for field in dataclasses.fields(LaunchOptions)
              if (flag := field_flag(field)) is not None and flag.group in (FORGE, CONTROLNET)]
    assert len(fields) == 40  # Forge 35 (its --directml is an accepted no-op flag) and sd-webui-controlnet 5
    for name in fields:
        meanings = [name in forge_flags.EQUIVALENTS, name in forge_flags.NO_EFFECT, name in HANDLED_APART]
        assert meanings.count(True) == 1, name
    named = set(forge_flags.EQUIVALENTS) | set(forge_flags.NO_EFFECT) | {n for g in forge_flags.EXCLUSIVE for n in g}
    assert named <= set(fields)
    targets = {target for settings in forge_flags.EQUIVALENTS.values() for target in settings}
    assert targets <= {field.name for field in dataclasses.fields(LaunchOptions)} - set(fields)


def test_a_forge_users_commandline_args_map_to_sdwebs_flags(tmp_path):
    options = _parse("--cuda-malloc --cuda-stream --pin-shared-memory --always-offload-from-vram "
                     "--attention-pytorch --all-in-fp32 --gpu-device-id 1 --no-half-controlnet", tmp_path)
    assert options.medvram and options.opt_sdp_attention and options.no_half and options.no_half_vae
    assert options.device_id == "1" and not options.lowvram
    plan = plan_runtime(options, RTX3060)
    assert plan.device == "cuda:1" and plan.offload == "model" and plan.unet_dtype.is_floating_point
    said = "\n".join(plan.reasons)
    for flag in ("--cuda-stream", "--pin-shared-memory", "--no-half-controlnet"):
        assert f"{flag}: no effect in sdweb (" in said
    assert "--cuda-malloc" not in said and "--attention-pytorch" not in said  # those do something


@pytest.mark.parametrize("args, field, value", [
    ("--always-no-vram", "lowvram", True),
    ("--always-low-vram", "medvram", True),
    ("--always-cpu", "use_cpu", ("all",)),
    ("--attention-split", "opt_split_attention", True),
    ("--attention-quad", "opt_sub_quad_attention", True),
    ("--vae-in-fp32", "no_half_vae", True),
    ("--all-in-fp16", "precision", "half"),
    ("--all-in-fp16 --precision full", "precision", "full"),  # the user's own sdweb flag wins
    ("--gpu-device-id 1 --device-id 0", "device_id", "0"),
    ("--controlnet-loglevel DEBUG --controlnet-preprocessor-cache-size 4", "medvram", False),
])
def test_equivalents_leave_the_users_own_flags_alone(tmp_path, args, field, value):
    assert getattr(_parse(args, tmp_path), field) == value


def test_flags_forge_refuses_together_are_refused(tmp_path):
    with pytest.raises(CommandLineError, match=r"^--all-in-fp16 \(--precision half\) cannot be combined with"):
        _parse("--all-in-fp16 --no-half-vae", tmp_path)
    with pytest.raises(CommandLineError, match="--always-gpu cannot be combined with --always-no-vram"):
        _parse("--always-gpu --always-no-vram", tmp_path)
    with pytest.raises(CommandLineError, match="--unet-in-fp16 cannot be combined with --unet-in-fp8-e4m3fn"):
        _parse("--unet-in-fp16 --unet-in-fp8-e4m3fn", tmp_path)


def test_valued_flags_that_do_nothing_are_named_only_when_changed(tmp_path):
    plan = plan_runtime(_parse("--controlnet-loglevel DEBUG", tmp_path), HardwareInfo())
    assert any(reason.startswith("--controlnet-loglevel: no effect") for reason in plan.reasons)
    quiet = plan_runtime(_parse("--controlnet-preprocessor-cache-size 16", tmp_path), HardwareInfo())
    assert not any("no effect in sdweb" in reason for reason in quiet.reasons)


def test_an_a1111_home_lends_its_model_folders(tmp_path):
    home = tmp_path / "stable-diffusion-webui"
    for folder in ("models/Stable-diffusion", "models/Lora", "embeddings", "models/VAE"):
        (home / folder).mkdir(parents=True)
    options = _parse(f"--forge-ref-a1111-home {home} --vae-dir {tmp_path / 'mine'}", tmp_path / "data")
    paths = resolve_paths(options)
    assert paths.extra_checkpoint_dir == (home / "models" / "Stable-diffusion").resolve()
    assert paths.lora == (home / "models" / "Lora").resolve() and paths.embeddings == (home / "embeddings").resolve()
    assert paths.extra_vae_dir == (tmp_path / "mine").resolve()  # given: kept
    assert paths.extra_controlnet_dir is None  # the checkout has no models/ControlNet: not set, as in Forge
    assert paths.hypernetworks == (tmp_path / "data" / "models" / "hypernetworks").resolve()


@pytest.mark.parametrize("before, after", [
    (None, "backend:cudaMallocAsync"),
    ("expandable_segments:True", "expandable_segments:True,backend:cudaMallocAsync"),
    ("backend:native", "backend:native"),  # the user's own backend stays
])
def test_cuda_malloc_picks_the_async_allocator(tmp_path, before, after):
    environ = {} if before is None else {"PYTORCH_CUDA_ALLOC_CONF": before}
    forge_flags.prepare_environment(_parse("--cuda-malloc", tmp_path), environ)
    assert environ == {"PYTORCH_CUDA_ALLOC_CONF": after}
    untouched = {} if before is None else {"PYTORCH_CUDA_ALLOC_CONF": before}
    forge_flags.prepare_environment(_parse("", tmp_path), untouched)
    assert untouched == ({} if before is None else {"PYTORCH_CUDA_ALLOC_CONF": before})


def test_pytorch_deterministic_switches_torch_to_deterministic_algorithms(tmp_path):
    options = _parse("--pytorch-deterministic", tmp_path)
    environ = {}
    forge_flags.prepare_environment(options, environ)
    assert environ == {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    assert not torch.are_deterministic_algorithms_enabled()
    try:
        forge_flags.apply_torch_settings(options)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    forge_flags.apply_torch_settings(_parse("", tmp_path))
    assert not torch.are_deterministic_algorithms_enabled()


def test_flags_are_parsed_before_torch_is_imported(tmp_path):
    """PYTORCH_CUDA_ALLOC_CONF only counts when set before torch loads: parsing must not import it."""
    code = ("import sys; from sdweb.cli import parse_options; "
            f"parse_options(['--cuda-malloc', '--data-dir', {str(tmp_path)!r}], {{}}); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


GTX1080 = HardwareInfo(cuda_devices=(CudaDevice(name="NVIDIA GeForce GTX 1080", total_memory_bytes=8 * GIB,
                                                capability=(6, 1), supports_bf16=False),))


@pytest.mark.parametrize("args, unet, vae, upcast", [
    ("--unet-in-bf16 --vae-in-bf16", torch.bfloat16, torch.bfloat16, False),
    ("--unet-in-bf16", torch.bfloat16, torch.float16, True),
    ("--vae-in-bf16", torch.float16, torch.bfloat16, False),
    ("--unet-in-bf16 --no-half", torch.float32, torch.float32, False),  # the user's fp32 wins
    ("", torch.float16, torch.float16, True),
])
def test_bf16_flags_on_a_gpu_with_bf16(tmp_path, args, unet, vae, upcast):
    plan = plan_runtime(_parse(args, tmp_path), RTX3060)
    assert (plan.unet_dtype, plan.unet_compute_dtype, plan.vae_dtype) == (unet, unet, vae)
    assert plan.upcast_sdxl_vae is upcast
    assert plan.vae_dtype_for(is_sdxl=True, force_upcast=True) == (torch.float32 if upcast else vae)


def test_bf16_flags_are_said_to_be_ignored_without_bf16(tmp_path):
    for hardware in (GTX1080, HardwareInfo()):
        plan = plan_runtime(_parse("--unet-in-bf16 --vae-in-bf16", tmp_path), hardware)
        assert torch.bfloat16 not in (plan.unet_dtype, plan.vae_dtype)
        assert any("--unet-in-bf16 / --vae-in-bf16 ignored" in reason for reason in plan.reasons)
