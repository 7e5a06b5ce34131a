"""Library log lines that say nothing the user needs, dropped at the logger that emits them (installed once at
start by the server). Each filter drops one known message only; anything else from these loggers still shows.

- transformers, at every start: "`CLIPImageProcessor` requires torchvision (not installed); falling back ...
  Install torchvision ..." (sdweb never installs torchvision; the fallback is what it uses).
- diffusers, four times per model load: "There are modules in UNet2DConditionModel that should be kept in
  float32: []" (an empty list: nothing is kept in float32, so nothing is inconsistent).
- uvicorn at shutdown: "Cancel N running task(s), timeout graceful shutdown exceeded" (open browser tabs'
  streams are closed on purpose so the server stops at once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


@dataclass(frozen=True)
class DropMessage(logging.Filter):
    """Drops records whose formatted message contains every one of `parts`."""

    parts: tuple[str, ...]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: let the logging machinery report it
            return True
        return not all(part in message for part in self.parts)


NOISE: tuple[tuple[str, DropMessage], ...] = (
    ("transformers.utils.import_utils", DropMessage(("requires torchvision (not installed)",))),
    ("diffusers.models.modeling_utils", DropMessage(("should be kept in float32: []",))),
    ("uvicorn.error", DropMessage(("timeout graceful shutdown exceeded",))),
)


def quiet_library_noise() -> None:
    """Install the filters (idempotent)."""
    for name, drop in NOISE:
        logger = logging.getLogger(name)
        if drop not in logger.filters:
            logger.addFilter(drop)
