"""The one place that decides device, dtypes, attention and offload (DESIGN.md rule 1).

``probe_hardware()`` reads the machine once; ``plan_runtime(options, hardware)`` is a pure function of the flags and
that probe and returns a frozen ``RuntimePlan`` whose ``reasons`` say why; ``apply_plan_to_pipeline`` applies it to a
diffusers pipeline with diffusers' public methods only. Nothing else in sdweb calls ``torch.cuda.is_available()``,
looks at MPS or picks a dtype.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from sdweb.config import forge_flags
from sdweb.config.launch_options import LaunchOptions
from sdweb.runtime.compile import compile_pipeline, fuse_qkv, install_compile
from sdweb.runtime.memory import module_bytes
from sdweb.runtime.placement import place_model

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

log = logging.getLogger(__name__)

GIB = 1024**3
SMALL_GPU_BYTES = 5 * GIB  # below this, suggest --medvram / --lowvram
MID_GPU_BYTES = int(8.5 * GIB)  # "8 GB" cards report a little under 8 GiB; at or below: VAE tiling, --medvram-sdxl hint
TILE_ABOVE_SMALL = 2048 * 2048
TILE_ABOVE_LARGE = 4096 * 4096

ATTENTION_MODES = ("sdpa", "sdpa-no-mem", "xformers", "sliced", "none")
OFFLOAD_MODES = ("none", "model", "sequential", "group")
CPU_MODULES = ("sd", "interrogate", "gfpgan", "esrgan", "codeformer", "all")

_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


# ----------------------------------------------------------------------------------------------------- hardware


@dataclass(frozen=True)
class CudaDevice:
    name: str
    total_memory_bytes: int
    capability: tuple[int, int]
    supports_bf16: bool

    def label(self) -> str:
        return f"{self.name}, {self.total_memory_bytes / GIB:.0f} GB"


@dataclass(frozen=True)
class HardwareInfo:
    """What the machine offers. Tests build this by hand; ``probe_hardware()`` reads the real one."""

    cuda_devices: tuple[CudaDevice, ...] = ()
    mps_available: bool = False
    xformers_importable: bool = False
    cpu_bf16: bool = False
    probe_errors: tuple[str, ...] = ()


def probe_hardware() -> HardwareInfo:
    """Read the real machine. A broken CUDA/MPS install degrades to CPU and the reason is logged and kept."""
    errors: list[str] = []
    cuda = _probe_cuda(errors)
    mps = _probe_mps(errors)
    xformers = _probe_xformers() if cuda else False
    for message in errors:
        log.warning("hardware probe: %s", message)
    return HardwareInfo(cuda_devices=cuda, mps_available=mps, xformers_importable=xformers,
                        cpu_bf16=_probe_cpu_bf16(), probe_errors=tuple(errors))


def _probe_cuda(errors: list[str]) -> tuple[CudaDevice, ...]:
    try:
        if not torch.cuda.is_available():
            return ()
        devices = []
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            capability = (int(props.major), int(props.minor))
            devices.append(CudaDevice(name=str(props.name), total_memory_bytes=int(props.total_memory),
                                      capability=capability, supports_bf16=capability >= (8, 0)))
        return tuple(devices)
    except Exception as error:  # a broken driver or CUDA build must not stop the app: run without CUDA
        errors.append(f"CUDA probe failed ({type(error).__name__}: {error}); not using CUDA")
        return ()


def _probe_mps(errors: list[str]) -> bool:
    try:
        backend = getattr(torch.backends, "mps", None)
        return bool(backend is not None and backend.is_available())
    except Exception as error:  # same: degrade, never crash
        errors.append(f"MPS probe failed ({type(error).__name__}: {error}); not using MPS")
        return False


def _probe_xformers() -> bool:
    if importlib.util.find_spec("xformers") is None:
        return False
    try:
        importlib.import_module("xformers.ops")
        return True
    except Exception as error:  # xformers built for another torch raises all kinds of errors at import
        log.warning("xformers is installed but cannot be imported: %s", error)
        return False


def _probe_cpu_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # the op is absent on some builds; bf16 on CPU is only ever a hint
        return False


# ----------------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class RuntimePlan:
    """Every device/precision/memory decision for one worker, with the reasons. Frozen; built by plan_runtime.

    ``unet_dtype`` is the UNet's weight (storage) dtype and ``unet_compute_dtype`` the dtype its layers compute in;
    they differ only for ``--precision full`` without ``--no-half`` (fp16 storage, fp32 compute: A1111's manual
    cast, done with diffusers' layerwise casting). ``upcast_sampling``: keep latents and scheduler math in fp32 and
    cast to the UNet dtype at the call (the generation service does this). ``autocast``: run the UNet under
    ``autocast_context()``. ``vae_tiling_threshold_pixels``: tile VAE decode when width*height exceeds it; 0 = never.
    ``compile``: torch.compile the UNet and VAE decoder after load; ``fused_qkv``: fuse the UNet's q/k/v
    projections (both applied by runtime.compile; off by default).
    """

    device: str
    device_name: str
    unet_dtype: torch.dtype
    unet_compute_dtype: torch.dtype
    text_encoder_dtype: torch.dtype
    vae_dtype: torch.dtype
    upcast_sampling: bool
    autocast: bool
    attention: str
    offload: str
    offload_only_for_sdxl: bool
    vae_slicing: bool
    vae_tiling_threshold_pixels: int
    channels_last: bool
    compile: bool
    fused_qkv: bool
    nan_check: bool
    upcast_sdxl_vae: bool
    load_weights_to_device: bool
    interrogate_device: str
    upscaler_device: str
    gfpgan_device: str
    codeformer_device: str
    reasons: tuple[str, ...]
    device_memory_bytes: int = 0  # the CUDA device's memory (0: not CUDA): large models are placed by it

    def offload_for(self, is_sdxl: bool) -> str:
        """The offload mode for a model: --medvram-sdxl offloads SDXL only."""
        if self.offload_only_for_sdxl and not is_sdxl:
            return "none"
        return self.offload

    def vae_dtype_for(self, is_sdxl: bool, force_upcast: bool) -> torch.dtype:
        """SDXL's VAE overflows in fp16 unless it is an fp16-fix VAE (whose config has force_upcast False)."""
        if is_sdxl and force_upcast and self.upcast_sdxl_vae and self.vae_dtype == torch.float16:
            # bf16 would also avoid the overflow at half the memory of fp32 on GPUs that support it
            # (A1111's "auto_vae_precision_bfloat16"); fp32 is kept as the A1111-like default.
            return torch.float32
        return self.vae_dtype

    def should_tile_vae(self, width: int, height: int) -> bool:
        return 0 < self.vae_tiling_threshold_pixels < width * height

    def sdpa_context(self) -> AbstractContextManager[object]:
        """Wrap UNet calls in this: for sdpa-no-mem it excludes SDPA's memory-efficient kernel (deterministic)."""
        if self.attention != "sdpa-no-mem":
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH])

    def autocast_context(self) -> AbstractContextManager[object]:
        """A1111's default compute mode on CUDA: fp16 weights under torch.autocast."""
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.split(":")[0], dtype=self.unet_dtype)

    def describe(self) -> str:
        """One log line: the plan and why."""
        unet = _dtype_name(self.unet_dtype)
        if self.unet_compute_dtype != self.unet_dtype:
            unet += f" weights/{_dtype_name(self.unet_compute_dtype)} compute"
        if self.autocast:
            compute = "autocast"
        elif self.upcast_sampling:
            compute = "upcast sampling (fp32)"
        else:
            compute = "no autocast"
        offload = self.offload + (" (SDXL only)" if self.offload_only_for_sdxl else "")
        line = (f"device {self.device} ({self.device_name}); UNet {unet}, text encoder "
                f"{_dtype_name(self.text_encoder_dtype)}, VAE {_dtype_name(self.vae_dtype)}; {compute}; "
                f"attention {self.attention}; offload {offload}")
        extras = [name for name, on in (("channels_last", self.channels_last), ("torch.compile", self.compile),
                                        ("fused QKV", self.fused_qkv)) if on]
        if extras:
            line += "; " + ", ".join(extras)
        if self.reasons:
            line += "; because: " + "; ".join(self.reasons)
        return line


