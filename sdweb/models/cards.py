"""What the Extra Networks panel shows: one card per checkpoint, LoRA or embedding, with A1111's preview image
and user metadata files beside the model file.

- Preview: ``<stem>.preview.png`` or ``<stem>.png`` (also .jpg, .jpeg, .webp, .gif), as A1111 looks them up.
- User metadata: ``<stem>.json`` beside the file, A1111's keys ``description``, ``activation text``,
  ``preferred weight``, ``negative text``, ``notes``, ``sd version``. Saving keeps keys we do not edit and
  writes atomically; a damaged file reads as empty and is never rewritten behind the user's back.
- Prompt text: ``<lora:NAME:WEIGHT>`` plus the activation text, the embedding's name; clicking a card whose text
  is already in the prompt removes it (A1111's toggle).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdweb.core.atomic import atomic_write_text
from sdweb.core.errors import UserError

log = logging.getLogger(__name__)

PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
KINDS = ("checkpoints", "textual_inversion", "lora", "hypernetworks")
KIND_LABELS = {"checkpoints": "Checkpoints", "textual_inversion": "Textual Inversion", "lora": "Lora",
               "hypernetworks": "Hypernetworks"}
SORT_KEYS = ("Default", "Name", "Date Created", "Date Modified")
EDITED_KEYS = ("description", "activation text", "preferred weight", "negative text", "notes")
MAX_METADATA_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Card:
    kind: str
    name: str  # what the prompt uses: file stem, or the LoRA's alias
    path: Path
    title: str = ""  # a checkpoint's title (what selecting it sets)
    preview: Path | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created: float = 0.0
    modified: float = 0.0

    @property
    def key(self) -> str:
        return f"{KIND_LABELS[self.kind]}/{self.name}"

    def search_text(self) -> str:
        parts = [self.name, self.path.name, str(self.metadata.get("description") or ""),
                 str(self.metadata.get("activation text") or "")]
        return " ".join(parts).lower()


def find_preview(path: Path) -> Path | None:
    base = path.parent / (path.name if path.is_dir() else path.stem)
    for stem in (f"{base}.preview", str(base)):
        for suffix in PREVIEW_SUFFIXES:
            candidate = Path(stem + suffix)
            if candidate.is_file() and candidate != path:
                return candidate
    return None


def metadata_path(path: Path) -> Path:
    return path.parent / f"{path.name if path.is_dir() else path.stem}.json"


def read_user_metadata(path: Path) -> dict[str, Any]:
    """The ``<stem>.json`` beside a model file; {} when there is none or it cannot be read (logged)."""
    meta = metadata_path(path)
    if not meta.is_file():
        return {}
    try:
        if meta.stat().st_size > MAX_METADATA_BYTES:
            raise ValueError("larger than 1 MB")
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        log.warning("User metadata %s cannot be read (%s); it is ignored.", meta, error)
        return {}
    return data if isinstance(data, dict) else {}


def preferred_weight(value: object) -> float:
    try:
        weight = float(str(value))
    except (TypeError, ValueError):
        return 0.0
    return weight if weight == weight and abs(weight) < 1e6 else 0.0


def save_user_metadata(path: Path, edits: Mapping[str, Any]) -> Path:
    """Write the edited keys into ``<stem>.json`` (other keys kept); UserError when the old file is damaged
    (so it is not overwritten) or cannot be written."""
    meta = metadata_path(path)
    current: dict[str, Any] = {}
    if meta.is_file():
        try:
            loaded = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as error:
            raise UserError(f"{meta.name} cannot be read ({error}); it was left as it is.",
                            code="bad_user_metadata", hint="Fix or delete that file, then save again.") from None
        current = loaded if isinstance(loaded, dict) else {}
    for key in EDITED_KEYS:
        if key in edits:
            current[key] = edits[key]
    current["preferred weight"] = preferred_weight(current.get("preferred weight", 0))
    try:
        return atomic_write_text(meta, json.dumps(current, indent=4, ensure_ascii=False))
    except OSError as error:
        raise UserError(f"Could not write {meta}: {error.strerror or error}.", code="write_failed") from None


def card_for(kind: str, name: str, path: Path, title: str = "") -> Card:
    try:
        stat = path.stat()
        created, modified = stat.st_ctime, stat.st_mtime
    except OSError:
        created = modified = 0.0
    return Card(kind=kind, name=name, path=path, title=title, preview=find_preview(path),
                metadata=read_user_metadata(path), created=created, modified=modified)


def filter_and_sort(cards: Sequence[Card], search: str, sort: str, descending: bool) -> list[Card]:
    words = (search or "").lower().split()
    shown = [card for card in cards if all(word in card.search_text() for word in words)]
    keys = {"Name": lambda card: card.name.lower(), "Date Created": lambda card: card.created,
            "Date Modified": lambda card: card.modified}
    if sort in keys:
        shown.sort(key=keys[sort])
    return list(reversed(shown)) if descending else shown


def _number(value: float) -> str:
    return f"{value:g}"


def prompt_text(card: Card, default_multiplier: float) -> tuple[str, str]:
    """(text for the prompt, text for the negative prompt) a click on the card adds."""
    if card.kind == "lora":
        weight = preferred_weight(card.metadata.get("preferred weight")) or default_multiplier
        text = f"<lora:{card.name}:{_number(weight)}>"
        activation = str(card.metadata.get("activation text") or "").strip()
        return (f"{text} {activation}" if activation else text), str(card.metadata.get("negative text") or "")
    if card.kind == "textual_inversion":
        return card.name, ""
    return "", ""


def _tag_pattern(card: Card) -> re.Pattern[str]:
    if card.kind == "lora":
        return re.compile(rf"<(?:lora|lyco):{re.escape(card.name)}(?::[^>]*)?>")
    return re.compile(rf"(?<![\w-]){re.escape(card.name)}(?![\w-])")


def _tidy(text: str) -> str:
    return re.sub(r"\s+,", ",", re.sub(r"\s{2,}", " ", text)).strip(" ,")


def toggle_in_prompt(prompt: str, card: Card, addition: str) -> str:
    """The prompt with the card's text appended (space-separated, A1111's default separator), or with the card's
    tag and its activation text removed when the tag is already there."""
    prompt = prompt or ""
    pattern = _tag_pattern(card)
    if pattern.search(prompt):
        removed = pattern.sub("", prompt, count=1)
        activation = str(card.metadata.get("activation text") or "").strip()
        if activation and activation in removed:
            removed = removed.replace(activation, "", 1)
        return _tidy(removed)
    if not addition:
        return prompt
    return f"{prompt.rstrip()} {addition}" if prompt.strip() else addition


def toggle_negative(negative: str, addition: str) -> str:
    if not addition:
        return negative or ""
    if addition in (negative or ""):
        return _tidy(negative.replace(addition, "", 1))
    return f"{negative.rstrip()} {addition}" if (negative or "").strip() else addition


def unique_names(cards: Iterable[Card]) -> list[str]:
    seen: list[str] = []
    for card in cards:
        if card.key not in seen:
            seen.append(card.key)
    return seen


def cards_of(registry: Any, kind: str, lora_by_alias: bool = True) -> list[Card]:
    """The cards of one tab from the registry's current lists (refresh the registry to rescan the folders)."""
    if kind == "checkpoints":
        return [card_for(kind, entry.name_for_extra, entry.path, entry.title) for entry in registry.checkpoints]
    if kind == "lora":
        aliases = [item.alias for item in registry.loras]
        return [card_for(kind, item.alias if lora_by_alias and item.alias and aliases.count(item.alias) == 1
                         else item.name, item.path) for item in registry.loras]
    if kind == "textual_inversion":
        return [card_for(kind, item.name, item.path) for item in registry.embeddings]
    return []  # hypernetworks are not supported: the tab stays empty
