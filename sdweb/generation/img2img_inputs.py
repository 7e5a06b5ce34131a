"""Pipeline inputs for txt2img noise, img2img init images, and inpainting masks (a1111.md §12)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter

from sdweb.core.requests import GenerationRequest, Img2ImgRequest
from sdweb.models.manager import LoadedModel


@dataclass
class Img2ImgInputs:
    call_kwargs: dict[str, Any]
    finish: Callable[[list[Image.Image]], list[Image.Image]] = lambda images: images
    notes: list[str] = field(default_factory=list)
    # changes the encoded init latents before sampling (masked content "latent noise" / "latent nothing")
    latent_fill: Callable[[torch.Tensor], torch.Tensor] | None = None


def latent_fill(fill: int, mask: Image.Image, noise: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A1111's masked content 2 (latent noise: the seed's noise) and 3 (latent nothing: zeros) inside the mask,
    which is taken at latent size and rounded to 0/1 as A1111 does; None for the pixel-space fills."""
    if fill not in (2, 3):
        return None
    small = mask.convert("L").resize((noise.shape[-1], noise.shape[-2]), Image.Resampling.BILINEAR)
    inside = torch.from_numpy(np.round(np.asarray(small, dtype=np.float32) / 255.0))[None, None]

    def apply(latents: torch.Tensor) -> torch.Tensor:
        where = inside.to(latents.device, latents.dtype)
        kept = latents * (1 - where)
        if fill == 3:
            return kept
        seeded = noise.to(latents.device, latents.dtype)
        if seeded.shape[0] != latents.shape[0]:
            seeded = seeded[:1].expand(latents.shape[0], -1, -1, -1)
        return kept + seeded * where

    return apply


