"""Extensions that need the user's attention: one whose requirements were refused (they would have replaced a
package sdweb needs) or failed to install. Kept in the data folder's cache (`extensions-attention.json`, name
-> message) so the Extensions tab and GET /sdweb/v1/extensions show it after a restart too; cleared when a
later install of the same extension goes through, or when it is removed."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from sdweb.core.atomic import atomic_write_text

log = logging.getLogger(__name__)

FILE_NAME = "extensions-attention.json"
_LOCK = threading.Lock()


def attention_file(paths: Any) -> Path:
    return Path(paths.cache_dir) / FILE_NAME


def read_attention(file: Path) -> dict[str, str]:
    """Extension name -> why it needs attention ({} when the file is missing or unreadable)."""
    try:
        value = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _write(file: Path, entries: dict[str, str]) -> None:
    try:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(file, json.dumps(entries, indent=1, sort_keys=True))
    except OSError as error:  # the message is also in the log and the install output; never fail for this
        log.warning("Cannot record extension status in %s: %s", file, error)


def mark_attention(file: Path, name: str, message: str) -> None:
    log.warning("Extension %s needs attention: %s", name, message)
    with _LOCK:
        entries = read_attention(file)
        entries[name] = message
        _write(file, entries)


def clear_attention(file: Path, name: str) -> None:
    with _LOCK:
        entries = read_attention(file)
        if entries.pop(name, None) is not None:
            _write(file, entries)
