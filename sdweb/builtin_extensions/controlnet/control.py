"""Turning units into ControlNet conditioning for a sampling call: control image, preprocessing, sizing."""

from __future__ import annotations

from typing import Any

from PIL import Image

from sdweb.builtin_extensions.controlnet.models import ControlNetModels
from sdweb.builtin_extensions.controlnet.preprocessors import BY_NAME, Preprocessor
from sdweb.builtin_extensions.controlnet.units import UnitSettings
from sdweb.extensions.api import ControlUnit, SamplingCall, UserError, decode_image


def unit_image(unit: UnitSettings, call: SamplingCall, index: int) -> Image.Image:
    """The unit's input image: its own, else (img2img) the init image, else an error as sd-webui-controlnet."""
    value = unit.image
    if isinstance(value, dict):
        value = value.get("image") or value.get("background") or value.get("composite")
    elif isinstance(value, list | tuple) and value:
        value = value[0]
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, str) and value.strip():
        return decode_image(value, f"ControlNet unit {index} image")
    if call.init_images:
        return call.init_images[0].convert("RGB")
    raise UserError("ControlNet is enabled but no input image is given.", code="controlnet_no_image",
                    hint=f"Give unit {index} an image, or disable it.")


def preprocessor(name: str) -> Preprocessor:
    found = BY_NAME.get(name) or BY_NAME.get((name or "none").lower())
    if found is None:
        usable = ", ".join(pre.name for pre in BY_NAME.values() if not pre.needs_weights)
        raise UserError(f"ControlNet preprocessor {name!r} not found.", code="controlnet_module_not_found",
                        hint=f"Preprocessors: {usable}.")
    return found


def pixel_perfect_resolution(image: Image.Image, width: int, height: int, resize_mode: str) -> int:
    """The processor resolution matching the generation size (sd-webui-controlnet's Pixel Perfect)."""
    ratios = (height / image.height, width / image.width)
    scale = min(ratios) if resize_mode == "Resize and Fill" else max(ratios)
    return round(scale * min(image.height, image.width))


def fit(image: Image.Image, width: int, height: int, mode: str) -> Image.Image:
    """The detected map at the generation size: Just Resize / Crop and Resize / Resize and Fill."""
    if mode == "Just Resize" or image.size == (width, height):
        return image.resize((width, height), Image.Resampling.LANCZOS)
    scale = (max if mode == "Crop and Resize" else min)(width / image.width, height / image.height)
    resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                           Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(resized, ((width - resized.width) // 2, (height - resized.height) // 2))
    return canvas


def detect(pre: Preprocessor, image: Image.Image, resolution: int, a: float, b: float) -> Image.Image:
    try:
        return pre.run(image, resolution, a, b)
    except LookupError:
        raise UserError(f"The {pre.name} preprocessor needs annotator weights, which sdweb cannot run yet.",
                        code="controlnet_module_unavailable",
                        hint="Preprocess the image elsewhere and send it with module 'none'.") from None


def thresholds(pre: Preprocessor, unit: UnitSettings) -> tuple[float, float]:
    a = unit.threshold_a if unit.threshold_a >= 0 or pre.threshold_a is None else pre.threshold_a.value
    b = unit.threshold_b if unit.threshold_b >= 0 or pre.threshold_b is None else pre.threshold_b.value
    return float(a), float(b)


def build_control(unit: UnitSettings, index: int, call: SamplingCall, models: ControlNetModels
                  ) -> tuple[ControlUnit, Image.Image, str]:
    """(the ControlUnit for the call, the detected map, the infotext value) for one enabled unit."""
    item = models.find(unit.model)
    model_kind = call.capabilities
    if not model_kind.controlnet:
        raise UserError(f"ControlNet does not apply to {model_kind.label} checkpoints yet.",
                        code="unsupported_for_model", hint="Turn the ControlNet units off for this checkpoint.")
    family, model = models.load(item, call.device, call.dtype)
    if family != model_kind.compatible_with:
        raise UserError(f"ControlNet model {item.title} is for {family.upper()}, but the checkpoint is "
                        f"{model_kind.label}.", code="controlnet_wrong_family",
                        hint="Choose a ControlNet model made for this checkpoint's family.")
    pre = preprocessor(unit.module)
    image = unit_image(unit, call, index)
    if unit.pixel_perfect:
        resolution = pixel_perfect_resolution(image, call.width, call.height, unit.resize_mode)
    else:
        resolution = unit.processor_res if unit.processor_res > 0 else pre.resolution
    a, b = thresholds(pre, unit)
    detected = detect(pre, image, resolution, a, b)
    control = ControlUnit(model=model, image=fit(detected.convert("RGB"), call.width, call.height,
                                                 unit.resize_mode),
                          weight=unit.weight, guidance_start=unit.guidance_start, guidance_end=unit.guidance_end,
                          control_mode=unit.control_mode)
    return control, detected, unit.infotext(item.title, resolution, a, b)


def cached(store: dict[str, Any], key: str, make: Any) -> Any:
    if key not in store:
        store[key] = make()
    return store[key]