def resize_image(mode: int, image: Image.Image, width: int, height: int) -> Image.Image:
    """A1111's resize modes: 0 just resize, 1 crop and resize, 2 resize and fill, 3 latent (here: just resize)."""
    lanczos = Image.Resampling.LANCZOS
    if mode in (0, 3) or image.size == (width, height):
        return image.resize((width, height), lanczos)
    ratio, src_ratio = width / height, image.width / image.height
    if mode == 1:
        scale_w = width if ratio > src_ratio else image.width * height // image.height
        scale_h = height if ratio <= src_ratio else image.height * width // image.width
        resized = image.resize((scale_w, scale_h), lanczos)
        canvas = Image.new("RGB", (width, height))
        canvas.paste(resized, (width // 2 - scale_w // 2, height // 2 - scale_h // 2))
        return canvas
    return _resize_and_fill(image, width, height, ratio, src_ratio)


def _resize_and_fill(image: Image.Image, width: int, height: int, ratio: float, src_ratio: float) -> Image.Image:
    lanczos = Image.Resampling.LANCZOS
    scale_w = width if ratio < src_ratio else image.width * height // image.height
    scale_h = height if ratio >= src_ratio else image.height * width // image.width
    resized = image.resize((scale_w, scale_h), lanczos)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(resized, (width // 2 - scale_w // 2, height // 2 - scale_h // 2))
    if ratio < src_ratio:  # bands above and below: stretch the outermost rows
        fill = height // 2 - scale_h // 2
        if fill > 0:
            canvas.paste(resized.resize((width, fill), box=(0, 0, width, 0)), (0, 0))
            canvas.paste(resized.resize((width, fill), box=(0, resized.height, width, resized.height)),
                         (0, fill + scale_h))
    elif ratio > src_ratio:  # bands left and right: stretch the outermost columns
        fill = width // 2 - scale_w // 2
        if fill > 0:
            canvas.paste(resized.resize((fill, height), box=(0, 0, 0, height)), (0, 0))
            canvas.paste(resized.resize((fill, height), box=(resized.width, 0, resized.width, height)),
                         (fill + scale_w, 0))
    return canvas


def binary_mask(mask: Image.Image, invert: bool, round_mask: bool) -> Image.Image:
    """White = inpaint. An RGBA mask with transparency uses its alpha channel."""
    if mask.mode in ("RGBA", "LA") and mask.getextrema()[-1][0] < 255:
        gray = mask.getchannel("A")
    else:
        gray = mask.convert("L")
    if round_mask:
        gray = gray.point(lambda value: 255 if value > 128 else 0)
    if invert:
        gray = Image.eval(gray, lambda value: 255 - value)
    return gray


def blur_mask(mask: Image.Image, blur_x: int, blur_y: int) -> Image.Image:
    if blur_x <= 0 and blur_y <= 0:
        return mask
    return mask.filter(ImageFilter.GaussianBlur(radius=(max(blur_x, 0), max(blur_y, 0))))


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """'fill': masked pixels replaced by a heavy blur of their surroundings."""
    blurred = image.filter(ImageFilter.GaussianBlur(radius=max(image.size) / 8))
    return Image.composite(blurred, image, mask)


def _grey_txt2img_inputs(request: GenerationRequest, noise: torch.Tensor) -> Img2ImgInputs:
    grey = Image.new("RGB", (request.width, request.height), (128, 128, 128))
    white = Image.new("L", (request.width, request.height), 255)
    return Img2ImgInputs({"image": grey, "mask_image": white, "strength": 1.0, "latents": noise,
                          "width": request.width, "height": request.height})


def _init_images(request: Img2ImgRequest, count: int) -> list[Image.Image]:
    sources = request.init_images if len(request.init_images) > 1 else request.init_images * count
    return [resize_image(request.resize_mode, _flatten(image), request.width, request.height)
            for image in sources[:count]]


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def expand_to_aspect(box: tuple[int, int, int, int], width: int, height: int, image_size: tuple[int, int]
                     ) -> tuple[int, int, int, int]:
    """Grow a crop box to the aspect ratio of the processing size, staying inside the image (A1111's rule)."""
    x1, y1, x2, y2 = box
    image_w, image_h = image_size
    if (x2 - x1) / (y2 - y1) > width / height:
        diff = int((x2 - x1) / (width / height) - (y2 - y1))
        y1, y2 = _shift_inside(y1 - diff // 2, y2 + diff - diff // 2, image_h)
    else:
        diff = int((y2 - y1) * (width / height) - (x2 - x1))
        x1, x2 = _shift_inside(x1 - diff // 2, x2 + diff - diff // 2, image_w)
    return x1, y1, x2, y2


def _shift_inside(low: int, high: int, limit: int) -> tuple[int, int]:
    if high >= limit:
        low, high = low - (high - limit), limit
    if low < 0:
        high, low = min(high - low, limit), 0
    return low, high


def _only_masked_inputs(request: Img2ImgRequest, mask: Image.Image, count: int, noise: torch.Tensor,
                        notes: list[str]) -> Img2ImgInputs:
    """Crop around the mask (plus padding), inpaint the crop at full resolution, paste it back."""
    original = _flatten(request.init_images[0])
    mask = mask.resize(original.size)
    x1, y1, x2, y2 = mask.getbbox()
    pad = request.inpaint_full_res_padding
    box = (max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, original.width), min(y2 + pad, original.height))
    box = expand_to_aspect(box, request.width, request.height, original.size)
    blurred = blur_mask(mask, request.mask_blur_x, request.mask_blur_y)
    crop = original.crop(box).resize((request.width, request.height), Image.Resampling.LANCZOS)
    crop_mask = blurred.crop(box).resize((request.width, request.height), Image.Resampling.LANCZOS)
    if request.inpainting_fill == 0:
        crop = fill_masked(crop, crop_mask)
    kwargs: dict[str, Any] = {"image": [crop] * count, "mask_image": crop_mask,
                              "strength": request.denoising_strength, "width": request.width,
                              "height": request.height}
    if request.denoising_strength >= 1.0:
        kwargs["latents"] = noise
    paste_mask = blurred.crop(box)

    def paste_back(results: list[Image.Image]) -> list[Image.Image]:
        pasted = []
        for result in results:
            canvas = original.copy()
            canvas.paste(result.resize(paste_mask.size, Image.Resampling.LANCZOS), box[:2], paste_mask)
            pasted.append(canvas)
        return pasted

    return Img2ImgInputs(kwargs, paste_back, notes, latent_fill(request.inpainting_fill, crop_mask, noise))


def _inpaint_inputs(request: Img2ImgRequest, count: int, noise: torch.Tensor) -> Img2ImgInputs:
    mask = binary_mask(request.mask, bool(request.inpainting_mask_invert), request.mask_round)
    notes = []
    if request.inpaint_full_res and mask.getbbox() is not None:
        if len(request.init_images) == 1:
            return _only_masked_inputs(request, mask, count, noise, notes)
        notes.append("'Only masked' needs a single init image; inpainted the whole picture.")
    images = _init_images(request, count)
    mask = resize_image(request.resize_mode, mask.convert("RGB"), request.width, request.height).convert("L")
    blurred = blur_mask(mask, request.mask_blur_x, request.mask_blur_y)
    if request.inpainting_fill == 0:
        images = [fill_masked(image, blurred) for image in images]
    kwargs: dict[str, Any] = {"image": images, "mask_image": blurred, "strength": request.denoising_strength,
                              "width": request.width, "height": request.height}
    if request.denoising_strength >= 1.0:
        kwargs["latents"] = noise
    originals = _init_images(request, count)

    def overlay(results: list[Image.Image]) -> list[Image.Image]:
        return [Image.composite(result, original.resize(result.size), blurred.resize(result.size))
                for result, original in zip(results, originals, strict=False)]

    return Img2ImgInputs(kwargs, overlay, notes, latent_fill(request.inpainting_fill, blurred, noise))


def prepare_img2img_inputs(mode: str, pipe_mode: str, request: GenerationRequest, model: LoadedModel,
                           noise: torch.Tensor, settings: Mapping[str, Any]) -> Img2ImgInputs:
    if mode == "txt2img":
        if model.family.is_inpaint:
            return _grey_txt2img_inputs(request, noise)
        return Img2ImgInputs({"latents": noise, "width": request.width, "height": request.height})
    assert isinstance(request, Img2ImgRequest)
    if pipe_mode == "inpaint":
        return _inpaint_inputs(request, noise.shape[0], noise)
    images = _init_images(request, noise.shape[0])
    if model.family.is_inpaint:  # plain img2img on an inpainting model: nothing masked out
        white = Image.new("L", (request.width, request.height), 255)
        return Img2ImgInputs({"image": images, "mask_image": white, "strength": request.denoising_strength,
                              "width": request.width, "height": request.height})
    return Img2ImgInputs({"image": images, "strength": request.denoising_strength})