def _dtype_name(dtype: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


@dataclass(frozen=True)
class _Precision:
    unet: torch.dtype
    unet_compute: torch.dtype
    text_encoder: torch.dtype
    vae: torch.dtype
    upcast_sampling: bool
    autocast: bool
    upcast_sdxl_vae: bool


def plan_runtime(options: LaunchOptions, hardware: HardwareInfo) -> RuntimePlan:
    """Turn flags and hardware into one frozen plan. Pure: no torch device queries, no logging."""
    reasons: list[str] = list(hardware.probe_errors) + forge_flags.no_effect_notes(options)
    use_cpu = {name.lower() for name in options.use_cpu}
    unknown = sorted(use_cpu - set(CPU_MODULES))
    if unknown:
        reasons.append(f"--use-cpu: unknown module(s) {', '.join(unknown)} ignored (known: {', '.join(CPU_MODULES)})")
    if options.use_ipex:
        reasons.append("--use-ipex: Intel XPU is not supported; choosing among CUDA, MPS and CPU")
    best, best_name, cuda = _best_device(options, hardware, reasons)
    if "sd" in use_cpu or "all" in use_cpu:
        device, device_name, cuda = "cpu", "CPU", None
        reasons.append(f"--use-cpu {'all' if 'all' in use_cpu else 'sd'}: Stable Diffusion runs on the CPU")
    else:
        device, device_name = best, best_name
    precision = _with_forge_bf16(options, _choose_precision(options, device, cuda, hardware, reasons), cuda, reasons)
    offload, only_sdxl = _choose_offload(options, device, reasons)
    _add_memory_suggestions(options, cuda, reasons)
    if options.opt_channelslast:
        reasons.append("--opt-channelslast: UNet in channels_last memory format")
    if options.disable_nan_check:
        reasons.append("--disable-nan-check: NaN checks of UNet/VAE output are off")
    attention = _choose_attention(options, device, cuda, hardware, reasons)
    compile_on = _choose_compile(options, offload, only_sdxl, reasons)
    fused_qkv = _choose_fused_qkv(options, attention, precision, reasons)

    def aux(module: str) -> str:
        return "cpu" if module in use_cpu or "all" in use_cpu else best

    return RuntimePlan(
        device=device, device_name=device_name,
        unet_dtype=precision.unet, unet_compute_dtype=precision.unet_compute,
        text_encoder_dtype=precision.text_encoder, vae_dtype=precision.vae,
        upcast_sampling=precision.upcast_sampling, autocast=precision.autocast,
        attention=attention,
        offload=offload, offload_only_for_sdxl=only_sdxl,
        vae_slicing=True,  # A1111 decodes one image at a time; slicing only matters for batch > 1
        vae_tiling_threshold_pixels=_vae_tiling_threshold(device, cuda, offload),
        channels_last=bool(options.opt_channelslast), compile=compile_on, fused_qkv=fused_qkv,
        nan_check=not options.disable_nan_check,
        upcast_sdxl_vae=precision.upcast_sdxl_vae,
        load_weights_to_device=_load_weights_to_device(options, device, offload, reasons),
        interrogate_device=aux("interrogate"), upscaler_device=aux("esrgan"),
        gfpgan_device=aux("gfpgan"), codeformer_device=aux("codeformer"),
        reasons=tuple(reasons), device_memory_bytes=cuda.total_memory_bytes if cuda is not None else 0,
    )


def _best_device(options: LaunchOptions, hardware: HardwareInfo,
                 reasons: list[str]) -> tuple[str, str, CudaDevice | None]:
    """A1111's get_optimal_device: CUDA (honouring --device-id), then MPS, then CPU."""
    devices = hardware.cuda_devices
    if devices:
        index = _device_index(options.device_id, len(devices), reasons)
        return f"cuda:{index}", devices[index].label(), devices[index]
    if options.device_id is not None:
        reasons.append(f"--device-id {options.device_id} ignored: no CUDA device")
    if hardware.mps_available:
        return "mps", "Apple MPS", None
    reasons.append("no CUDA or MPS device: running on the CPU")
    return "cpu", "CPU", None


def _device_index(device_id: str | None, count: int, reasons: list[str]) -> int:
    if device_id is None:
        return 0
    try:
        index = int(device_id)
    except ValueError:
        reasons.append(f"--device-id {device_id!r} is not a number: using cuda:0")
        return 0
    if not 0 <= index < count:
        reasons.append(f"--device-id {index}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1}): using cuda:0")
        return 0
    reasons.append(f"--device-id {index}: using cuda:{index}")
    return index


def _is_gtx16(cuda: CudaDevice | None) -> bool:
    return cuda is not None and cuda.capability == (7, 5) and "GTX 16" in cuda.name


def _choose_precision(options: LaunchOptions, device: str, cuda: CudaDevice | None,
                      hardware: HardwareInfo, reasons: list[str]) -> _Precision:
    full, half = torch.float32, torch.float16
    if device == "cpu":
        return _cpu_precision(options, hardware, reasons)
    if options.no_half:
        reasons.append("--no-half: fp32 everywhere, no autocast")
        if options.upcast_sampling:
            reasons.append("--upcast-sampling has no effect with --no-half")
        return _Precision(full, full, full, full, False, False, False)
    if options.precision == "full":
        # A1111 keeps fp16 weights and casts each layer to fp32 at run time; diffusers' layerwise casting does that.
        reasons.append("--precision full: fp16 UNet weights computed in fp32, text encoder and VAE fp32, no autocast")
        return _Precision(half, full, full, full, False, False, False)
    if options.precision == "half":
        reasons.append("--precision half: fp16 everywhere without autocast (SDXL VAE not upcast: use an fp16-fix VAE)")
        return _Precision(half, half, half, half, False, False, False)
    if device == "mps":
        # A1111's macOS defaults are --upcast-sampling --no-half-vae: autocast is poor on MPS and its fp16 VAE
        # gives NaNs/black images.
        fallback = os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") == "1"
        reasons.append("mps: fp16 weights with upcast sampling and fp32 VAE (A1111's macOS defaults); ops MPS lacks "
                       + ("run on the CPU (PYTORCH_ENABLE_MPS_FALLBACK=1)" if fallback
                          else "fail: PYTORCH_ENABLE_MPS_FALLBACK is not 1"))
        return _Precision(half, half, half, full, True, False, False)
    if _is_gtx16(cuda):
        # A1111 turns autocast off on GTX 16xx (it gives NaNs/black images there) and casts by hand; the closest
        # diffusers mode is fp16 weights with fp32 sampling; the small VAE goes to fp32 to avoid a NaN decode.
        reasons.append("GTX 16xx: fp16 autocast gives NaNs on these cards; using upcast sampling and fp32 VAE "
                       "(use --no-half if images are black)")
        return _Precision(half, half, half, full, True, False, False)
    vae = full if options.no_half_vae else half
    if options.no_half_vae:
        reasons.append("--no-half-vae: VAE in fp32")
    if options.upcast_sampling:
        reasons.append("--upcast-sampling: fp16 weights, sampling math in fp32, no autocast")
        return _Precision(half, half, half, vae, True, False, vae == half)
    # bf16 would avoid fp16 overflow on Ampere+ (cuda.supports_bf16) but A1111 has no bf16 UNet mode: keep fp16.
    reasons.append(f"{device}: fp16 weights under autocast (A1111's default)")
    return _Precision(half, half, half, vae, False, True, vae == half)


def _with_forge_bf16(options: LaunchOptions, precision: _Precision, cuda: CudaDevice | None,
                     reasons: list[str]) -> _Precision:
    """Forge's --unet-in-bf16 / --vae-in-bf16: bf16 where the plan chose fp16, on a GPU that has bf16 (no fp16
    overflow; the SDXL VAE then needs no fp32 upcast). --no-half and --precision full keep their fp32."""
    if not (options.unet_in_bf16 or options.vae_in_bf16):
        return precision
    if cuda is None or not cuda.supports_bf16:
        reasons.append("--unet-in-bf16 / --vae-in-bf16 ignored: they need a CUDA GPU with bf16 (Ampere or newer)")
        return precision
    bf16, half = torch.bfloat16, torch.float16
    if options.unet_in_bf16 and precision.unet == half and precision.unet_compute == half:
        precision = replace(precision, unet=bf16, unet_compute=bf16)
        reasons.append("--unet-in-bf16: UNet weights and compute in bf16")
    if options.vae_in_bf16 and precision.vae == half:
        precision = replace(precision, vae=bf16, upcast_sdxl_vae=False)
        reasons.append("--vae-in-bf16: VAE in bf16 (no fp16 overflow: the SDXL VAE is not upcast to fp32)")
    return precision


def _cpu_precision(options: LaunchOptions, hardware: HardwareInfo, reasons: list[str]) -> _Precision:
    full = torch.float32
    note = "cpu: fp32 everywhere (fp16 is slow or unsupported on the CPU)"
    if hardware.cpu_bf16:
        note += "; this CPU supports bf16 but A1111 uses fp32 on the CPU"
    reasons.append(note)
    ignored = [flag for flag, on in (("--precision half", options.precision == "half"),
                                     ("--upcast-sampling", options.upcast_sampling)) if on]
    if ignored:
        reasons.append(f"{', '.join(ignored)} ignored on the CPU")
    return _Precision(full, full, full, full, False, False, False)


def _choose_attention(options: LaunchOptions, device: str, cuda: CudaDevice | None,
                      hardware: HardwareInfo, reasons: list[str]) -> str:
    """Flag priority: --disable-opt-split-attention, xformers, sdpa-no-mem, sdpa, split/sub-quad; default sdpa."""
    if options.disable_opt_split_attention:
        reasons.append("--disable-opt-split-attention: plain attention, no optimisation")
        return "none"
    if options.xformers or options.force_enable_xformers:
        problem = _xformers_problem(options, device, cuda, hardware)
        if problem is None:
            reasons.append("--xformers: xformers attention")
            return "xformers"
        reasons.append(f"xformers requested but {problem}: using torch SDPA")
    if options.opt_sdp_no_mem_attention:
        reasons.append("--opt-sdp-no-mem-attention: SDPA without the memory-efficient kernel")
        return "sdpa-no-mem"
    if options.opt_sdp_attention:
        return "sdpa"
    split_flags = (options.opt_split_attention, options.opt_split_attention_v1,
                   options.opt_split_attention_invokeai, options.opt_sub_quad_attention)
    if any(split_flags):
        reasons.append("split/sub-quadratic attention flag: diffusers attention slicing")
        return "sliced"
    return "sdpa"


def _xformers_problem(options: LaunchOptions, device: str, cuda: CudaDevice | None,
                      hardware: HardwareInfo) -> str | None:
    if cuda is None or not device.startswith("cuda"):
        return f"not on CUDA (device {device})"
    if not hardware.xformers_importable:
        return "not importable"
    if cuda.capability < (6, 0) and not options.force_enable_xformers:
        return f"compute capability {cuda.capability} < (6, 0) (--force-enable-xformers skips this check)"
    return None


def _choose_offload(options: LaunchOptions, device: str, reasons: list[str]) -> tuple[str, bool]:
    flags = [name for name, on in (("--lowvram", options.lowvram), ("--medvram", options.medvram),
                                   ("--medvram-sdxl", options.medvram_sdxl)) if on]
    if not flags:
        return "none", False
    if not device.startswith("cuda"):
        shared = " (MPS shares memory with the CPU)" if device == "mps" else ""
        reasons.append(f"{', '.join(flags)}: no effect on {device}{shared}")
        return "none", False
    if options.lowvram:
        # diffusers' block-level group offload ("group", CUDA streams prefetch the next block) is closer to A1111's
        # per-block swapping; sequential offload (per layer) is the default until measured faster on every card.
        if options.lowvram_offload == "group":
            reasons.append("--lowvram: block-level group offload with CUDA streams (--lowvram-offload group)")
            return "group", False
        reasons.append("--lowvram: sequential CPU offload (per layer; slow, lowest VRAM)")
        return "sequential", False
    if options.medvram:
        reasons.append("--medvram: model CPU offload (one component on the GPU at a time)")
        return "model", False
    reasons.append("--medvram-sdxl: model CPU offload for SDXL models only")
    return "model", True


def _add_memory_suggestions(options: LaunchOptions, cuda: CudaDevice | None, reasons: list[str]) -> None:
    if cuda is None or options.lowvram or options.medvram:
        return
    size = f"{cuda.total_memory_bytes / GIB:.0f} GB GPU"
    if cuda.total_memory_bytes < SMALL_GPU_BYTES:
        reasons.append(f"{size}: consider --medvram (or --lowvram for SDXL)")
    elif cuda.total_memory_bytes <= MID_GPU_BYTES and not options.medvram_sdxl:
        reasons.append(f"{size}: consider --medvram-sdxl for SDXL models")


def _choose_compile(options: LaunchOptions, offload: str, only_sdxl: bool, reasons: list[str]) -> bool:
    if not options.compile:
        return False
    if offload != "none" and not only_sdxl:
        reasons.append(f"--compile ignored: offload {offload} moves weights during the call (compile without "
                       "--medvram/--lowvram)")
        return False
    note = "--compile: torch.compile of the UNet and VAE decoder (dynamic=False: the first image of each size " \
           "compiles; eager if compiling fails)"
    if only_sdxl:
        note += "; not for SDXL models, which --medvram-sdxl offloads"
    reasons.append(note)
    return True


def _choose_fused_qkv(options: LaunchOptions, attention: str, precision: _Precision, reasons: list[str]) -> bool:
    if not options.opt_fused_qkv:
        return False
    if attention not in ("sdpa", "sdpa-no-mem"):
        reasons.append(f"--opt-fused-qkv ignored: the fused processor is SDPA and attention is {attention}")
        return False
    if precision.unet_compute != precision.unet:
        reasons.append("--opt-fused-qkv ignored: layerwise casting (--precision full) does not cover fused layers")
        return False
    reasons.append("--opt-fused-qkv: UNet q/k/v projections fused (undone while a LoRA is loaded)")
    return True


def _vae_tiling_threshold(device: str, cuda: CudaDevice | None, offload: str) -> int:
    if device == "cpu":
        return 0  # system RAM: A1111 never tiles
    if device == "mps" or offload != "none":
        return TILE_ABOVE_SMALL
    if cuda is not None and cuda.total_memory_bytes <= MID_GPU_BYTES:
        return TILE_ABOVE_SMALL
    return TILE_ABOVE_LARGE


def _load_weights_to_device(options: LaunchOptions, device: str, offload: str, reasons: list[str]) -> bool:
    if not options.lowram:
        return False
    if device == "cpu" or offload != "none":
        reasons.append(f"--lowram ignored ({'offload ' + offload if offload != 'none' else 'device cpu'})")
        return False
    reasons.append("--lowram: checkpoint weights load straight to the device")
    return True


# ----------------------------------------------------------------------------------------------------- applying


def apply_plan_to_pipeline(pipe: DiffusionPipeline, plan: RuntimePlan, *, is_sdxl: bool,
                           denoiser_dtypes: tuple[str, ...] = ("float16", "bfloat16", "float32")) -> None:
    """Apply the plan to a freshly loaded pipeline (call once per pipeline): dtypes, attention, VAE, placement.
    `is_sdxl`: an SDXL-size model (the --medvram-sdxl rules); `denoiser_dtypes`: what the family's denoiser
    may run in (the family record's dtypes: fp16 overflows in the flow transformers)."""
    _apply_dtypes(pipe, plan, is_sdxl, denoiser_dtypes)
    _apply_attention(pipe, plan)
    unet = getattr(pipe, "unet", None)
    if plan.channels_last and unet is not None:
        unet.to(memory_format=torch.channels_last)
    if plan.fused_qkv and unet is not None:
        fuse_qkv(unet)
    if plan.vae_slicing:
        pipe.vae.enable_slicing()
    else:
        pipe.vae.disable_slicing()
    placement = place_model(plan, {name: module_bytes([module]) for name, module in pipe.components.items()
                                   if isinstance(module, torch.nn.Module)}, is_sdxl=is_sdxl)
    if placement.reason:
        log.info("Placing the model: %s", placement.reason)
    _place(pipe, plan, placement.offload)
    for name in placement.cpu_components:
        getattr(pipe, name).to("cpu")
    if plan.compile and placement.offload == "none":
        compile_pipeline(pipe)


def set_vae_tiling_for_size(pipe: DiffusionPipeline, plan: RuntimePlan, width: int, height: int) -> bool:
    """Turn VAE tiling on or off for an image of this size; returns whether it is on."""
    tile = plan.should_tile_vae(width, height)
    if tile:
        pipe.vae.enable_tiling()
    else:
        pipe.vae.disable_tiling()
    return tile


def _allowed_dtype(dtype: torch.dtype, allowed: tuple[str, ...]) -> torch.dtype:
    """`dtype`, or the nearest the denoiser allows: bf16 in place of fp16 where bf16 is allowed, else fp32."""
    if str(dtype).removeprefix("torch.") in allowed:
        return dtype
    if dtype == torch.float16 and "bfloat16" in allowed:
        log.info("fp16 is not allowed for this model's denoiser (it overflows): using bf16")
        return torch.bfloat16
    return torch.float32


def _apply_dtypes(pipe: DiffusionPipeline, plan: RuntimePlan, is_sdxl: bool,
                  denoiser_dtypes: tuple[str, ...]) -> None:
    for name, module in pipe.components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        if name == "vae":
            force_upcast = bool(getattr(module.config, "force_upcast", False))
            module.to(dtype=plan.vae_dtype_for(is_sdxl, force_upcast))
        elif name.startswith("text_encoder"):
            module.to(dtype=plan.text_encoder_dtype)
        elif name == "unet" and plan.unet_compute_dtype != plan.unet_dtype:
            module.to(dtype=plan.unet_compute_dtype)
            module.enable_layerwise_casting(storage_dtype=plan.unet_dtype, compute_dtype=plan.unet_compute_dtype)
        elif name == "unet":
            module.to(dtype=plan.unet_dtype)
        elif name == "transformer":  # weights stored in fp8 / GGUF keep their storage (see models.weights)
            if not _has_quantized_storage(module):
                module.to(dtype=_allowed_dtype(plan.unet_compute_dtype, denoiser_dtypes))
        else:  # ControlNet, image encoder, ...: they compute alongside the UNet
            module.to(dtype=plan.unet_compute_dtype)


def _has_quantized_storage(module: torch.nn.Module) -> bool:
    return any(p.dtype in (torch.float8_e4m3fn, torch.float8_e5m2, torch.uint8, torch.int8)
               for p in module.parameters()) or getattr(module, "is_quantized", False)


def _apply_attention(pipe: DiffusionPipeline, plan: RuntimePlan) -> None:
    if plan.attention == "xformers":
        pipe.enable_xformers_memory_efficient_attention()
        return
    if plan.attention == "sliced":
        pipe.enable_attention_slicing()
        return
    for name, module in pipe.components.items():
        if name != "transformer":  # flow transformers keep their own processors (SDPA with rope / joint attention)
            _set_module_attention(module, plan)


def _set_module_attention(module: object, plan: RuntimePlan) -> None:
    if not isinstance(module, torch.nn.Module) or not hasattr(module, "set_attn_processor"):
        return
    if plan.attention == "xformers":
        module.enable_xformers_memory_efficient_attention()
        return
    if plan.attention == "sliced":
        if hasattr(module, "set_attention_slice"):
            module.set_attention_slice("auto")
        return
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    module.set_attn_processor(AttnProcessor() if plan.attention == "none" else AttnProcessor2_0())


def apply_plan_to_vae(pipe: DiffusionPipeline, plan: RuntimePlan, *, is_sdxl: bool, force_fp32: bool = False) -> None:
    """Give the VAE just put into a loaded pipeline (an external VAE, or the checkpoint's own restored) what
    apply_plan_to_pipeline gave the original: dtype, attention, slicing and placement. force_fp32: the model's
    VAE was upcast after a NaN decode (A1111 keeps it in fp32 for the session)."""
    vae = pipe.vae
    force_upcast = bool(getattr(vae.config, "force_upcast", False))
    vae.to(dtype=torch.float32 if force_fp32 else plan.vae_dtype_for(is_sdxl, force_upcast))
    _set_module_attention(vae, plan)
    if plan.vae_slicing:
        vae.enable_slicing()
    else:
        vae.disable_slicing()
    offload = plan.offload_for(is_sdxl)
    if plan.compile and offload == "none":
        install_compile(vae.decoder, "VAE decoder")
    if offload == "none" or not plan.device.startswith("cuda"):
        vae.to(plan.device)
    else:  # the offload hooks are per component: install them again, now with this VAE
        pipe.remove_all_hooks()
        _place(pipe, plan, offload)


def park_module(module: torch.nn.Module, plan: RuntimePlan) -> None:
    """Move a component that is kept but not in use (the checkpoint's own VAE while an external one decodes)
    off the accelerator; apply_plan_to_vae brings it back."""
    if plan.device != "cpu" and plan.offload == "none":
        module.to("cpu")


def upcast_vae(pipe: DiffusionPipeline) -> bool:
    """After a NaN decode: the VAE in fp32 (A1111's auto_vae_precision). False when it already is."""
    if pipe.vae.dtype == torch.float32:
        return False
    pipe.vae.to(dtype=torch.float32)
    return True


def _place(pipe: DiffusionPipeline, plan: RuntimePlan, offload: str) -> None:
    if offload == "none" or not plan.device.startswith("cuda"):
        pipe.to(plan.device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=plan.device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=plan.device)
    elif offload == "group":
        pipe.enable_group_offload(onload_device=torch.device(plan.device), offload_type="block_level",
                                  num_blocks_per_group=1, use_stream=True)
    else:
        raise ValueError(f"unknown offload mode {offload!r} (expected one of {', '.join(OFFLOAD_MODES)})")
