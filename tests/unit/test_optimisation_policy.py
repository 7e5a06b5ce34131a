"""--compile and --opt-fused-qkv: the flags, the policy table (fields and reasons), and CompiledForward's
timing and eager fallback with a fake compiler (no real torch.compile here: that is in tests/service)."""

from __future__ import annotations

import logging
import os
import re

import pytest
import torch

from sdweb.cli import FLAGS, build_parser, parse_options
from sdweb.config.launch_options import DEVICE
from sdweb.runtime.compile import (
    INDUCTOR_CACHE_ENV,
    compiled_forward,
    install_compile,
    note_structure_change,
    uninstall_compile,
    use_compile_cache,
)
from sdweb.runtime.policy import GIB, CudaDevice, HardwareInfo, plan_runtime

CPU = HardwareInfo()
CUDA24 = HardwareInfo(cuda_devices=(CudaDevice("NVIDIA GeForce RTX 3090", 24 * GIB, (8, 6), True),))


def test_flags_are_in_the_device_group_and_off_by_default():
    by_name = {flag.name: flag for flag in FLAGS}
    for name in ("--compile", "--opt-fused-qkv"):
        assert by_name[name].group == DEVICE
    options = parse_options([], {})
    assert options.compile is False and options.opt_fused_qkv is False
    given = parse_options(["--compile", "--opt-fused-qkv"], {})
    assert given.compile is True and given.opt_fused_qkv is True
    help_text = build_parser().format_help()
    device_part = help_text.split(DEVICE, 1)[1].split("Models and paths", 1)[0]
    assert "--compile" in device_part and "--opt-fused-qkv" in device_part


# (id, hardware, flags, expected compile, expected fused_qkv, regex a reason must match or None)
TABLE = [
    ("default", CPU, [], False, False, None),
    ("cpu-compile", CPU, ["--compile"], True, False, r"--compile: torch\.compile of the UNet and VAE decoder"),
    ("cuda-compile", CUDA24, ["--compile"], True, False, r"dynamic=False"),
    ("cuda-compile-medvram", CUDA24, ["--compile", "--medvram"], False, False, r"--compile ignored: offload model"),
    ("cuda-compile-lowvram", CUDA24, ["--compile", "--lowvram"], False, False,
     r"--compile ignored: offload sequential"),
    ("cuda-compile-medvram-sdxl", CUDA24, ["--compile", "--medvram-sdxl"], True, False, r"not for SDXL models"),
    ("cpu-medvram-compile", CPU, ["--compile", "--medvram"], True, False, r"--compile: torch\.compile"),
    ("cpu-fused", CPU, ["--opt-fused-qkv"], False, True, r"--opt-fused-qkv: UNet q/k/v projections fused"),
    ("cuda-fused-sdp-no-mem", CUDA24, ["--opt-fused-qkv", "--opt-sdp-no-mem-attention"], False, True, r"fused"),
    ("fused-sliced", CPU, ["--opt-fused-qkv", "--opt-split-attention"], False, False,
     r"--opt-fused-qkv ignored: .* attention is sliced"),
    ("fused-no-opt", CPU, ["--opt-fused-qkv", "--disable-opt-split-attention"], False, False,
     r"attention is none"),
    ("cuda-fused-precision-full", CUDA24, ["--opt-fused-qkv", "--precision", "full"], False, False,
     r"layerwise casting"),
    ("both", CUDA24, ["--compile", "--opt-fused-qkv"], True, True, r"--opt-fused-qkv: "),
]


