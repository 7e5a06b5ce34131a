"""The model registry: scans A1111's folders, names things as A1111 does, hashes in the background.

Checkpoint titles are `relative/name.safetensors [sha256[:10]]`; until a file's sha256 is known (hashing a
6 GB file takes a while, and it never blocks the server) the title is just the name. Every alias A1111
accepts resolves a checkpoint (see `find_checkpoint`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from sdweb.config.paths import DataPaths
from sdweb.models.demo import DEMO_TITLE, ensure_demo_checkpoint
from sdweb.models.file_check import FileChecks
from sdweb.models.hashing import HashCache, LoggingProgress

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".gguf")
VAE_SUFFIXES = (".safetensors", ".ckpt", ".pt")
# Forge lists these in its "VAE / Text encoder" choice (models/VAE, models/text_encoder)
MODULE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
LORA_SUFFIXES = (".safetensors", ".ckpt", ".pt")
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")
MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class CheckpointEntry:
    path: Path
    name: str  # path relative to its folder, with extension
    legacy_hash: str
    sha256: str | None = None
    is_diffusers_dir: bool = False
    is_demo: bool = False

    @property
    def name_for_extra(self) -> str:
        return Path(self.name).stem if not self.is_diffusers_dir else Path(self.name).name

    @property
    def model_name(self) -> str:
        stem = self.name if self.is_diffusers_dir else str(Path(self.name).with_suffix(""))
        return stem.replace("/", "_").replace("\\", "_")

    @property
    def shorthash(self) -> str | None:
        return self.sha256[:10] if self.sha256 else None

    @property
    def title(self) -> str:
        if self.is_demo:
            return DEMO_TITLE
        return f"{self.name} [{self.shorthash}]" if self.shorthash else self.name

    @property
    def short_title(self) -> str:
        return f"{self.name_for_extra} [{self.shorthash}]" if self.shorthash else self.name_for_extra

    def aliases(self) -> list[str]:
        names = [self.title, self.name, self.model_name, self.name_for_extra, self.legacy_hash,
                 f"{self.name} [{self.legacy_hash}]"]
        if self.sha256:
            names += [self.sha256, self.shorthash, f"{self.name} [{self.shorthash}]",
                      f"{self.name_for_extra} [{self.shorthash}]"]
        return names


@dataclass(frozen=True)
class NamedModelFile:
    """A VAE, LoRA or embedding file: listed by name; hashed on use."""

    name: str
    path: Path
    alias: str = ""


def _walk(root: Path | None, suffixes: tuple[str, ...]) -> Iterable[Path]:
    if root is None or not root.is_dir():
        return []
    return (p for p in sorted(root.rglob("*")) if p.is_file() and p.name.lower().endswith(suffixes))


def _is_vae_file(path: Path) -> bool:
    return any(part in path.name.lower() for part in (".vae.pt", ".vae.ckpt", ".vae.safetensors"))


def _absolute_path(text: str) -> Path | None:
    try:
        path = Path(text).expanduser()
        return path.resolve() if path.is_absolute() and path.exists() else None
    except (OSError, RuntimeError, ValueError):
        return None


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors header, or {} when there is none or the file is damaged."""
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length <= MAX_HEADER_BYTES:
                return {}
            header = json.loads(handle.read(length))
        metadata = header.get("__metadata__", {}) if isinstance(header, dict) else {}
        return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly nested JSON
        return {}


