"""Interrogate CLIP: a BLIP caption followed by the medium, movement and flavour terms CLIP ranks highest.

Models are local transformers-format folders (config.json + weights + processor files, as save_pretrained
writes them): a BLIP captioning model (model_type "blip") and a CLIP model (model_type "clip"), found in
models/BLIP and models/CLIP (the folder itself or one of its subfolders), or at the paths in the settings
``interrogate_blip_model_path`` / ``interrogate_clip_model_path``. Nothing is downloaded.

Settings read (A1111's keys): interrogate_clip_num_beams (1), interrogate_clip_min_length (24),
interrogate_clip_max_length (48), interrogate_clip_dict_limit (1500), interrogate_return_ranks (False),
interrogate_keep_models_in_memory (False), interrogate_clip_skip_categories ([]).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from sdweb.core.errors import InvalidModelFileError, NotFoundError
from sdweb.runtime.memory import free_memory

log = logging.getLogger(__name__)

__all__ = ["CATEGORIES", "Interrogator", "find_model_folder", "format_terms"]

# Our own short term lists; (name, how many to add, terms).
MEDIUMS = ("a photograph", "a digital painting", "an oil painting", "a watercolor painting", "a pencil sketch",
           "a charcoal drawing", "an ink drawing", "a 3D render", "a pixel art image", "an anime illustration",
           "a comic book panel", "a vector illustration", "a matte painting", "a screenshot", "a poster",
           "a linocut print", "a mosaic", "a sculpture", "a collage", "a stained glass window")
MOVEMENTS = ("impressionism", "expressionism", "surrealism", "art nouveau", "art deco", "baroque",
             "renaissance", "romanticism", "realism", "photorealism", "pop art", "minimalism", "cubism",
             "ukiyo-e", "bauhaus", "futurism", "pointillism", "abstract art", "concept art", "street art")
FLAVOURS = ("highly detailed", "soft lighting", "dramatic lighting", "golden hour", "cinematic", "bokeh",
            "sharp focus", "wide angle", "close-up", "portrait", "landscape", "studio lighting", "volumetric light",
            "pastel colors", "vibrant colors", "monochrome", "high contrast", "low contrast", "film grain",
            "depth of field", "symmetrical", "muted colors", "neon lights", "fog", "rain", "snow", "sunset",
            "night", "overcast", "backlit", "reflections", "motion blur", "4k", "smooth", "intricate",
            "hand-drawn", "flat colors", "gradient", "glowing", "dark background", "white background")
CATEGORIES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("mediums", 1, MEDIUMS), ("movements", 1, MOVEMENTS), ("flavors", 3, FLAVOURS))

_INSTALL_HINT = {
    "blip": "Put a BLIP captioning model in transformers format (for example a copy of "
            "Salesforce/blip-image-captioning-base: config.json, model.safetensors and its processor files) "
            "into {folder}/<name>/, or set interrogate_blip_model_path to its folder.",
    "clip": "Put a CLIP model in transformers format (for example a copy of openai/clip-vit-large-patch14: "
            "config.json, model.safetensors and its processor files) into {folder}/<name>/, or set "
            "interrogate_clip_model_path to its folder.",
}


def _model_type(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type"))
    except (OSError, ValueError, AttributeError):
        return None


def find_model_folder(roots: Sequence[Path], model_type: str, override: str | None = None) -> Path | None:
    """The first folder under ``roots`` (itself, then its subfolders by name) whose config is ``model_type``.

    ``override`` (a setting's path) wins; a path there that holds no such model is an error naming it.
    """
    if override:
        folder = Path(override).expanduser()
        if _model_type(folder) != model_type:
            raise NotFoundError(f"{folder} is not a {model_type.upper()} model folder (no config.json with "
                                f'model_type "{model_type}").', code="interrogate_model_missing",
                                hint=f"Fix the setting interrogate_{model_type}_model_path.")
        return folder
    for root in roots:
        candidates = [Path(root)]
        try:
            candidates += sorted(p for p in Path(root).iterdir() if p.is_dir())
        except OSError:
            continue
        for folder in candidates:
            if _model_type(folder) == model_type:
                return folder
    return None


def format_terms(matches: Sequence[tuple[str, float]], with_ranks: bool) -> list[str]:
    return [f"({term}:{score:.3f})" if with_ranks else term for term, score in matches]


@dataclass
class _Loaded:
    folder: Path
    model: Any
    processor: Any
    term_features: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Interrogator:
    """BLIP + CLIP interrogation; one per AppState. ``roots`` are searched for both kinds of model."""

    roots: list[Path]
    device: str = "cpu"
    half_dtype: torch.dtype = torch.float32
    _blip: _Loaded | None = field(default=None, repr=False)
    _clip: _Loaded | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @classmethod
    def from_paths(cls, paths: Any, device: str = "cpu", half_dtype: torch.dtype = torch.float32) -> Interrogator:
        roots = [paths.blip, paths.models_dir / "CLIP", paths.models_dir / "clip"]
        return cls(roots=list(dict.fromkeys(roots)), device=device, half_dtype=half_dtype)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.device == "cpu" else self.half_dtype

    def model_folders(self, settings: Mapping[str, Any]) -> dict[str, Path | None]:
        return {kind: find_model_folder(self.roots, kind, settings.get(f"interrogate_{kind}_model_path") or None)
                for kind in ("blip", "clip")}

    def interrogate(self, image: Image.Image, settings: Mapping[str, Any]) -> str:
        """``"<caption>, <medium>, <movement>, <flavour>, ..."``, as A1111's Interrogate CLIP writes it."""
        folders = self.model_folders(settings)
        missing = [kind for kind, folder in folders.items() if folder is None]
        if missing:
            raise NotFoundError(f"No {' and no '.join(kind.upper() for kind in missing)} model found for "
                                f"interrogation (looked in {', '.join(str(r) for r in self.roots)}).",
                                code="interrogate_model_missing",
                                hint=" ".join(self._hint(kind) for kind in missing))
        rgb = image.convert("RGB")
        with self._lock:
            try:
                caption = self._caption(folders["blip"], rgb, settings)  # type: ignore[arg-type]
                terms = self._rank_categories(folders["clip"], rgb, settings)  # type: ignore[arg-type]
            finally:
                if not settings.get("interrogate_keep_models_in_memory", False):
                    self.unload()
        return ", ".join(part for part in [caption, *terms] if part)

    def caption(self, image: Image.Image, settings: Mapping[str, Any]) -> str:
        folder = self.model_folders(settings)["blip"]
        if folder is None:
            raise NotFoundError("No BLIP model found for captioning.", code="interrogate_model_missing",
                                hint=self._hint("blip"))
        with self._lock:
            return self._caption(folder, image.convert("RGB"), settings)

    def _hint(self, kind: str) -> str:
        folder = self.roots[min(len(self.roots) - 1, 0 if kind == "blip" else 1)] if self.roots else "models"
        return _INSTALL_HINT[kind].format(folder=folder)

    def unload(self) -> None:
        with self._lock:
            self._blip = self._clip = None
        free_memory(self.device)

    # ---------------------------------------------------------------------------------------------- BLIP

    def _load(self, folder: Path, kind: str) -> _Loaded:
        current = self._blip if kind == "blip" else self._clip
        if current is not None and current.folder == folder:
            return current
        from transformers import BlipForConditionalGeneration, BlipProcessor, CLIPModel, CLIPProcessor

        model_class, processor_class = ((BlipForConditionalGeneration, BlipProcessor) if kind == "blip"
                                        else (CLIPModel, CLIPProcessor))
        try:
            processor = processor_class.from_pretrained(str(folder), local_files_only=True)
            model = model_class.from_pretrained(str(folder), local_files_only=True, dtype=self.dtype)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
            raise InvalidModelFileError(f"The {kind.upper()} model in {folder} could not be loaded: "
                                        f"{str(error).splitlines()[0][:200] if str(error) else type(error).__name__}",
                                        hint="The folder needs config.json, the weights and the processor files "
                                             "(tokenizer and preprocessor configs) as save_pretrained writes "
                                             "them.") from error
        loaded = _Loaded(folder, model.to(self.device).eval(), processor)
        if kind == "blip":
            self._blip = loaded
        else:
            self._clip = loaded
        log.info("Loaded %s interrogation model from %s", kind.upper(), folder)
        return loaded

    def _caption(self, folder: Path, image: Image.Image, settings: Mapping[str, Any]) -> str:
        blip = self._load(folder, "blip")
        inputs = blip.processor(images=image, return_tensors="pt")
        pixels = inputs["pixel_values"].to(self.device, self.dtype)
        beams = max(1, int(settings.get("interrogate_clip_num_beams", 1)))
        min_length = int(settings.get("interrogate_clip_min_length", 24))
        max_length = max(min_length, int(settings.get("interrogate_clip_max_length", 48)))
        with torch.inference_mode():
            tokens = blip.model.generate(pixel_values=pixels, num_beams=beams, min_new_tokens=min_length,
                                         max_new_tokens=max_length, do_sample=False)
        return str(blip.processor.decode(tokens[0], skip_special_tokens=True)).strip()

    # ---------------------------------------------------------------------------------------------- CLIP

    def _rank_categories(self, folder: Path, image: Image.Image, settings: Mapping[str, Any]) -> list[str]:
        clip = self._load(folder, "clip")
        skip = set(settings.get("interrogate_clip_skip_categories", []) or [])
        limit = int(settings.get("interrogate_clip_dict_limit", 1500)) or None
        with_ranks = bool(settings.get("interrogate_return_ranks", False))
        image_features = self._image_features(clip, image)
        parts: list[str] = []
        for name, top, terms in CATEGORIES:
            if name in skip:
                continue
            parts += format_terms(self._rank(clip, name, image_features, terms[:limit], top), with_ranks)
        return parts

    def rank(self, image: Image.Image, terms: Sequence[str], top: int, settings: Mapping[str, Any]
             ) -> list[tuple[str, float]]:
        """The ``top`` terms CLIP finds most like the image, with softmax scores (0..1)."""
        folder = self.model_folders(settings)["clip"]
        if folder is None:
            raise NotFoundError("No CLIP model found.", code="interrogate_model_missing",
                                hint=self._hint("clip"))
        with self._lock:
            clip = self._load(folder, "clip")
            return self._rank(clip, None, self._image_features(clip, image.convert("RGB")), tuple(terms), top)

    def _image_features(self, clip: _Loaded, image: Image.Image) -> torch.Tensor:
        inputs = clip.processor(images=image, return_tensors="pt")
        with torch.inference_mode():
            features = _features(clip.model.get_image_features(
                pixel_values=inputs["pixel_values"].to(self.device, self.dtype)))
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def _rank(self, clip: _Loaded, cache_key: str | None, image_features: torch.Tensor, terms: tuple[str, ...],
              top: int) -> list[tuple[str, float]]:
        if not terms:
            return []
        text_features = clip.term_features.get(cache_key) if cache_key else None
        if text_features is None or text_features.shape[0] != len(terms):
            tokens = clip.processor.tokenizer(list(terms), padding=True, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                text_features = _features(clip.model.get_text_features(
                    input_ids=tokens["input_ids"].to(self.device),
                    attention_mask=tokens["attention_mask"].to(self.device)))
            text_features = torch.nn.functional.normalize(text_features.float(), dim=-1)
            if cache_key:
                clip.term_features[cache_key] = text_features
        scores = (100.0 * image_features @ text_features.T).softmax(dim=-1)[0]
        values, indices = scores.topk(min(top, len(terms)))
        return [(terms[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]


def _features(output: Any) -> torch.Tensor:
    """transformers 5 returns an output object with the projected features as pooler_output; 4 a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output
