"""Where a component runs: its weights' device, or under offload (model, sequential, group) the device its
hooks bring it to. Used wherever a tensor is made for a component (noise, token ids, latents to decode)."""

from __future__ import annotations

from typing import Any

import torch


def execution_device(pipe: Any, module: Any = None) -> torch.device:
    """Where a component (default: the pipeline's denoising network) runs: where its weights are, unless they
    wait on the CPU or the meta device for offload hooks to bring them (model, sequential or group offload):
    then the hooks' execution device. Checked from the first parameter and the hooks near it, because
    diffusers' ``device`` and ``_execution_device`` walk every module (~4 to 20 ms a call). `pipe` may be None
    for a component used on its own (a text encoder)."""
    if module is None:
        module = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if module is None:
        return torch.device(getattr(pipe, "_execution_device", None) or pipe.device)
    tensor = first_tensor(module)
    if tensor.device.type not in ("cpu", "meta"):
        return tensor.device
    if _has_hook(module, "_diffusers_hook"):  # group offload: diffusers' device reads the onload device
        return torch.device(getattr(module, "device", None) or tensor.device)
    hooks = _accelerate_hooks(module)
    if not hooks:
        return tensor.device
    device = next((hook.execution_device for hook in hooks if getattr(hook, "execution_device", None) is not None),
                  None)
    if device is None and pipe is not None:
        device = getattr(pipe, "_execution_device", None) or pipe.device
    return torch.device(device) if device is not None else tensor.device


def _has_hook(module: Any, attribute: str) -> bool:
    """Hooks sit on the module (model offload) or on its submodules (sequential / group offload)."""
    return hasattr(module, attribute) or any(hasattr(child, attribute) for child in module.children())


def _accelerate_hooks(module: Any) -> list[Any]:
    """accelerate's hooks near a module under offload: on the module itself (model offload), on a child, or on
    the leaf that owns the first parameter (sequential offload hooks every leaf with weights, and the module
    itself with a hook that has no execution device)."""
    candidates = [module, *module.children()]
    for name, _ in module.named_parameters():
        owner = name.rpartition(".")[0]
        candidates.append(module.get_submodule(owner) if owner else module)
        break
    found = []
    for candidate in candidates:
        hook = getattr(candidate, "_hf_hook", None)
        if hook is not None:
            found.extend(getattr(hook, "hooks", None) or [hook])  # accelerate's SequentialHook chains several
    return found


def first_tensor(module: Any) -> torch.Tensor:
    """The module's first parameter (or buffer): its device and dtype are the module's."""
    for tensor in module.parameters():
        return tensor
    for tensor in module.buffers():
        return tensor
    raise ValueError(f"{type(module).__name__} has no parameters or buffers")