class ModelRegistry:
    """Checkpoints, VAEs, LoRAs and embeddings found in the data folders. Thread-safe; refresh on demand."""

    def __init__(self, paths: DataPaths, *, no_hashing: bool = False, extra_checkpoint: str | None = None,
                 cache: HashCache | None = None) -> None:
        self.paths = paths
        self.no_hashing = no_hashing
        self.extra_checkpoint = Path(extra_checkpoint).resolve() if extra_checkpoint else None
        self.cache = cache or HashCache(paths.cache_dir / "hashes.json")
        self._lock = threading.Lock()
        self._checkpoints: dict[str, CheckpointEntry] = {}
        self.vaes: list[NamedModelFile] = []
        self.loras: list[NamedModelFile] = []
        self.embeddings: list[NamedModelFile] = []
        self.file_checks = FileChecks()  # damaged VAE / LoRA files, found when listed
        self.modules: list[NamedModelFile] = []
        self._to_hash: queue.Queue[Path] = queue.Queue()
        self._hasher: threading.Thread | None = None

    # -- checkpoints ----------------------------------------------------------------------------------
    def _checkpoint_sources(self) -> list[tuple[Path, Path]]:
        """(file or diffusers folder, the folder its name is relative to): models/Stable-diffusion, --ckpt-dir,
        then ComfyUI's models/diffusion_models and models/unet when present (transformer-only files, GGUF)."""
        found: list[tuple[Path, Path]] = []
        for root in (self.paths.checkpoints, self.paths.extra_checkpoint_dir, *self.paths.diffusion_models):
            if root is None or not root.is_dir():
                continue
            for index in sorted(root.rglob("model_index.json")):
                found.append((index.parent, root))
            diffusers_dirs = [f for f, _ in found]
            for file in _walk(root, CHECKPOINT_SUFFIXES):
                if not _is_vae_file(file) and not any(d in file.parents for d in diffusers_dirs):
                    found.append((file, root))
        if self.extra_checkpoint and self.extra_checkpoint.exists():
            found.append((self.extra_checkpoint, self.extra_checkpoint.parent))
        return found

    def _entry_for(self, path: Path, root: Path) -> CheckpointEntry:
        name = path.relative_to(root).as_posix()
        if path.is_dir():
            return CheckpointEntry(path=path, name=name, legacy_hash="", is_diffusers_dir=True)
        legacy = self.cache.get(path, "legacy")
        return CheckpointEntry(path=path, name=name, legacy_hash=legacy, sha256=self.cache.cached(path, "sha256"))

    def refresh_checkpoints(self) -> None:
        entries = {}
        for path, root in self._checkpoint_sources():
            entry = self._entry_for(path, root)
            entries.setdefault(entry.name, entry)  # the same name in two folders: the first folder wins
        if not entries:
            demo = ensure_demo_checkpoint(self.paths.cache_dir)
            entries[DEMO_TITLE] = CheckpointEntry(path=demo, name=demo.name, is_demo=True,
                                                  legacy_hash=self.cache.get(demo, "legacy"))
            log.info("No checkpoint in %s: using the built-in demo model.", self.paths.checkpoints)
        with self._lock:
            self._checkpoints = entries
        for entry in entries.values():
            if entry.sha256 is None and not entry.is_diffusers_dir and not self.no_hashing:
                self._to_hash.put(entry.path)
        self._start_hasher()

    def _start_hasher(self) -> None:
        if self._to_hash.empty() or (self._hasher and self._hasher.is_alive()):
            return
        self._hasher = threading.Thread(target=self._hash_pending, name="sdweb-hasher", daemon=True)
        self._hasher.start()

    def _hash_pending(self) -> None:
        while True:
            try:
                path = self._to_hash.get_nowait()
            except queue.Empty:
                return
            try:
                digest = self.cache.get(path, "sha256", LoggingProgress(path.name))
            except OSError as error:
                log.warning("Could not hash %s: %s", path, error)
                continue
            with self._lock:
                for key, entry in self._checkpoints.items():
                    if entry.path == path:
                        self._checkpoints[key] = replace(entry, sha256=digest)

    def wait_for_hashes(self, timeout: float = 60.0) -> None:
        if self._hasher is not None:
            self._hasher.join(timeout)

    def ensure_sha256(self, entry: CheckpointEntry) -> CheckpointEntry:
        """Hash now (on load, as A1111 does) unless --no-hashing; returns the updated entry."""
        if entry.sha256 or entry.is_diffusers_dir or self.no_hashing:
            return entry
        updated = replace(entry, sha256=self.cache.get(entry.path, "sha256", LoggingProgress(entry.path.name)))
        with self._lock:
            for key, current in self._checkpoints.items():
                if current.path == entry.path:
                    self._checkpoints[key] = updated
        return updated

    @property
    def checkpoints(self) -> list[CheckpointEntry]:
        with self._lock:
            return list(self._checkpoints.values())

    def checkpoint_titles(self) -> list[str]:
        return [entry.title for entry in self.checkpoints]

    def find_checkpoint(self, alias: str) -> CheckpointEntry | None:
        """A1111's rules: any exact alias, then the shortest title containing the text, then the same
        with a trailing ` [..]` stripped."""
        if not alias:
            return None
        entries = self.checkpoints
        for entry in entries:
            if alias in entry.aliases():
                return entry
        by_path = _absolute_path(alias)  # --ckpt's file, named by its path
        if by_path is not None:
            found = next((entry for entry in entries if entry.path == by_path), None)
            if found is not None:
                return found
        for text in (alias, alias.rsplit(" [", 1)[0] if alias.endswith("]") else None):
            if not text:
                continue
            matches = sorted((e for e in entries if text in e.title), key=lambda e: len(e.title))
            if matches:
                return matches[0]
        return None

    # -- VAEs, LoRAs, embeddings ----------------------------------------------------------------------
    def refresh_vaes(self) -> None:
        found: dict[str, NamedModelFile] = {}
        for root in (self.paths.vae, self.paths.extra_vae_dir):
            for file in _walk(root, VAE_SUFFIXES):
                found.setdefault(file.name, NamedModelFile(file.name, file))
        for root in (self.paths.checkpoints, self.paths.extra_checkpoint_dir):
            for file in _walk(root, VAE_SUFFIXES):
                if _is_vae_file(file):
                    found.setdefault(file.name, NamedModelFile(file.name, file))
        self.vaes = sorted(found.values(), key=lambda v: v.name.lower())
        self.vae_problems()  # a damaged file is logged when it is found

    def refresh_loras(self) -> None:
        found: dict[str, NamedModelFile] = {}
        for root in (self.paths.lora, self.paths.lycoris):
            for file in _walk(root, LORA_SUFFIXES):
                alias = ""
                if file.suffix == ".safetensors":
                    alias = read_safetensors_metadata(file).get("ss_output_name", "")
                found.setdefault(file.stem, NamedModelFile(file.stem, file, alias or file.stem))
        self.loras = sorted(found.values(), key=lambda v: v.name.lower())
        self.lora_problems()

    def refresh_embeddings(self) -> None:
        found: dict[str, NamedModelFile] = {}
        for file in _walk(self.paths.embeddings, EMBEDDING_SUFFIXES):
            if ".preview." not in file.name:
                found.setdefault(file.stem, NamedModelFile(file.stem, file))
        self.embeddings = sorted(found.values(), key=lambda v: v.name.lower())

    def refresh_modules(self) -> None:
        """Forge's module files ("VAE / Text encoder"): every model file in models/VAE, --vae-dir,
        models/text_encoder, --text-encoder-dir and (when present) ComfyUI's models/clip and
        models/text_encoders, by file name. What each one is: sdweb.models.modules.classify_module_file."""
        roots = (self.paths.vae, self.paths.extra_vae_dir, self.paths.text_encoder, self.paths.extra_text_encoder_dir,
                 *self.paths.text_encoder_more)
        found: dict[str, NamedModelFile] = {}
        for root in roots:
            for file in _walk(root, MODULE_SUFFIXES):
                found.setdefault(file.name, NamedModelFile(file.name, file, file.stem))
        self.modules = sorted(found.values(), key=lambda m: m.name.lower())

    def refresh_all(self) -> None:
        self.refresh_checkpoints()
        self.refresh_vaes()
        self.refresh_modules()
        self.refresh_loras()
        self.refresh_embeddings()

    def vae_problems(self) -> dict[str, str]:
        """VAE name -> what is wrong with its file, for the listed VAEs that cannot be read."""
        return {vae.name: problem for vae in self.vaes if (problem := self.file_checks.problem(vae.path, "VAE"))}

    def lora_problems(self) -> dict[str, str]:
        """LoRA name -> what is wrong with its file, for the listed LoRAs that cannot be read."""
        return {lora.name: problem for lora in self.loras
                if (problem := self.file_checks.problem(lora.path, "LoRA"))}

    def find_vae(self, name: str) -> NamedModelFile | None:
        return next((v for v in self.vaes if name in (v.name, Path(v.name).stem, str(v.path))), None)

    def find_module(self, name: str) -> NamedModelFile | None:
        """A module file by file name, stem (as Forge's infotext names it: "Module 1: ae") or path."""
        return next((m for m in self.modules if name in (m.name, m.alias, str(m.path))), None)

    def find_lora(self, name: str) -> NamedModelFile | None:
        return next((x for x in self.loras if name == x.name), None) or next(
            (x for x in self.loras if name == x.alias), None)

    def find_embedding(self, name: str) -> NamedModelFile | None:
        return next((x for x in self.embeddings if name == x.name), None)

    def vae_near_checkpoint(self, entry: CheckpointEntry) -> NamedModelFile | None:
        """A1111's Automatic VAE: `<stem>.vae.*` beside the checkpoint, else a VAE file named like it."""
        if entry.is_diffusers_dir:
            return None
        for suffix in (".vae.safetensors", ".vae.pt", ".vae.ckpt"):
            beside = entry.path.with_name(entry.path.stem + suffix)
            if beside.is_file():
                return NamedModelFile(beside.name, beside)
        stem = Path(entry.name).stem
        return next((v for v in self.vaes if v.name.startswith(stem + ".")), None)
