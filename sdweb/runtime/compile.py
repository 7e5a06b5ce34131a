"""Optional speed-ups the runtime plan applies after load: torch.compile (--compile) and fused QKV projections
(--opt-fused-qkv). runtime.policy decides whether they are on; this module applies and undoes them.

torch.compile: the UNet's and the VAE decoder's ``forward`` are replaced *on the instance* by a
``CompiledForward`` (``dynamic=False``: one graph per input shape). The first call for each (batch, height,
width) is timed and logged ("compiled UNet for 2x8x8 in 12.3 s"). Any failure while compiling or running the
compiled graph (no C++ compiler, an unsupported op) logs one warning, puts the eager ``forward`` back and
redoes the call eagerly, so generation never breaks. Deleting the instance attribute restores the class's own
forward, so "undo" is exact. peft (LoRA) replaces submodules of the UNet; dynamo's guards see the change and
recompile, which ``structure_changed`` makes visible: the next call of each shape is timed again and logged as
a warning, as is every compile after a module's first (a new size). LoRAs in a compiled UNet go through one
fixed slot (models.lora_slot), so only the first LoRA, or one needing more layers or rank than the slot has,
changes the structure; switching LoRAs and their weights does not recompile. Compiled artefacts go to the data folder's
``cache/torch-compile`` (``use_compile_cache``), so the next start reuses them; dynamo's recompile limit raises
instead of silently running eagerly, which ``_give_up`` turns into one warning.

Fused QKV: diffusers' ``unet.fuse_qkv_projections()`` concatenates to_q/to_k/to_v into one Linear and installs
FusedAttnProcessor2_0. peft LoRA layers wrap to_q/to_k/to_v, which the fused processor would bypass (the LoRA
would be silently ignored), so ``unfuse_qkv`` is called before a LoRA is loaded.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

COMPILE_TARGETS = ("unet", "vae_decoder")
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def use_compile_cache(folder: Path) -> Path:
    """Keep inductor's compiled kernels and FX graphs in `folder` across runs (unless the user chose a folder
    with TORCHINDUCTOR_CACHE_DIR), and make dynamo's recompile limit an error we log, not a silent eager run."""
    chosen = Path(os.environ.setdefault(INDUCTOR_CACHE_ENV, str(folder)))
    import torch._dynamo.config

    torch._dynamo.config.fail_on_recompile_limit_hit = True
    return chosen


