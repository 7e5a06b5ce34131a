"""GET /embeddings in A1111's shape, from the same embedding library the generation service uses.

An embedding is "loaded" when its vectors fit the current checkpoint's text encoder(s) and "skipped"
otherwise (made for another model family, or unreadable), as A1111 reports them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sdweb.core.errors import UserError
from sdweb.models.loader import read_shapes
from sdweb.models.registry import CheckpointEntry, NamedModelFile
from sdweb.prompts.embeddings import EmbeddingLibrary

log = logging.getLogger(__name__)


def context_width(checkpoint: CheckpointEntry | None) -> int | None:
    """The UNet's cross-attention width (768 SD1, 1024 SD2, 2048 SDXL = CLIP-L + CLIP-G) from a single
    file's header; None for pickles and diffusers folders (never unpickles or loads a model)."""
    if checkpoint is None or checkpoint.is_diffusers_dir or checkpoint.path.suffix != ".safetensors":
        return None
    try:
        shapes = read_shapes(checkpoint.path)
    except (UserError, OSError, ValueError):
        return None
    for key, shape in shapes.items():
        if key.startswith("model.diffusion_model.") and key.endswith("attn2.to_k.weight") and len(shape) == 2:
            return shape[1]
    return None


def embeddings_listing(library: EmbeddingLibrary, files: Iterable[NamedModelFile],
                       checkpoint: CheckpointEntry | None) -> dict[str, dict[str, Any]]:
    """{"loaded": {name: item}, "skipped": {name: item}} with A1111's item keys."""
    result = library.load([(file.name, file.path) for file in files])
    width = context_width(checkpoint)
    loaded: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    for embedding in result.embeddings:
        shape = sum(int(vectors.shape[-1]) for vectors in embedding.vectors.values())
        item = {"step": embedding.step, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": shape,
                "vectors": embedding.vector_count}
        (loaded if width is None or shape == width else skipped)[embedding.name] = item
    for name in result.errors:
        skipped[name] = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": None,
                         "vectors": None}
    return {"loaded": loaded, "skipped": skipped}
