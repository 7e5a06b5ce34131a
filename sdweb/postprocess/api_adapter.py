"""PostprocessService in the shape the A1111 API layer asks for (sdweb.api.a1111.seams.PostprocessBackend):
plain dicts with A1111's keys, and Extras from A1111's ExtrasBaseRequest field names. API results are not
saved, as in A1111."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image
from pydantic import ValidationError

from sdweb.core.errors import UserError
from sdweb.postprocess.extras import ExtrasInput, ExtrasRequest
from sdweb.postprocess.service import PostprocessService

__all__ = ["PostprocessApiAdapter"]

DEFAULT_SCALE = 4  # what A1111 reports for an upscaler whose scale it does not know


class PostprocessApiAdapter:
    def __init__(self, service: PostprocessService) -> None:
        self.service = service

    def extras(self, images: Sequence[Image.Image], params: Mapping[str, Any]) -> tuple[list[Image.Image], str]:
        """Postprocess each image (nothing saved); returns the images and A1111's html_info."""
        known = {key: value for key, value in params.items() if key in ExtrasRequest.model_fields}
        try:
            request = ExtrasRequest(**known)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
            raise UserError(f"Invalid extras request: {problems}.", code="invalid_request") from error
        result = self.service.run_extras(request, [ExtrasInput(image) for image in images], save=False)
        return result.images, result.html_info

    def upscalers(self) -> list[dict[str, Any]]:
        return [{"name": entry.name, "model_name": entry.model_name,
                 "model_path": str(entry.path) if entry.path is not None else None, "model_url": None,
                 "scale": float(entry.scale or DEFAULT_SCALE)} for entry in self.service.upscaler_entries()]

    def face_restorers(self) -> list[dict[str, Any]]:
        return [{"name": info.name, "cmd_dir": str(info.cmd_dir)} for info in self.service.face_restorers()]

    def realesrgan_models(self) -> list[dict[str, Any]]:
        return [{"name": entry.name, "path": str(entry.path), "scale": entry.scale or DEFAULT_SCALE}
                for entry in self.service.realesrgan_entries()]

    def interrogate(self, image: Image.Image, model: str) -> str:
        return self.service.interrogate(image, model)
