"""A1111's extension index (Extensions › Available): parse and validate it, mark what is installed.

Format (https://raw.githubusercontent.com/AUTOMATIC1111/stable-diffusion-webui-extensions/master/index.json):

    {"tags": {"<tag>": "<description>", ...},
     "extensions": [{"name", "url", "description", "tags": [...], "added": "YYYY-MM-DD",
                     "created_at": ISO-8601, "commit_time": ISO-8601, "stars": int}, ...]}

Malformed entries are skipped (and counted); the network is used only by `load_index` with an http(s) URL,
i.e. only when the user asks for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sdweb.core.errors import UserError
from sdweb.extensions.giturl import normalize_git_url, redact_url

log = logging.getLogger(__name__)

DEFAULT_INDEX_URL = (
    "https://raw.githubusercontent.com/AUTOMATIC1111/stable-diffusion-webui-extensions/master/index.json"
)
INDEX_URL_ENV = "WEBUI_EXTENSIONS_INDEX"
MAX_INDEX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class IndexEntry:
    name: str
    url: str
    description: str = ""
    tags: tuple[str, ...] = ()
    added: str | None = None
    created_at: str | None = None
    commit_time: str | None = None
    stars: int = 0
    installed_as: str | None = None  # the folder in extensions/ that has this URL as its remote

    @property
    def installed(self) -> bool:
        return self.installed_as is not None


@dataclass(frozen=True)
class ExtensionIndex:
    entries: tuple[IndexEntry, ...]
    tags: dict[str, str]
    skipped: int  # malformed entries left out


def _optional_str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _entry(raw: Any) -> IndexEntry | None:
    if not isinstance(raw, dict):
        return None
    name, url = raw.get("name"), raw.get("url")
    if not isinstance(name, str) or not name.strip() or not isinstance(url, str) or not url.strip():
        return None
    tags = raw.get("tags")
    stars = raw.get("stars")
    description = raw.get("description")
    return IndexEntry(
        name=name.strip(),
        url=url.strip(),
        description=description.strip() if isinstance(description, str) else "",
        tags=tuple(t.strip() for t in tags if isinstance(t, str) and t.strip()) if isinstance(tags, list) else (),
        added=_optional_str(raw.get("added")),
        created_at=_optional_str(raw.get("created_at")),
        commit_time=_optional_str(raw.get("commit_time")),
        stars=stars if isinstance(stars, int) and not isinstance(stars, bool) and stars > 0 else 0,
    )


def parse_index(data: Any, installed: Mapping[str, str | None] | None = None) -> ExtensionIndex:
    """Validate decoded index JSON. `installed` maps folder name -> remote URL (None for non-git folders)."""
    if not isinstance(data, dict) or not isinstance(data.get("extensions"), list):
        raise UserError("This is not an extension index: it needs an \"extensions\" list.",
                        code="invalid_extension_index",
                        hint=f"Use A1111's index format, e.g. {DEFAULT_INDEX_URL}")
    entries, skipped = [], 0
    for raw in data["extensions"]:
        entry = _entry(raw)
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    raw_tags = data.get("tags")
    tags = {str(k): str(v) for k, v in raw_tags.items()} if isinstance(raw_tags, dict) else {}
    if skipped:
        log.warning("extension index: skipped %d malformed entries", skipped)
    return ExtensionIndex(entries=tuple(mark_installed(entries, installed or {})), tags=tags, skipped=skipped)


def mark_installed(entries: Iterable[IndexEntry], installed: Mapping[str, str | None]) -> list[IndexEntry]:
    """Entries with `installed_as` set where an installed folder's remote matches (normalized URLs)."""
    by_url = {normalize_git_url(remote): folder for folder, remote in installed.items() if remote}
    return [replace(entry, installed_as=by_url.get(normalize_git_url(entry.url))) for entry in entries]


def _read_local(location: str) -> bytes:
    path = Path(unquote(urlsplit(location).path)) if location.lower().startswith("file://") else Path(location)
    path = path.expanduser()
    try:
        if path.stat().st_size > MAX_INDEX_BYTES:
            raise UserError(f"The extension index {path} is larger than {MAX_INDEX_BYTES // (1024 * 1024)} MiB.",
                            code="invalid_extension_index", hint="Check that this is the right file.")
        return path.read_bytes()
    except OSError as error:
        raise UserError(f"Cannot read the extension index {path}: {error.strerror or error}.",
                        code="extension_index_unreadable", hint="Check the path.") from error


def _read_url(url: str, timeout: float) -> bytes:
    import requests  # only when the user asks for a remote index

    shown = redact_url(url)
    hint = "Check the address and your connection, or load the index from a local file."
    try:
        with requests.get(url, timeout=timeout, stream=True) as response:
            if response.status_code >= 400:
                raise UserError(f"Loading the extension index from {shown} failed: HTTP {response.status_code}.",
                                code="extension_index_unreadable", hint=hint)
            chunks, size = [], 0
            for chunk in response.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_INDEX_BYTES:
                    raise UserError(f"The extension index at {shown} is larger than "
                                    f"{MAX_INDEX_BYTES // (1024 * 1024)} MiB.",
                                    code="invalid_extension_index", hint=hint)
                chunks.append(chunk)
            return b"".join(chunks)
    except requests.RequestException as error:
        raise UserError(f"Loading the extension index from {shown} failed: {type(error).__name__}.",
                        code="extension_index_unreadable", hint=hint) from error


def read_index(url_or_path: str, timeout: float = 30.0,
               installed: Mapping[str, str | None] | None = None) -> ExtensionIndex:
    """The index from an http(s) URL (network!), a file:// URL or a local path, with tags and skip count."""
    location = (url_or_path or "").strip()
    if not location:
        raise UserError("No extension index URL or file given.", code="invalid_extension_index",
                        hint=f"A1111's index is {DEFAULT_INDEX_URL}")
    scheme = urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        raw = _read_url(location, timeout)
    elif scheme in ("", "file") or len(scheme) == 1:  # len 1: a Windows drive letter
        raw = _read_local(location)
    else:
        raise UserError(f"Cannot load an extension index from {redact_url(location)!r}: use http(s) or a file.",
                        code="invalid_extension_index", hint=f"A1111's index is {DEFAULT_INDEX_URL}")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as error:
        raise UserError(f"The extension index from {redact_url(location)} is not valid JSON: {error}.",
                        code="invalid_extension_index", hint="Check that the address points to index.json.") from error
    return parse_index(data, installed)


def load_index(url_or_path: str, timeout: float = 30.0,
               installed: Mapping[str, str | None] | None = None) -> list[IndexEntry]:
    """The valid entries of the index (see read_index), each marked installed or not."""
    return list(read_index(url_or_path, timeout, installed).entries)
