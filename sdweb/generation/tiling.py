"""Seamless tiling: circular padding in the UNet's and VAE's convolutions for one job, then restored."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


@contextlib.contextmanager
def seamless_tiling(pipe: Any, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    changed: list[tuple[torch.nn.Conv2d, str]] = []
    for component in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)):
        if component is None:
            continue
        for module in component.modules():
            if isinstance(module, torch.nn.Conv2d) and module.padding != (0, 0):
                changed.append((module, module.padding_mode))
                module.padding_mode = "circular"
    try:
        yield
    finally:
        for module, mode in changed:
            module.padding_mode = mode
