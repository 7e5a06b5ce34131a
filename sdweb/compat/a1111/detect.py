"""Which API an extension folder was written for (cheap: reads its scripts' text, imports nothing)."""

from __future__ import annotations

import re
from pathlib import Path

SDWEB_API_IMPORT = re.compile(r"^\s*(from|import)\s+sdweb[.\s]", re.M)


def is_a1111_extension(folder: Path) -> bool:
    """An extension folder written for A1111: none of its scripts imports sdweb's extension API."""
    scripts = sorted((Path(folder) / "scripts").glob("*.py"))
    for path in scripts:
        try:
            if SDWEB_API_IMPORT.search(path.read_text(encoding="utf-8", errors="replace")):
                return False
        except OSError:
            continue
    return True
