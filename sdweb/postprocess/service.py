"""The postprocessing service: one object in AppState holding the upscaler registry, face restoration and
interrogation, with the entry points the API routes and the Extras tab call."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from sdweb.core.errors import NotFoundError
from sdweb.outputs.guard import OutputGuard
from sdweb.postprocess.extras import (
    ExtrasInput,
    ExtrasProgress,
    ExtrasRequest,
    ExtrasResult,
    run_extras,
    run_extras_folder,
)
from sdweb.postprocess.faces import FaceRestoration, FaceRestorerInfo
from sdweb.postprocess.interrogate import Interrogator
from sdweb.postprocess.upscalers import UpscalerEntry, UpscalerRegistry

log = logging.getLogger(__name__)

__all__ = ["PostprocessService", "half_dtype_of"]

INTERROGATE_MODELS = ("clip", "deepdanbooru")


def half_dtype_of(plan: Any | None) -> torch.dtype:
    """The half dtype the runtime plan uses on its device (fp32 with --no-half or on the CPU)."""
    dtype = getattr(plan, "unet_dtype", torch.float32)
    return dtype if dtype in (torch.float16, torch.bfloat16) else torch.float32


class PostprocessService:
    """Upscalers, face restorers and interrogation for one app. ``settings`` has ``as_dict()`` (Settings)."""

    def __init__(self, paths: Any, settings: Any, plan: Any | None = None,
                 guard: OutputGuard | None = None) -> None:
        self.paths = paths
        self.settings = settings
        self.guard = guard or OutputGuard(Path(paths.data_dir))  # where Extras may write and read folders
        half = half_dtype_of(plan)
        self.upscalers = UpscalerRegistry.from_paths(paths, getattr(plan, "upscaler_device", "cpu"), half)
        self.faces = FaceRestoration.from_paths(paths, plan)
        self.interrogator = Interrogator.from_paths(paths, getattr(plan, "interrogate_device", "cpu"), half)

    def _settings(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        values = dict(self.settings.as_dict()) if hasattr(self.settings, "as_dict") else dict(self.settings)
        values.update(overrides or {})
        return values

    # ------------------------------------------------------------------------------------------- listings

    def upscaler_entries(self) -> list[UpscalerEntry]:
        """/sdapi/v1/upscalers: None, Lanczos, Nearest, then every model (name, model_name, path, scale)."""
        return self.upscalers.entries()

    def realesrgan_entries(self) -> list[UpscalerEntry]:
        """/sdapi/v1/realesrgan-models: the models in models/RealESRGAN."""
        return self.upscalers.in_folder("RealESRGAN")

    def face_restorers(self) -> list[FaceRestorerInfo]:
        """/sdapi/v1/face-restorers: CodeFormer and GFPGAN, with their folders (model_path None if absent)."""
        return self.faces.restorers()

    # -------------------------------------------------------------------------------------------- running

    def run_extras(self, request: ExtrasRequest, inputs: Sequence[ExtrasInput], *, save: bool,
                   output_dir: Path | None = None, settings: Mapping[str, Any] | None = None,
                   progress: ExtrasProgress | None = None) -> ExtrasResult:
        """Single image (one input) or a batch; the API passes save=False (A1111 does not save API extras)."""
        return run_extras(request, inputs, self.upscalers, self.faces, self._settings(settings), self.paths,
                          save=save, output_dir=output_dir, progress=progress, guard=self.guard)

    def run_extras_folder(self, request: ExtrasRequest, input_dir: Path, output_dir: Path | None, *,
                          settings: Mapping[str, Any] | None = None,
                          progress: ExtrasProgress | None = None) -> ExtrasResult:
        return run_extras_folder(request, input_dir, output_dir, self.upscalers, self.faces,
                                 self._settings(settings), self.paths, progress, self.guard)

    def interrogate(self, image: Image.Image, model: str = "clip",
                    settings: Mapping[str, Any] | None = None) -> str:
        """/sdapi/v1/interrogate: model "clip" (BLIP caption + CLIP terms); "deepdanbooru" is not available."""
        if model not in INTERROGATE_MODELS:
            raise NotFoundError(f"Interrogate model {model!r} not found.", code="interrogate_model_not_found",
                                hint="Use model \"clip\".")
        if model == "deepdanbooru":
            raise NotFoundError("DeepDanbooru interrogation is not available in sdweb.",
                                code="interrogate_model_not_found", hint="Use model \"clip\".")
        return self.interrogator.interrogate(image, self._settings(settings))

    def restore_faces_for_generation(self, image: Image.Image, settings: Mapping[str, Any]
                                     ) -> tuple[Image.Image, str]:
        """txt2img/img2img ``restore_faces``: (restored image, model name for the infotext), using the
        settings face_restoration_model (CodeFormer) and code_former_weight (0.5)."""
        name = self.faces.canonical_name(str(settings.get("face_restoration_model") or "CodeFormer"))
        weight = float(settings.get("code_former_weight", 0.5))
        restored = self.faces.restore(image, name, 1.0, weight)
        if settings.get("face_restoration_unload", False):
            self.faces.unload()
        return restored, name

    def unload(self) -> None:
        self.upscalers.unload()
        self.faces.unload()
        self.interrogator.unload()
