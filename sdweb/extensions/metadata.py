"""An extension's `metadata.ini` (A1111 format) and the enable/disable rules. Pure, apart from read_metadata.

    [Extension]
    Name = canonical-name          ; defaults to the folder name
    Requires = other-ext, another  ; "," or whitespace separated

    [scripts/main.py]
    Requires = other-ext
    Before = other-ext/scripts/x.py
    After = ...

    [callbacks/<ext>/<script>/<callback>]
    Before = ...
    After = ...

Canonical names and requirement lists are lower-cased, as A1111 does.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

METADATA_FILE = "metadata.ini"
MAX_METADATA_BYTES = 256 * 1024
DISABLE_ALL_CHOICES = ("none", "extra", "all")


@dataclass(frozen=True)
class ExtensionMetadata:
    canonical_name: str
    requires: tuple[str, ...] = ()
    sections: dict[str, dict[str, str]] = field(default_factory=dict)  # every section, keys lower-cased
    error: str | None = None  # why metadata.ini could not be read; the defaults are used then

    def script_order(self, script: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """(Requires, Before, After) for `scripts/<file>.py` (`script` is that relative path)."""
        section = self.sections.get(script.replace("\\", "/"), {})
        return (split_list(section.get("requires", "")), split_list(section.get("before", "")),
                split_list(section.get("after", "")))

    def callback_order(self, extension: str, script: str, callback: str) -> tuple[tuple[str, ...], ...]:
        """(Before, After) for `[callbacks/<extension>/<script>/<callback>]`."""
        section = self.sections.get(f"callbacks/{extension}/{script}/{callback}", {})
        return split_list(section.get("before", "")), split_list(section.get("after", ""))


def split_list(text: str) -> tuple[str, ...]:
    """A1111's list syntax: items separated by commas and/or whitespace, lower-cased."""
    return tuple(item for item in re.split(r"[,\s]+", (text or "").strip().lower()) if item)


def parse_metadata(text: str, folder_name: str) -> ExtensionMetadata:
    """Parse metadata.ini text. Malformed text gives the defaults plus `error`, never an exception."""
    default_name = folder_name.strip().lower()
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text or "", source=METADATA_FILE)
    except configparser.Error as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        return ExtensionMetadata(canonical_name=default_name, error=f"{METADATA_FILE}: {first_line}")
    sections = {name: {key.lower(): value for key, value in parser.items(name)} for name in parser.sections()}
    extension = sections.get("Extension", {})
    name = (extension.get("name") or "").strip().lower() or default_name
    return ExtensionMetadata(canonical_name=name, requires=split_list(extension.get("requires", "")),
                             sections=sections)


def read_metadata(folder: Path) -> ExtensionMetadata:
    """The folder's metadata.ini, or the defaults when there is none (unreadable: defaults + error)."""
    path = Path(folder) / METADATA_FILE
    if not path.is_file():
        return ExtensionMetadata(canonical_name=Path(folder).name.strip().lower())
    try:
        if path.stat().st_size > MAX_METADATA_BYTES:
            raise OSError(f"larger than {MAX_METADATA_BYTES} bytes")
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return ExtensionMetadata(canonical_name=Path(folder).name.strip().lower(),
                                 error=f"{METADATA_FILE}: {error}")
    return parse_metadata(text, Path(folder).name)


# -- enable / disable (config.json `disabled_extensions`, `disable_all_extensions`) ---------------------------
def is_enabled(folder_name: str, *, is_builtin: bool, disabled: Iterable[str], disable_all: str = "none") -> bool:
    """A1111's rule: "all" disables everything, "extra" every non-built-in; else the disabled list decides."""
    if disable_all == "all" or (disable_all == "extra" and not is_builtin):
        return False
    return folder_name not in set(disabled)


def set_enabled(disabled: Iterable[str], folder_name: str, enabled: bool) -> list[str]:
    """A new `disabled_extensions` list with `folder_name` removed (enabled) or added (disabled); sorted."""
    names = set(disabled)
    if enabled:
        names.discard(folder_name)
    else:
        names.add(folder_name)
    return sorted(names)


def missing_requirements(canonical_names: dict[str, ExtensionMetadata], enabled: Iterable[str]) -> dict[str, list[str]]:
    """For each enabled extension (by canonical name), the required extensions that are not enabled."""
    enabled_set = set(enabled)
    missing: dict[str, list[str]] = {}
    for name in sorted(enabled_set):
        meta = canonical_names.get(name)
        if meta is None:
            continue
        absent = [required for required in meta.requires if required not in enabled_set]
        if absent:
            missing[name] = absent
    return missing