class CompiledForward:
    """A module's forward run through torch.compile, timing the first call of each input shape."""

    def __init__(self, module: torch.nn.Module, label: str, compiler: Callable[..., Any] | None = None,
                 group: list[CompiledForward] | None = None) -> None:
        self.module = module
        self.label = label
        self.previous = module.__dict__.get("forward")  # a hook's forward already on the instance, if any
        self.eager = module.forward  # what eager runs (bound)
        self.compiled = (compiler or torch.compile)(self.eager, dynamic=False)
        self.seen: set[tuple[int, ...]] = set()
        self.recompile_reason: str | None = None  # why shapes compiled before compile again
        self.compile_seconds: dict[tuple[int, ...], float] = {}
        self.failed: str | None = None
        self.group = group if group is not None else []  # the modules of one pipeline: they give up together
        self.group.append(self)
        self._lock = threading.Lock()

    def __call__(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.failed is not None:
            return self.eager(sample, *args, **kwargs)
        key = _shape_key(sample)
        first = key not in self.seen
        graphs_before = graphs_compiled()
        started = time.perf_counter()
        try:
            out = self.compiled(sample, *args, **kwargs)
        except (MemoryError, torch.OutOfMemoryError):
            raise
        except Exception as error:  # inductor/dynamo raise many types: any of them means "run eagerly"
            self._give_up(error)
            return self.eager(sample, *args, **kwargs)
        if first:
            seconds = time.perf_counter() - started
            with self._lock:
                earlier = bool(self.compile_seconds)
                reason = (self.recompile_reason or "changed") if key in self.compile_seconds else "a new size"
                self.seen.add(key)
                self.compile_seconds[key] = seconds
            shape = "x".join(map(str, key))
            if not earlier:
                log.info("compiled %s for %s in %.1f s", self.label, shape, seconds)
            else:
                log.warning("recompiled %s for %s in %.1f s (%s); with --compile every new size compiles "
                            "again", self.label, shape, seconds, reason)
        elif graphs_compiled() != graphs_before:  # dynamo saw a guard change we were not told about
            log.warning("recompiled %s for %s in %.1f s (a guard changed, e.g. LoRAs switched on or off: each "
                        "state compiles once)", self.label, "x".join(map(str, key)), time.perf_counter() - started)
        return out

    def structure_changed(self, reason: str = "the LoRA set changed") -> None:
        """Submodules were replaced (LoRA injected or removed): dynamo recompiles; time the next calls again."""
        with self._lock:
            self.seen.clear()
            self.recompile_reason = reason

    def _give_up(self, error: Exception) -> None:
        """One warning line; this module and the others compiled with it run eagerly from now on (a missing
        compiler or a broken inductor would fail them all the same way)."""
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        reason = f"{type(error).__name__}: {first_line}"
        labels = " and ".join(member.label for member in self.group if member.failed is None)
        for member in self.group:
            if member.failed is None:
                member.failed = reason
                uninstall_compile(member.module)
        log.warning("torch.compile failed in the %s (%s); running the %s eagerly", self.label, reason, labels)


def graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process (any module; calls of one pipeline do not overlap)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _shape_key(sample: object) -> tuple[int, ...]:
    if isinstance(sample, torch.Tensor) and sample.dim() == 4:
        return int(sample.shape[0]), int(sample.shape[2]), int(sample.shape[3])
    return tuple(int(size) for size in getattr(sample, "shape", ()))


def compiled_forward(module: torch.nn.Module | None) -> CompiledForward | None:
    if module is None:
        return None
    forward = module.__dict__.get("forward")
    return forward if isinstance(forward, CompiledForward) else None


def install_compile(module: torch.nn.Module, label: str, compiler: Callable[..., Any] | None = None,
                    group: list[CompiledForward] | None = None) -> CompiledForward | None:
    """Compile this module's forward (idempotent). A failure to even set it up is one warning, no compile."""
    current = compiled_forward(module)
    if current is not None:
        return current
    try:
        wrapper = CompiledForward(module, label, compiler, group)
    except Exception as error:  # e.g. torch.compile unavailable on this platform/Python
        log.warning("torch.compile is not available for the %s (%s: %s); running it eagerly",
                    label, type(error).__name__, error)
        return None
    module.forward = wrapper  # instance attribute: nn.Module.__call__ runs it; deleting it restores eager
    return wrapper


def uninstall_compile(module: torch.nn.Module | None) -> bool:
    if module is None or compiled_forward(module) is None:
        return False
    previous = compiled_forward(module).previous
    if previous is None:
        del module.__dict__["forward"]
    else:
        module.forward = previous
    return True


def compile_pipeline(pipe: Any, compiler: Callable[..., Any] | None = None) -> list[str]:
    """Compile the UNet and the VAE decoder of a pipeline; returns what was compiled."""
    done: list[str] = []
    group: list[CompiledForward] = []
    unet = getattr(pipe, "unet", None)
    if isinstance(unet, torch.nn.Module) and install_compile(unet, "UNet", compiler, group) is not None:
        done.append("unet")
    decoder = getattr(getattr(pipe, "vae", None), "decoder", None)
    if isinstance(decoder, torch.nn.Module) and install_compile(decoder, "VAE decoder", compiler, group) is not None:
        done.append("vae_decoder")
    return done


def note_structure_change(pipe: Any, reason: str = "the LoRA set changed") -> None:
    """Call after LoRA layers are injected into or removed from the UNet: its next call of each shape is
    timed (and logged) as the recompile it is."""
    wrapper = compiled_forward(getattr(pipe, "unet", None))
    if wrapper is not None:
        wrapper.structure_changed(reason)


# ----------------------------------------------------------------------------------------------------- fused QKV


def is_qkv_fused(unet: Any) -> bool:
    return bool(getattr(unet, "_sdweb_qkv_fused", False))


def fuse_qkv(unet: Any) -> bool:
    """Fuse the UNet's q/k/v (self-attention) and k/v (cross-attention) projections. False when not possible."""
    if unet is None or is_qkv_fused(unet) or not hasattr(unet, "fuse_qkv_projections"):
        return False
    try:
        unet.fuse_qkv_projections()
    except ValueError as error:  # "not supported for models having added KV projections"
        log.warning("fused QKV projections not applied: %s", error)
        return False
    unet._sdweb_qkv_fused = True
    return True


def unfuse_qkv(unet: Any) -> bool:
    """Put the separate projections (and the attention processors chosen before fusing) back; drop the fused
    copies. True when something was undone."""
    if not is_qkv_fused(unet):
        return False
    unet.unfuse_qkv_projections()
    from diffusers.models.attention_processor import Attention

    for module in unet.modules():
        if isinstance(module, Attention):
            for name in ("to_qkv", "to_kv"):
                if name in module._modules:
                    del module._modules[name]
            module.fused_projections = False
    unet._sdweb_qkv_fused = False
    return True
