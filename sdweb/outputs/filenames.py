"""Output file names as A1111 makes them: pattern tags, the running counter, sample/grid/extras paths.

``apply_pattern`` is pure. ``next_counter`` and the ``build_*_path`` functions only list the output
folder (they never create or write anything).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sdweb.core.errors import UserError
from sdweb.samplers.table import SAMPLERS

__all__ = [
    "FilenameContext",
    "Taken",
    "apply_pattern",
    "build_extras_path",
    "build_grid_path",
    "build_image_path",
    "effective_extension",
    "next_counter",
    "safe_parts",
    "sanitize_filename_part",
]

INVALID_FILENAME_CHARS = '#<>:"/\\|?*\n\r\t'
DEFAULT_TIME_FORMAT = "%Y%m%d%H%M%S"
MAX_COUNTER_TRIES = 500

_PATTERN_RE = re.compile(r"(.*?)(?:\[([^\[\]]+)\]|$)")
_PATTERN_ARG_RE = re.compile(r"(.*)<([^>]*)>$")
_NON_LETTERS_RE = re.compile(r"[\s" + re.escape(string.punctuation) + "]+")
_SAMPLER_DEFAULT_SCHEDULER = {info.name: info.default_schedule for info in SAMPLERS}


@dataclass(frozen=True)
class FilenameContext:
    """What the pattern tags can refer to, for one image. None means "not known" (the tag stays literal).

    ``prompt`` is this image's final prompt (styles applied); ``main_prompt``/``negative_prompt`` are the
    request's own texts, which A1111 uses for ``[full_prompt_hash]``/``[negative_prompt_hash]``.
    ``batch_number`` and ``generation_number`` count from 1. ``vae_filename`` is the loaded external VAE
    file (None: baked-in VAE, shown as "NoneType" like A1111). ``image`` only needs ``tobytes()``.
    """

    seed: int | None = None
    all_seeds: tuple[int, ...] = ()
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    sampler: str | None = None
    scheduler: str | None = "Automatic"
    model_hash: str | None = None
    model_name: str | None = None
    prompt: str | None = None
    main_prompt: str | None = None
    negative_prompt: str = ""
    styles: tuple[str, ...] = ()
    style_prompts: tuple[str, ...] = ()
    job_timestamp: datetime | None = None
    now: datetime | None = None
    batch_number: int = 1
    batch_size: int = 1
    generation_number: int = 1
    n_iter: int = 1
    clip_skip: int | None = 1
    denoising: float | None = None
    user: str | None = None
    vae_filename: str | None = None
    image: object | None = None
    basename: str = ""
    zip: bool = False


class _Skip:
    """A tag that is not applicable: it vanishes together with the text before it."""


_SKIP = _Skip()


def sanitize_filename_part(text: str | None, replace_spaces: bool = True, *, max_length: int = 128,
                           unix_sanitization: bool = False) -> str | None:
    if text is None:
        return None
    if replace_spaces:
        text = text.replace(" ", "_")
    invalid = "/" if unix_sanitization else INVALID_FILENAME_CHARS
    text = text.translate({ord(char): "_" for char in invalid})
    return text.lstrip(" ")[:max_length].rstrip(" .")


class _Tags:
    """One method per tag; each returns the text, ``_SKIP``, or None (the tag is kept literally)."""

    def __init__(self, ctx: FilenameContext, max_prompt_words: int, max_length: int, unix: bool) -> None:
        self.ctx = ctx
        self.max_prompt_words = max_prompt_words
        self.max_length = max_length
        self.unix = unix

    def clean(self, text: str | None, replace_spaces: bool = True) -> str | None:
        return sanitize_filename_part(text, replace_spaces, max_length=self.max_length,
                                      unix_sanitization=self.unix)

    def now(self) -> datetime:
        return self.ctx.now or self.ctx.job_timestamp or datetime.now()

    def seed(self) -> object:
        return self.ctx.seed if self.ctx.seed is not None else ""

    def seed_first(self) -> object:
        return self.ctx.seed if self.ctx.batch_size == 1 else self.ctx.all_seeds[0]

    def seed_last(self) -> object:
        return _SKIP if self.ctx.batch_size == 1 else self.ctx.all_seeds[-1]

    def styles(self) -> str | None:
        return self.clean(", ".join(style for style in self.ctx.styles if style != "None") or "None", False)

    def sampler_scheduler(self) -> str | None:
        scheduler = self.scheduler_label()
        return None if scheduler is None else self.clean(f"{self.ctx.sampler} {scheduler}", False)

    def scheduler(self) -> str | None:
        return self.clean(self.scheduler_label(), False)

    def scheduler_label(self) -> str | None:
        if self.ctx.sampler is None or self.ctx.scheduler is None:
            return None
        scheduler = self.ctx.scheduler
        if scheduler == "Automatic":
            if self.ctx.sampler not in _SAMPLER_DEFAULT_SCHEDULER:
                return None  # A1111 errors on an unknown sampler and keeps the tag
            scheduler = _SAMPLER_DEFAULT_SCHEDULER[self.ctx.sampler] or "Automatic"
        return scheduler.capitalize()  # A1111 quirk: "SGM Uniform" -> "Sgm uniform"

    def datetime(self, *args: str) -> str | None:
        time_format = args[0] if args and args[0] != "" else DEFAULT_TIME_FORMAT
        zone = None
        if len(args) > 1:
            try:
                zone = ZoneInfo(args[1])
            except (ZoneInfoNotFoundError, ValueError, OSError):
                zone = None
        moment = self.now().astimezone(zone)
        try:
            text = moment.strftime(time_format)
        except (ValueError, TypeError):
            text = moment.strftime(DEFAULT_TIME_FORMAT)
        return self.clean(text, False)

    def job_timestamp(self) -> str | None:
        stamp = self.ctx.job_timestamp
        return None if stamp is None else stamp.strftime(DEFAULT_TIME_FORMAT)

    def string_hash(self, text: str, *args: str) -> str:
        length = int(args[0]) if args and args[0] != "" else 8
        return hashlib.sha256(text.encode()).hexdigest()[0:length]

    def full_prompt_hash(self, *args: str) -> str:
        main = self.ctx.main_prompt if self.ctx.main_prompt is not None else self.ctx.prompt
        return self.string_hash(f"{main} {self.ctx.negative_prompt}", *args)

    def prompt_no_styles(self) -> str | None:
        if self.ctx.prompt is None:
            return None
        text = self.ctx.prompt
        for style in self.ctx.style_prompts:
            if style:
                for part in style.split("{prompt}"):
                    text = text.replace(part, "").replace(", ,", ",").strip().strip(",")
                text = text.replace(style, "").strip().strip(",").strip()
        return self.clean(text, False)

    def prompt_words(self) -> str | None:
        words = [word for word in _NON_LETTERS_RE.split(self.ctx.prompt or "") if word] or ["empty"]
        return self.clean(" ".join(words[0:self.max_prompt_words]), False)

    def batch_number(self) -> object:
        return _SKIP if self.ctx.batch_size == 1 or self.ctx.zip else self.ctx.batch_number

    def generation_number(self) -> object:
        single = self.ctx.n_iter == 1 and self.ctx.batch_size == 1
        return _SKIP if single or self.ctx.zip else self.ctx.generation_number

    def hasprompt(self, *args: str) -> str | None:
        lower = self.ctx.prompt.lower()  # type: ignore[union-attr]
        result = ""
        for arg in args:
            if arg != "":
                expected, _, default = arg.partition("|")
                if lower.find(expected.lower()) >= 0:
                    result += expected.lower()
                else:
                    result += default.split("|")[0]
        return self.clean(result)

    def vae_filename(self) -> str:
        if self.ctx.vae_filename is None:
            return "NoneType"
        parts = os.path.basename(self.ctx.vae_filename).split(".")
        return parts[1] if len(parts) > 1 and parts[0] == "" else parts[0]

    def image_hash(self, *args: str) -> str:
        length = int(args[0]) if args and args[0] != "" else None
        return hashlib.sha256(self.ctx.image.tobytes()).hexdigest()[0:length]  # type: ignore[union-attr]

    def table(self) -> dict[str, Callable[..., object]]:
        ctx = self.ctx
        return {
            "basename": lambda: ctx.basename or "img",
            "seed": self.seed,
            "seed_first": self.seed_first,
            "seed_last": self.seed_last,
            "steps": lambda: ctx.steps,
            "cfg": lambda: ctx.cfg_scale,
            "width": lambda: ctx.width,
            "height": lambda: ctx.height,
            "styles": self.styles,
            "sampler": lambda: self.clean(ctx.sampler, False),
            "sampler_scheduler": self.sampler_scheduler,
            "scheduler": self.scheduler,
            "model_hash": lambda: ctx.model_hash,
            "model_name": lambda: self.clean(ctx.model_name, False),
            "date": lambda: self.now().strftime("%Y-%m-%d"),
            "datetime": self.datetime,
            "job_timestamp": self.job_timestamp,
            "prompt_hash": lambda *args: self.string_hash(ctx.prompt, *args),
            "negative_prompt_hash": lambda *args: self.string_hash(ctx.negative_prompt, *args),
            "full_prompt_hash": self.full_prompt_hash,
            "prompt": lambda: self.clean(ctx.prompt),
            "prompt_no_styles": self.prompt_no_styles,
            "prompt_spaces": lambda: self.clean(ctx.prompt, False),
            "prompt_words": self.prompt_words,
            "batch_number": self.batch_number,
            "batch_size": lambda: ctx.batch_size,
            "generation_number": self.generation_number,
            "hasprompt": self.hasprompt,
            "clip_skip": lambda: ctx.clip_skip,
            "denoising": lambda: ctx.denoising if ctx.denoising else _SKIP,
            "user": lambda: ctx.user,
            "vae_filename": self.vae_filename,
            "none": lambda: "",
            "image_hash": self.image_hash,
        }


def apply_pattern(pattern: str, ctx: FilenameContext, *, max_prompt_words: int = 8, max_length: int = 128,
                  unix_sanitization: bool = False) -> str:
    """Replace ``[tag]`` / ``[tag<arg>...]`` (case-insensitive) the way A1111's FilenameGenerator does.

    Unknown tags, and tags whose value is unknown, are kept as ``[tag]`` (without their args). As in
    A1111, text before a newline in the pattern is dropped.
    """
    table = _Tags(ctx, max_prompt_words, max_length, unix_sanitization).table()
    result = ""
    for match in _PATTERN_RE.finditer(pattern):
        text, tag = match.groups()
        if tag is None:
            result += text
            continue
        args: list[str] = []
        while (arg_match := _PATTERN_ARG_RE.match(tag)) is not None:
            tag, arg = arg_match.groups()
            args.insert(0, arg)
        replacement = _replacement(table.get(tag.lower()), args)
        if replacement is _SKIP:
            continue
        result += text + (f"[{tag}]" if replacement is None else str(replacement))
    return result


def _replacement(function: Callable[..., object] | None, args: list[str]) -> object:
    if function is None:
        return None
    try:
        return function(*args)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError):
        return None  # A1111 logs the error and keeps the tag literally


def next_counter(folder: Path, basename: str = "") -> int:
    """1 + the largest number that starts a file name in ``folder`` (after ``basename-``), from 0."""
    prefix = f"{basename}-" if basename != "" else ""
    result = -1
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith(prefix):
            first = os.path.splitext(name[len(prefix):])[0].split("-")[0]
            with contextlib.suppress(ValueError):
                result = max(int(first), result)
    return result + 1


def effective_extension(fmt: str, width: int | None, height: int | None) -> str:
    """``fmt`` lower-cased, or "png" where JPEG (65535 px) or WebP (16383 px) cannot hold the image."""
    fmt = fmt.lower().lstrip(".")
    side = max(width or 0, height or 0)
    if (fmt in ("jpg", "jpeg") and side > 65535) or (fmt == "webp" and side > 16383):
        return "png"
    return fmt


@dataclass(frozen=True)
class _NameRule:
    extension: str
    basename: str
    short_filename: bool
    save_to_dirs: bool
    suffix: str = ""
    forced_filename: str | None = None


Taken = Callable[[Path], bool]  # True: writing this path would replace a file that is not ours to replace


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def safe_parts(text: str) -> list[str]:
    """A pattern's result as names that stay inside the output folder: separators split it into folders, and
    empty, `.` and `..` parts (and drive names such as `C:` on Windows) are dropped, so `../../x` is `x`
    and `/etc` is `etc`."""
    parts = re.split(r"[\\/]+", text)
    return [part for part in parts if part.strip(". ") and not (os.name == "nt" and ":" in part)]


def build_image_path(outdir: Path, ctx: FilenameContext, settings: Mapping[str, object], *,
                     suffix: str = "", forced_filename: str | None = None, max_length: int = 128,
                     unix_sanitization: bool = False, taken: Taken = _exists) -> Path:
    """Path for a sample: ``<outdir>/<date>/NNNNN-<seed>.png`` with default settings."""
    fmt = effective_extension(str(settings.get("samples_format", "png")), ctx.width, ctx.height)
    rule = _NameRule(fmt, "", False, bool(settings.get("save_to_dirs", True)), suffix, forced_filename)
    return _build_path(outdir, ctx, settings, rule, max_length, unix_sanitization, taken)


def build_grid_path(outdir: Path, ctx: FilenameContext, settings: Mapping[str, object], *,
                    max_length: int = 128, unix_sanitization: bool = False, taken: Taken = _exists,
                    basename: str = "grid") -> Path:
    """Path for a grid: ``<outdir>/<date>/grid-NNNN.png`` with default settings (ctx: first seed/prompt);
    scripts name theirs (``xyz_grid-NNNN.png``)."""
    fmt = effective_extension(str(settings.get("grid_format", "png")), ctx.width, ctx.height)
    short = not settings.get("grid_extended_filename", False)
    rule = _NameRule(fmt, basename, short, bool(settings.get("grid_save_to_dirs", True)))
    return _build_path(outdir, ctx, settings, rule, max_length, unix_sanitization, taken)


def build_extras_path(outdir: Path, settings: Mapping[str, object], *, width: int | None = None,
                      height: int | None = None, suffix: str = "", forced_filename: str | None = None,
                      taken: Taken = _exists) -> Path:
    """Path for an Extras result: ``<outdir>/NNNNN.png`` (no date folder, no decoration)."""
    fmt = effective_extension(str(settings.get("samples_format", "png")), width, height)
    rule = _NameRule(fmt, "", True, False, suffix, forced_filename)
    return _build_path(outdir, FilenameContext(width=width, height=height), settings, rule, 128, False, taken)


def _build_path(outdir: Path, ctx: FilenameContext, settings: Mapping[str, object], rule: _NameRule,
                max_length: int, unix: bool, taken: Taken) -> Path:
    """The path to write; it never leaves `outdir` (see safe_parts) and never replaces a file `taken` says is
    not ours (such a name gets a number instead)."""
    def apply(pattern: str) -> str:
        words = _int_setting(settings, "directories_max_prompt_words", 8)
        return apply_pattern(pattern, ctx, max_prompt_words=words, max_length=max_length, unix_sanitization=unix)

    folder = Path(outdir)
    if rule.save_to_dirs:
        dirname = apply(str(settings.get("directories_filename_pattern", "[date]") or "[prompt_words]"))
        folder = folder.joinpath(*safe_parts(dirname.lstrip(" ").rstrip("\\ /")))
    forced = "_".join(safe_parts(rule.forced_filename)) if rule.forced_filename is not None else ""
    if forced:
        return _unnumbered(folder, forced, rule.extension, True, taken)
    if rule.short_filename or ctx.seed is None:
        decoration = ""
    elif settings.get("save_to_dirs", True):
        decoration = str(settings.get("samples_filename_pattern") or "[seed]")
    else:
        decoration = str(settings.get("samples_filename_pattern") or "[seed]-[prompt_spaces]")
    *subfolders, decoration = safe_parts(apply(decoration) + rule.suffix) or [""]
    folder = folder.joinpath(*subfolders)
    add_number = bool(settings.get("save_images_add_number", True)) or decoration == ""
    if not add_number:
        replace = settings.get("save_images_replace_action", "Replace") == "Replace"
        return _unnumbered(folder, decoration, rule.extension, replace, taken)
    if decoration:
        decoration = f"-{decoration}"
    start = next_counter(folder, rule.basename)
    for index in range(MAX_COUNTER_TRIES):
        number = start + index
        stem = f"{number:05}" if rule.basename == "" else f"{rule.basename}-{number:04}"
        path = folder / _fit_name(folder, f"{stem}{decoration}", rule.extension)
        if not (_exists(path) or taken(path)):
            return path
    raise _no_free_name(folder)


def _unnumbered(folder: Path, decoration: str, extension: str, replace: bool, taken: Taken) -> Path:
    """`decoration` as the name; "Replace" replaces only our own file, any other existing one (and every
    existing one with "Add number suffix") gets `-1`, `-2`, ... as A1111's number suffix."""
    path = folder / _fit_name(folder, decoration, extension)
    for number in range(1, MAX_COUNTER_TRIES + 1):
        if not (taken(path) or (not replace and _exists(path))):
            return path
        path = folder / _fit_name(folder, f"{decoration}-{number}", extension)
    raise _no_free_name(folder)


def _no_free_name(folder: Path) -> UserError:
    return UserError(f"No free file name in {folder} after {MAX_COUNTER_TRIES} tries.", code="no_free_name",
                     hint="Move some files out of that folder, or change the file name pattern in Settings.")


def _fit_name(folder: Path, stem: str, extension: str) -> str:
    """Cut the stem so that the name fits the file system's name limit (usually 255 bytes)."""
    try:
        limit = os.statvfs(folder).f_namemax
    except (OSError, AttributeError):
        limit = 255
    suffix = f".{extension}"
    room = limit - max(4, len(suffix.encode()))
    while len(stem.encode()) > room:
        stem = stem[:-1]
    return stem + suffix


def _int_setting(settings: Mapping[str, object], key: str, default: int) -> int:
    try:
        return int(settings.get(key, default))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
