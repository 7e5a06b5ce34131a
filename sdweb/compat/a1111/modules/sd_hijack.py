"""A1111's `modules.sd_hijack`, only what extensions read without patching the model: `model_hijack` with the
embeddings database (names of sdweb's textual-inversion files). Anything that patches the model is not here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdweb.compat.a1111.world import WORLD

EMBEDDING_SUFFIXES = (".pt", ".safetensors", ".bin", ".png", ".webp")


class Embedding:
    def __init__(self, path: Path) -> None:
        self.name = path.stem
        self.filename = str(path)
        self.shape = None
        self.vectors = 0
        self.step = None
        self.sd_checkpoint = None
        self.sd_checkpoint_name = None


class EmbeddingDatabase:
    @property
    def word_embeddings(self) -> dict[str, Embedding]:
        folder = Path(WORLD.paths.embeddings) if WORLD.paths is not None else None
        if folder is None or not folder.is_dir():
            return {}
        return {path.stem: Embedding(path) for path in sorted(folder.rglob("*"))
                if path.suffix.lower() in EMBEDDING_SUFFIXES and path.is_file()}

    skipped_embeddings: dict[str, Embedding] = {}

    def load_textual_inversion_embeddings(self, force_reload: bool = False) -> None:
        return None


class ModelHijack:
    embedding_db = EmbeddingDatabase()
    optimization_method = None
    comments: list[str] = []

    def get_prompt_lengths(self, text: str) -> tuple[int, int]:
        tokens = len(text.split())
        return tokens, max(75, (tokens + 74) // 75 * 75)


model_hijack = ModelHijack()


def __getattr__(name: str) -> Any:
    from sdweb.compat.a1111.scope import IncompatibleExtension, model_internals_reason

    raise IncompatibleExtension(model_internals_reason(f"modules.sd_hijack.{name}"), f"modules.sd_hijack.{name}")
