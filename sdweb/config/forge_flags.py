"""What Forge's (and sd-webui-controlnet's) command-line flags do in sdweb: the sdweb flags each stands for, or why
it has no effect here. Forge users keep their COMMANDLINE_ARGS; nothing is silently ignored (the reasons go into
the runtime plan's Runtime line at start)."""

from __future__ import annotations

import dataclasses
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from sdweb.config.launch_options import LaunchOptions, field_flag

_FIELDS = [field for field in dataclasses.fields(LaunchOptions) if field_flag(field) is not None]
FLAG_NAMES = {field.name: field_flag(field).name for field in _FIELDS}
DEFAULTS = {field.name: getattr(LaunchOptions(), field.name) for field in _FIELDS}

# Forge flag (LaunchOptions field) -> sdweb fields it sets, where the user left those at their defaults
# (--gpu-device-id and --forge-ref-a1111-home carry values: apply_equivalents; --cuda-malloc and
# --pytorch-deterministic act on the process: prepare_environment, apply_torch_settings; --unet-in-bf16 and
# --vae-in-bf16 depend on the GPU: the runtime policy applies them)
EQUIVALENTS: dict[str, dict[str, Any]] = {
    "all_in_fp32": {"no_half": True, "no_half_vae": True},
    "all_in_fp16": {"precision": "half"},
    "vae_in_fp32": {"no_half_vae": True},
    "attention_split": {"opt_split_attention": True},
    "attention_quad": {"opt_sub_quad_attention": True},
    "attention_pytorch": {"opt_sdp_attention": True},
    "always_low_vram": {"medvram": True},
    "always_offload_from_vram": {"medvram": True},
    "always_no_vram": {"lowvram": True},
    "always_cpu": {"use_cpu": ("all",)},
}

_STAYS_ON_GPU = ("models stay on the GPU unless --medvram or --lowvram is given or a model is larger than the GPU "
                 "(then it is placed by size)")
_AS_STORED = "fp8 weights are used as the file stores them (fp8 or GGUF files); no conversion at load"
_NO_WEIGHTS = "the built-in ControlNet preprocessors need no weights"

# Flag -> why it does nothing in sdweb
NO_EFFECT: dict[str, str] = {
    "unet_in_fp16": "fp16 is already the UNet's dtype on CUDA (fp32 on the CPU)",
    "unet_in_fp8_e4m3fn": _AS_STORED,
    "unet_in_fp8_e5m2": _AS_STORED,
    "vae_in_fp16": "the VAE is fp16 on CUDA unless --no-half-vae",
    "vae_in_cpu": "the VAE runs on the model's device (--use-cpu sd runs everything on the CPU)",
    "clip_in_fp8_e4m3fn": _AS_STORED,
    "clip_in_fp8_e5m2": _AS_STORED,
    "clip_in_fp16": "the text encoders are fp16 on CUDA",
    "clip_in_fp32": "the text encoders follow the UNet's precision (fp32 with --no-half or --precision full)",
    "force_upcast_attention": "attention runs in the model's dtype (torch SDPA)",
    "disable_attention_upcast": "attention runs in the model's dtype (torch SDPA)",
    "disable_xformers": "xformers is used only with --xformers",
    "disable_ipex_hijack": "Intel XPU is not supported",
    "always_gpu": _STAYS_ON_GPU,
    "always_high_vram": _STAYS_ON_GPU,
    "always_normal_vram": _STAYS_ON_GPU,
    "cuda_stream": "Forge's offload internals; --lowvram-offload group prefetches with CUDA streams",
    "pin_shared_memory": "Forge's offload internals",
    "controlnet_preprocessor_models_dir": _NO_WEIGHTS,
    "controlnet_annotator_models_path": _NO_WEIGHTS,
    "no_half_controlnet": "ControlNet runs in the UNet's dtype",
    "controlnet_preprocessor_cache_size": "preprocessor results are not cached",
    "controlnet_tracemalloc": "no memory tracing",
    "controlnet_loglevel": "sdweb's --loglevel sets the log level",
}

# Forge refuses these together (argparse groups); so does sdweb
EXCLUSIVE: tuple[tuple[str, ...], ...] = (
    ("all_in_fp32", "all_in_fp16"),
    ("unet_in_bf16", "unet_in_fp16", "unet_in_fp8_e4m3fn", "unet_in_fp8_e5m2"),
    ("vae_in_fp16", "vae_in_fp32", "vae_in_bf16"),
    ("clip_in_fp8_e4m3fn", "clip_in_fp8_e5m2", "clip_in_fp16", "clip_in_fp32"),
    ("attention_split", "attention_quad", "attention_pytorch"),
    ("force_upcast_attention", "disable_attention_upcast"),
    ("always_gpu", "always_high_vram", "always_normal_vram", "always_low_vram", "always_no_vram", "always_cpu"),
)

# (sdweb's folder flag, the folder under an A1111 checkout) for --forge-ref-a1111-home: Forge's list
A1111_HOME_FOLDERS = (("ckpt_dir", "models/Stable-diffusion"), ("vae_dir", "models/VAE"),
                      ("hypernetwork_dir", "models/hypernetworks"), ("embeddings_dir", "embeddings"),
                      ("lora_dir", "models/Lora"), ("controlnet_dir", "models/ControlNet"))


def conflicts(values: dict[str, Any]) -> str | None:
    """The first pair of Forge flags given together that Forge refuses, as a message; None when there is none."""
    for group in EXCLUSIVE:
        given = [FLAG_NAMES[field] for field in group if values.get(field)]
        if len(given) > 1:
            return f"{given[0]} cannot be combined with {given[1]} (as in Forge: choose one)."
    return None


def apply_equivalents(values: dict[str, Any]) -> None:
    """Set the sdweb fields the given Forge flags stand for, in place, leaving any the user set alone."""
    wanted: dict[str, Any] = {}
    for field, settings in EQUIVALENTS.items():
        if values.get(field):
            wanted.update(settings)
    if values.get("gpu_device_id") is not None:
        wanted["device_id"] = str(values["gpu_device_id"])
    home = values.get("forge_ref_a1111_home")
    if home:  # as Forge: each of the checkout's folders that exists
        for target, folder in A1111_HOME_FOLDERS:
            path = Path(home).expanduser() / folder
            if path.is_dir():
                wanted[target] = str(path)
    for target, value in wanted.items():
        if values[target] == DEFAULTS[target]:
            values[target] = value


def no_effect_notes(options: Any) -> list[str]:
    """One line per flag given (not at its default) that does nothing in sdweb, saying why."""
    return [f"{FLAG_NAMES[field]}: no effect in sdweb ({why})" for field, why in NO_EFFECT.items()
            if getattr(options, field) != DEFAULTS[field]]


def prepare_environment(options: Any, environ: MutableMapping[str, str]) -> None:
    """Before torch is imported: --cuda-malloc picks PyTorch's asynchronous CUDA allocator (added to
    PYTORCH_CUDA_ALLOC_CONF, as Forge does; a backend the user chose stays); --pytorch-deterministic gives cuBLAS
    the fixed workspace its deterministic mode needs."""
    current = environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
    if options.cuda_malloc and "backend:" not in current:
        environ["PYTORCH_CUDA_ALLOC_CONF"] = ",".join(part for part in (current, "backend:cudaMallocAsync") if part)
    if options.pytorch_deterministic:
        environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def apply_torch_settings(options: Any) -> None:
    """--pytorch-deterministic: torch's deterministic algorithms for the whole process; an op without one warns
    instead of failing (as Forge)."""
    if options.pytorch_deterministic:
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
