"""HTML tables of the Extensions tab: Installed (loaded and on-disk state, update status) and Available
(A1111's index, filtered). Pure functions of their inputs; every value is escaped."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sdweb.extensions.index import IndexEntry
from sdweb.extensions.installer import InstalledExtension

MAX_AVAILABLE_ROWS = 300
HIDDEN_TAGS = ("ads", "localization")  # A1111 hides these by default


def status_of(extension: Any, attention: str | None = None) -> str:
    if not extension.enabled:
        state = "disabled"
    elif getattr(extension, "incompatible", None):
        state = f"incompatible: {extension.incompatible}"
    elif extension.error:
        state = f"failed: {extension.error}"
    else:
        state = "loaded" if extension.loaded else "not loaded"
    install_error = getattr(extension, "install_error", None)
    if install_error:
        state = f"{state}; install.py failed: {install_error}"
    return f"{state}; needs attention: {attention}" if attention else state


def api_of(extension: Any) -> str:
    """Which extension API it was written for: "sdweb" or "A1111" (built-ins use sdweb's)."""
    return str(getattr(extension, "api", "sdweb"))


def _cell(text: object, css: str = "") -> str:
    return f"<td class='{css}'>{html.escape(str(text))}</td>" if css else f"<td>{html.escape(str(text))}</td>"


def _link(url: str | None) -> str:
    if not url:
        return "<td></td>"
    shown = html.escape(url)
    if url.lower().startswith(("https://", "http://")):
        return f"<td><a href='{shown}' target='_blank' rel='noopener noreferrer'>{shown}</a></td>"
    return f"<td>{shown}</td>"


def _date(unix: int | None) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%d") if unix else ""


def installed_rows(loaded: Sequence[Any], on_disk: Sequence[InstalledExtension],
                   updates: Mapping[str, str], attention: Mapping[str, str] | None = None) -> list[str]:
    attention = attention or {}
    by_name = {ext.name: ext for ext in on_disk}
    rows, seen = [], set()
    for extension in loaded:
        seen.add(extension.name)
        disk = by_name.get(extension.name)
        git = disk.git if disk is not None else None
        troubled = extension.error or getattr(extension, "incompatible", None) or getattr(
            extension, "install_error", None) or extension.name in attention
        css = "sdweb-ext-error" if troubled else ""
        rows.append(f"<tr class='{css}' data-extension='{html.escape(extension.name, quote=True)}'>"
                    f"{_cell(extension.name)}{_cell('built-in' if extension.builtin else 'user')}"
                    f"{_cell(api_of(extension))}"
                    f"{_cell(status_of(extension, attention.get(extension.name)))}"
                    f"{_link(git.remote if git else None)}{_cell(git.branch or '' if git else '')}"
                    f"{_cell(git.version if git else '')}{_cell(_date(git.commit_date) if git else '')}"
                    f"{_cell(updates.get(extension.name, ''))}{_cell(', '.join(extension.scripts))}</tr>")
    for disk in on_disk:  # installed (or copied in) since this start
        if disk.name in seen:
            continue
        git = disk.git
        note = attention.get(disk.name)
        status = f"installed: restart to load; needs attention: {note}" if note else "installed: restart to load"
        rows.append(f"<tr class='{'sdweb-ext-error' if note else 'sdweb-ext-new'}'>{_cell(disk.name)}{_cell('user')}"
                    f"{_cell('')}{_cell(status)}{_link(git.remote if git else None)}"
                    f"{_cell(git.branch or '' if git else '')}{_cell(git.version if git else '')}"
                    f"{_cell(_date(git.commit_date) if git else '')}{_cell(updates.get(disk.name, ''))}"
                    f"{_cell('')}</tr>")
    return rows


def installed_html(loaded: Sequence[Any], on_disk: Sequence[InstalledExtension],
                   updates: Mapping[str, str] | None = None, attention: Mapping[str, str] | None = None) -> str:
    rows = installed_rows(loaded, on_disk, updates or {}, attention)
    if not rows:
        return "<p>No extensions found. Install one from the other tabs, or put it in <code>extensions/</code>.</p>"
    head = "".join(f"<th>{name}</th>" for name in ("Extension", "Kind", "API", "Status", "URL", "Branch", "Version",
                                                    "Date", "Update", "Scripts"))
    return (f"<div class='sdweb-ext-scroll'><table class='sdweb-extensions sdweb-installed'><thead><tr>{head}"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def filter_entries(entries: Sequence[IndexEntry], search: str = "", hide_installed: bool = True,
                   hide_tags: Sequence[str] = HIDDEN_TAGS) -> list[IndexEntry]:
    """Entries matching every word of `search` (name, description, tags), without hidden tags."""
    words = [word for word in (search or "").lower().split() if word]
    hidden = set(hide_tags)
    kept = []
    for entry in entries:
        if hide_installed and entry.installed or hidden & set(entry.tags):
            continue
        text = " ".join((entry.name, entry.description, " ".join(entry.tags))).lower()
        if all(word in text for word in words):
            kept.append(entry)
    return kept


def available_html(entries: Sequence[IndexEntry], total: int) -> str:
    if not total:
        return "<p>Press <b>Load from:</b> to read the extension index (this is the only time it goes online).</p>"
    if not entries:
        return f"<p>None of the {total} extensions in the index match the filters.</p>"
    rows = []
    for entry in entries[:MAX_AVAILABLE_ROWS]:
        status = f"installed as {entry.installed_as}" if entry.installed else ""
        rows.append(f"<tr>{_cell(entry.name, 'sdweb-ext-name')}{_cell(entry.description)}"
                    f"{_cell(', '.join(entry.tags))}{_cell(entry.stars or '')}{_cell(entry.added or '')}"
                    f"{_link(entry.url)}{_cell(status)}</tr>")
    more = len(entries) - MAX_AVAILABLE_ROWS
    note = f"<p>{more} more: refine the search to see them.</p>" if more > 0 else ""
    head = "".join(f"<th>{name}</th>" for name in ("Extension", "Description", "Tags", "Stars", "Added", "URL",
                                                    "Installed"))
    return (f"<p>{len(entries)} of {total} extensions shown.</p><div class='sdweb-ext-scroll'>"
            f"<table class='sdweb-extensions'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            f"</table></div>{note}")
