"""Which API an extension folder was written for (cheap: reads its scripts' text, imports nothing)."""

from __future__ import annotations

import re
from pathlib import Path

SDWEB_API_IMPORT = re.compile(r"^\s*(from|import)\s+sdweb[.\s]", re.M)
SDWEB_SETUP = re.compile(r"^def\s+setup\s*\(", re.M)


def is_a1111_extension(folder: Path) -> bool:
    """An extension folder written for A1111: none of its scripts uses sdweb's extension API (an import of
    sdweb, or a module-level `setup(context)`; A1111 scripts may import their own package first)."""
    for path in sorted((Path(folder) / "scripts").glob("*.py")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if SDWEB_API_IMPORT.search(text) or SDWEB_SETUP.search(text):
            return False
    return True
