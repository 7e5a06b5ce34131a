"""Textual-inversion embeddings from the embeddings folder (a1111.md §6.8).

A file is used by writing its file name stem in a prompt. Formats, as A1111 reads them:
- A1111 ``.pt``: ``{"string_to_param": {"*": tensor (vectors, width)}, "name": ..., "step": ...}``;
- a dict holding a single tensor: diffusers concept ``.bin`` (``{"<token>": tensor}``), ``.safetensors``
  with ``emb_params``; a 1-D tensor is one vector;
- SDXL: ``{"clip_l": (n, 768), "clip_g": (n, 1280)}``, one part per text encoder.
Pickled files are read with ``torch.load(weights_only=True)``: tensors and plain values only.

``bind_embeddings`` fits the loaded embeddings to a model's encoders: each embedding whose vectors match
every encoder's width gets placeholder token ids beyond that encoder's vocabulary, and the name's CLIP
token sequence maps to them (``EncoderSlot.embedding_sequences``); the others are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from sdweb.prompts.conditioning import EncoderSlot

log = logging.getLogger(__name__)

SDXL_KEYS = ("clip_l", "clip_g")


class EmbeddingFileError(ValueError):
    """The file is not a textual-inversion embedding we can read."""


@dataclass(frozen=True)
class TextualInversion:
    name: str
    path: Path
    vectors: Mapping[str, torch.Tensor]  # "" for one-encoder files, "clip_l" / "clip_g" for SDXL; (n, width)
    step: int | None = None
    sha256: str = ""

    @property
    def vector_count(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    @property
    def shorthash(self) -> str:
        return self.sha256[:12]

    def describe(self) -> str:
        widths = "+".join(str(v.shape[-1]) for v in self.vectors.values())
        return f"{self.vector_count} vector(s) of width {widths}"


def _as_matrix(value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise EmbeddingFileError(f"{what} is not a tensor")
    tensor = value.detach().to("cpu", torch.float32)
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 2 or tensor.shape[0] == 0:
        raise EmbeddingFileError(f"{what} has shape {tuple(value.shape)}, expected (vectors, width)")
    if not torch.isfinite(tensor).all():
        raise EmbeddingFileError(f"{what} contains NaN or infinite values")
    return tensor


def embedding_vectors(data: Any) -> tuple[dict[str, torch.Tensor], int | None]:
    """(vectors by encoder key, training step) from a loaded file's content, by A1111's format rules."""
    if not isinstance(data, Mapping) or not data:
        raise EmbeddingFileError("not a dict of tensors")
    step = data.get("step") if isinstance(data.get("step"), int) else None
    if "string_to_param" in data:
        params = data["string_to_param"]
        params = getattr(params, "_parameters", params)
        if not isinstance(params, Mapping) or len(params) != 1:
            raise EmbeddingFileError("string_to_param must hold exactly one term")
        return {"": _as_matrix(next(iter(params.values())), "string_to_param")}, step
    if "clip_l" in data and "clip_g" in data:
        vectors = {key: _as_matrix(data[key], key) for key in SDXL_KEYS}
        if vectors["clip_l"].shape[0] != vectors["clip_g"].shape[0]:
            raise EmbeddingFileError("clip_l and clip_g have different vector counts")
        return vectors, step
    if isinstance(next(iter(data.values())), torch.Tensor):
        if len(data) != 1:
            raise EmbeddingFileError(f"holds {len(data)} tensors ({', '.join(map(str, list(data)[:4]))}), expected one")
        return {"": _as_matrix(next(iter(data.values())), "the tensor")}, step
    raise EmbeddingFileError("neither a textual-inversion embedding nor a diffusers concept")


def _read_data(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        import safetensors
        import safetensors.torch

        try:
            return safetensors.torch.load_file(str(path), device="cpu")
        except safetensors.SafetensorError as error:  # truncated or damaged: its header does not match the data
            raise EmbeddingFileError(f"damaged safetensors file ({error})") from None
    if suffix in (".pt", ".bin"):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors have many types; any of them means "cannot read safely"
            raise EmbeddingFileError(f"cannot be read safely as tensors ({type(error).__name__}: "
                                     f"{str(error)[:200]})") from error
    raise EmbeddingFileError(f"unsupported file type {suffix!r} (use .safetensors, .pt or .bin)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_embedding_file(path: Path, name: str | None = None) -> TextualInversion:
    """One embedding file; raises EmbeddingFileError (or OSError) naming what is wrong."""
    path = Path(path)
    try:
        data = _read_data(path)
        vectors, step = embedding_vectors(data)
    except EmbeddingFileError as error:
        raise EmbeddingFileError(f"{path.name}: {error}") from None
    except (OSError, RuntimeError, ValueError) as error:
        raise EmbeddingFileError(f"{path.name}: {error}") from error
    return TextualInversion(name or path.stem, path, vectors, step, _sha256(path))


@dataclass
class LoadResult:
    embeddings: list[TextualInversion] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # name -> why it could not be read (names the file)


class EmbeddingLibrary:
    """Loaded embedding files, cached by path + modification time + size. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[int, int], TextualInversion | str]] = {}

    def load(self, files: Iterable[tuple[str, Path]]) -> LoadResult:
        """Each (name, path) loaded (or taken from the cache); unreadable files are reported, not raised."""
        result = LoadResult()
        seen: set[Path] = set()
        with self._lock:
            for name, path in files:
                path = Path(path)
                seen.add(path)
                entry = self._entry(name, path)
                if isinstance(entry, TextualInversion):
                    result.embeddings.append(entry if entry.name == name else replace(entry, name=name))
                else:
                    result.errors[name] = entry
            for stale in set(self._cache) - seen:
                del self._cache[stale]
        return result

    def _entry(self, name: str, path: Path) -> TextualInversion | str:
        try:
            stat = path.stat()
        except OSError as error:
            return f"{path.name}: {error.strerror or error}"
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            entry: TextualInversion | str = read_embedding_file(path, name)
        except (EmbeddingFileError, OSError) as error:
            entry = str(error)
            log.warning("Textual inversion embedding skipped: %s", entry)
        self._cache[path] = (key, entry)
        return entry