@pytest.mark.parametrize(("hardware", "flags", "compile_on", "fused", "reason"),
                         [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_policy_table(hardware, flags, compile_on, fused, reason):
    plan = plan_runtime(parse_options(flags, {}), hardware)
    assert (plan.compile, plan.fused_qkv) == (compile_on, fused)
    line = plan.describe()
    if reason is None:
        assert not any("compile" in r or "fused" in r for r in plan.reasons)
        assert "torch.compile" not in line and "fused QKV" not in line
    else:
        assert any(re.search(reason, r) for r in plan.reasons), plan.reasons
        assert re.search(reason, line)
    assert ("torch.compile" in line.split("; because:")[0]) == compile_on
    assert ("fused QKV" in line.split("; because:")[0]) == fused


class Doubler(torch.nn.Module):
    def forward(self, sample, scale=1.0):
        return sample * 2 * scale


def _fake_compiler(calls, fail_with=None):
    def compiler(fn, dynamic):
        assert dynamic is False

        def compiled(*args, **kwargs):
            calls.append(tuple(args[0].shape))
            if fail_with is not None:
                raise fail_with
            return fn(*args, **kwargs) + 0  # "compiled": same result

        return compiled

    return compiler


def test_first_call_per_shape_is_timed_and_logged(caplog):
    module, calls = Doubler(), []
    wrapper = install_compile(module, "UNet", _fake_compiler(calls))
    assert compiled_forward(module) is wrapper and install_compile(module, "UNet") is wrapper
    with caplog.at_level(logging.INFO, logger="sdweb.runtime.compile"):
        for shape in [(1, 4, 8, 8), (1, 4, 8, 8), (2, 4, 8, 8), (1, 4, 16, 8)]:
            assert torch.equal(module(torch.ones(shape)), torch.full(shape, 2.0))
    logged = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(logged) == 3 and len(calls) == 4
    assert logged[0][0] == logging.INFO and re.fullmatch(r"compiled UNet for 1x8x8 in \d+\.\d s", logged[0][1])
    for (level, message), shape in zip(logged[1:], ("2x8x8", "1x16x8"), strict=True):  # new sizes: warned
        assert level == logging.WARNING and re.match(rf"recompiled UNet for {shape} in \d+\.\d s \(a new size\)",
                                                     message)
    assert set(wrapper.compile_seconds) == {(1, 8, 8), (2, 8, 8), (1, 16, 8)}
    caplog.clear()
    note_structure_change(type("Pipe", (), {"unet": module})())  # a LoRA was injected: recompile is timed
    with caplog.at_level(logging.INFO, logger="sdweb.runtime.compile"):
        module(torch.ones(1, 4, 8, 8))
        module(torch.ones(1, 4, 8, 8))
        module(torch.ones(3, 4, 8, 8))
    assert [(r.levelno, r.getMessage()[:25]) for r in caplog.records] == [(logging.WARNING, "recompiled UNet for 1x8x8")] \
        + [(logging.WARNING, "recompiled UNet for 3x8x8")]
    assert "(the LoRA set changed)" in caplog.records[0].getMessage()
    assert "(a new size)" in caplog.records[1].getMessage()
    assert uninstall_compile(module) and compiled_forward(module) is None and not uninstall_compile(module)
    assert module(torch.ones(1)).item() == 2.0


def test_a_compile_failure_warns_once_and_runs_eagerly(caplog):
    module, calls = Doubler(), []
    install_compile(module, "UNet", _fake_compiler(calls, RuntimeError("C++ compiler not found\nmore")))
    with caplog.at_level(logging.INFO, logger="sdweb.runtime.compile"):
        first = module(torch.ones(1, 4, 8, 8), scale=3.0)
        second = module(torch.ones(1, 4, 8, 8), scale=3.0)
    assert torch.equal(first, torch.full((1, 4, 8, 8), 6.0)) and torch.equal(second, first)
    assert len(calls) == 1 and compiled_forward(module) is None  # eager from now on
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(caplog.records) == 1 and len(warnings) == 1
    assert warnings[0].getMessage() == ("torch.compile failed in the UNet (RuntimeError: C++ compiler not found); "
                                        "running the UNet eagerly")


def test_out_of_memory_is_not_a_compile_failure():
    module = Doubler()
    install_compile(module, "UNet", _fake_compiler([], torch.OutOfMemoryError("CUDA out of memory")))
    with pytest.raises(torch.OutOfMemoryError):
        module(torch.ones(1, 4, 8, 8))
    assert compiled_forward(module) is not None  # still compiled: the next job may fit


def test_a_hook_forward_already_on_the_instance_is_kept():
    module = Doubler()
    module.forward = lambda sample, scale=1.0: sample * 10  # e.g. an accelerate hook
    install_compile(module, "UNet", _fake_compiler([]))
    assert module(torch.ones(1)).item() == 10.0
    uninstall_compile(module)
    assert module(torch.ones(1)).item() == 10.0


def test_the_compile_cache_lives_in_the_data_folder_unless_the_user_chose_one(tmp_path, monkeypatch):
    import torch._dynamo.config

    monkeypatch.delenv(INDUCTOR_CACHE_ENV, raising=False)
    monkeypatch.setattr(torch._dynamo.config, "fail_on_recompile_limit_hit", False)
    assert use_compile_cache(tmp_path / "cache" / "torch-compile") == tmp_path / "cache" / "torch-compile"
    assert os.environ[INDUCTOR_CACHE_ENV] == str(tmp_path / "cache" / "torch-compile")
    assert torch._dynamo.config.fail_on_recompile_limit_hit  # the limit raises: we warn and run eagerly
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(tmp_path / "mine"))
    assert use_compile_cache(tmp_path / "other") == tmp_path / "mine"
