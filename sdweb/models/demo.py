"""The built-in demo checkpoint: a tiny random-weight SD1 in the real file format, so a fresh install runs."""

from __future__ import annotations

from pathlib import Path

DEMO_TITLE = "demo (tiny, random weights)"


def ensure_demo_checkpoint(cache_dir: Path) -> Path:
    """Write the demo checkpoint once into cache_dir/demo and return its path."""
    from sdweb.testing.tiny import ensure_demo_checkpoint as write_demo

    return write_demo(Path(cache_dir) / "demo")