@dataclass
class BoundEmbeddings:
    slots: list[EncoderSlot]
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason (e.g. made for another model)
    by_name: dict[str, TextualInversion] = field(default_factory=dict)


def _token_width(slot: EncoderSlot) -> int:
    return int(slot.encoder.get_input_embeddings().embedding_dim)


def _vocabulary_size(slot: EncoderSlot) -> int:
    return int(slot.encoder.get_input_embeddings().num_embeddings)


def _mismatch(embedding: TextualInversion, slots: Sequence[EncoderSlot]) -> str | None:
    for slot in slots:
        vectors = embedding.vectors.get(slot.ti_key)
        if vectors is None or vectors.shape[-1] != _token_width(slot):
            needed = " + ".join(f"{s.ti_key or 'width'} {_token_width(s)}" for s in slots)
            return f"{embedding.describe()}; this model needs {needed}"
    return None


def bind_embeddings(slots: Sequence[EncoderSlot], embeddings: Sequence[TextualInversion]) -> BoundEmbeddings:
    """Slots that recognise the embeddings' names (placeholder ids and their vectors), and what was skipped."""
    bound = BoundEmbeddings(slots=list(slots))
    usable = []
    for embedding in embeddings:
        reason = _mismatch(embedding, slots) if slots else "no text encoder"
        if reason is not None:
            bound.skipped[embedding.name] = reason
        elif embedding.name.strip():
            usable.append(embedding)
    bound.slots = [_bind_slot(slot, usable) for slot in slots]
    bound.by_name = {embedding.name: embedding for embedding in usable}
    bound.loaded = list(bound.by_name)
    return bound


def _bind_slot(slot: EncoderSlot, embeddings: Sequence[TextualInversion]) -> EncoderSlot:
    table = slot.encoder.get_input_embeddings()
    next_id = _vocabulary_size(slot)
    sequences = dict(slot.embedding_sequences)
    vectors = dict(slot.embedding_vectors)
    names = dict(slot.embedding_names)
    for embedding in embeddings:
        name_ids = tuple(slot.tokenizer(embedding.name, add_special_tokens=False)["input_ids"])
        if not name_ids or name_ids in sequences:
            continue  # same tokens as an earlier name (CLIP lowercases): the first one wins
        matrix = embedding.vectors[slot.ti_key].to(table.weight.device, table.weight.dtype)
        ids = list(range(next_id, next_id + matrix.shape[0]))
        next_id += matrix.shape[0]
        sequences[name_ids] = ids
        vectors.update({token: matrix[row] for row, token in enumerate(ids)})
        names.update(dict.fromkeys(ids, embedding.name))
    return replace(slot, embedding_sequences=sequences, embedding_vectors=vectors, embedding_names=names)
