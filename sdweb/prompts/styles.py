"""Prompt styles: A1111's styles.csv (columns name, prompt, negative_prompt), applying and extracting them.

Applying a style (a1111.md §6.9): a style text containing ``{prompt}`` wraps the prompt (every placeholder
is replaced); otherwise the style text is appended with ``", "`` (empty parts skipped). Styles apply in the
order given, to the prompt and the negative prompt alike. Extracting is the reverse, used when an infotext is
pasted: styles whose text is found (as a suffix, or around the prompt for ``{prompt}`` styles) are stripped.

Files are read as UTF-8 with or without BOM, like A1111; rows whose name starts with ``#`` are comments, and
the legacy ``text`` column is read as the prompt. Saving rewrites the style's file atomically, after copying
the old file to ``<file>.bak``. A file that cannot be read is logged and skipped, never rewritten by us.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sdweb.core.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

FIELDS = ("name", "prompt", "negative_prompt")
PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class PromptStyle:
    name: str
    prompt: str = ""
    negative_prompt: str = ""
    path: Path | None = None  # the file it is saved in; None: the default file


def merge_prompts(style_text: str, prompt: str) -> str:
    """One style applied to one prompt (A1111's merge rule)."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_text.strip()) if part)


def apply_style_texts(prompt: str, style_texts: Iterable[str]) -> str:
    for text in style_texts:
        prompt = merge_prompts(text, prompt)
    return prompt


def extract_style_text(style_text: str, prompt: str) -> tuple[bool, str]:
    """(found, prompt without the style): the reverse of ``merge_prompts`` for one style text.

    ``("masterpiece", "1girl, art by greg, masterpiece")`` -> ``(True, "1girl, art by greg")``;
    ``("masterpiece, {prompt}", "masterpiece, 1girl")`` -> ``(True, "1girl")``.
    """
    stripped = prompt.strip()
    style = style_text.strip()
    if PLACEHOLDER in style:
        left, _, right = style.partition(PLACEHOLDER)
        if stripped.startswith(left) and stripped.endswith(right):
            return True, stripped[len(left):len(stripped) - len(right)]
        return False, prompt
    if stripped.endswith(style):
        rest = stripped[:len(stripped) - len(style)]
        return True, rest[:-2] if rest.endswith(", ") else rest
    return False, prompt


def _extract_style(style: PromptStyle, prompt: str, negative: str) -> tuple[bool, str, str]:
    if not style.prompt and not style.negative_prompt:
        return False, prompt, negative
    found, new_prompt = extract_style_text(style.prompt, prompt)
    if not found:
        return False, prompt, negative
    found, new_negative = extract_style_text(style.negative_prompt, negative)
    if not found:
        return False, prompt, negative
    return True, new_prompt, new_negative


def extract_styles_from_prompt(styles: Sequence[PromptStyle], prompt: str,
                               negative: str) -> tuple[list[str], str, str]:
    """(style names in the order they were applied, prompt, negative prompt without them).

    Repeatedly strips the first style (in ``styles`` order) whose texts are found in both prompts, each style
    at most once, as A1111's ``extract_styles_from_prompt``.
    """
    remaining = list(styles)
    found: list[str] = []
    while True:
        for style in remaining:
            matched, new_prompt, new_negative = _extract_style(style, prompt, negative)
            if matched:
                prompt, negative = new_prompt, new_negative
                remaining.remove(style)
                found.append(style.name)
                break
        else:
            return list(reversed(found)), prompt, negative


def read_styles_csv(path: Path) -> list[PromptStyle]:
    """The styles of one file; raises OSError / csv.Error / UnicodeDecodeError when it cannot be read."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        styles = []
        for row in reader:
            name = row.get("name")
            if not name or name.startswith("#"):
                continue
            prompt = row["prompt"] if "prompt" in row else row.get("text")
            styles.append(PromptStyle(name, prompt or "", row.get("negative_prompt") or "", path))
        return styles


def styles_csv_text(styles: Iterable[PromptStyle]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for style in styles:
        writer.writerow({"name": style.name, "prompt": style.prompt, "negative_prompt": style.negative_prompt})
    return buffer.getvalue()


def _expand(patterns: Sequence[Path]) -> list[Path]:
    """A1111 accepts glob patterns in --styles-file; a plain name stays even when the file does not exist."""
    files: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        matches = sorted(Path(p) for p in glob.glob(text)) if glob.has_magic(text) else [Path(text)]
        files.extend(match for match in matches if match not in files)
    return files


class StyleDatabase:
    """The styles of the styles files; the first file is where new styles are saved. Thread-safe.

    Files are re-read when their modification time or size changes, so edits made outside the app show up.
    """

    def __init__(self, files: Sequence[Path]) -> None:
        self._patterns = tuple(Path(f) for f in files) or (Path("styles.csv"),)
        self._lock = threading.RLock()
        self._styles: dict[str, PromptStyle] = {}
        self._stamp: tuple = ()

    @property
    def default_path(self) -> Path:
        files = _expand(self._patterns[:1])
        return files[0] if files else self._patterns[0]

    def _file_stamp(self, files: Sequence[Path]) -> tuple:
        stamps = []
        for path in files:
            try:
                stat = path.stat()
                stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
            except OSError:
                stamps.append((str(path), None, None))
        return tuple(stamps)

    def reload(self, force: bool = False) -> None:
        with self._lock:
            files = _expand(self._patterns)
            stamp = self._file_stamp(files)
            if stamp == self._stamp and not force:
                return
            styles: dict[str, PromptStyle] = {}
            for path in files:
                if not path.is_file():
                    continue
                try:
                    for style in read_styles_csv(path):
                        styles[style.name] = style
                except (OSError, csv.Error, UnicodeDecodeError) as error:
                    log.error("Styles file %s could not be read (%s); its styles are not available.", path, error)
            self._styles, self._stamp = styles, stamp

    def all(self) -> list[PromptStyle]:
        self.reload()
        with self._lock:
            return list(self._styles.values())

    def names(self) -> list[str]:
        return [style.name for style in self.all()]

    def get(self, name: str) -> PromptStyle | None:
        self.reload()
        with self._lock:
            return self._styles.get(name)

    def apply(self, prompt: str, negative: str, names: Sequence[str]) -> tuple[str, str, list[str]]:
        """(styled prompt, styled negative, names not found). Unknown names change nothing, as in A1111."""
        found = [style for style in (self.get(name) for name in names) if style is not None]
        missing = [name for name in names if self.get(name) is None]
        return (apply_style_texts(prompt, [s.prompt for s in found]),
                apply_style_texts(negative, [s.negative_prompt for s in found]), missing)

    def extract(self, prompt: str, negative: str) -> tuple[list[str], str, str]:
        return extract_styles_from_prompt(self.all(), prompt, negative)

    def save_style(self, style: PromptStyle) -> PromptStyle:
        """Add or replace a style (by name) and rewrite its file; a new style goes to the default file."""
        with self._lock:
            self.reload()
            existing = self._styles.get(style.name)
            path = style.path or (existing.path if existing else None) or self.default_path
            saved = replace(style, path=path)
            self._styles[style.name] = saved
            self._write(path)
            return saved

    def delete_style(self, name: str) -> bool:
        with self._lock:
            self.reload()
            style = self._styles.pop(name, None)
            if style is None:
                return False
            self._write(style.path or self.default_path)
            return True

    def _write(self, path: Path) -> None:
        rows = [s for s in self._styles.values() if (s.path or self.default_path) == path]
        if path.is_file():
            shutil.copy2(path, path.with_name(path.name + ".bak"))
        atomic_write_bytes(path, styles_csv_text(rows).encode("utf-8-sig"))
        self._stamp = self._file_stamp(_expand(self._patterns))
