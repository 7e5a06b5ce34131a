"""A1111 wire requests -> our typed requests (the API's defaults and quirks live here, nowhere else)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from sdweb.api.a1111.images import decode_image
from sdweb.api.a1111.schemas import GenerationWire, Img2ImgWire, Txt2ImgWire
from sdweb.api.a1111.seams import ScriptSelection
from sdweb.core.errors import NotFoundError
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.infotext import infotext_to_request_fields, parse_infotext
from sdweb.samplers.resolve import resolve_sampler

COMMON_FIELDS = ("prompt", "negative_prompt", "seed", "subseed", "subseed_strength", "seed_resize_from_w",
                 "seed_resize_from_h", "batch_size", "n_iter", "steps", "cfg_scale", "distilled_cfg_scale",
                 "width", "height", "eta",
                 "s_min_uncond", "s_churn", "s_tmax", "s_tmin", "s_noise", "refiner_checkpoint",
                 "refiner_switch_at", "disable_extra_networks")
HIRES_FIELDS = ("enable_hr", "hr_scale", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y",
                "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt")
IMG2IMG_FIELDS = ("resize_mode", "image_cfg_scale", "mask_blur_x", "mask_blur_y", "mask_round",
                  "inpainting_fill", "inpaint_full_res_padding", "inpainting_mask_invert",
                  "initial_noise_multiplier")


class RequestInvalid(Exception):
    """A wire request that does not make a valid typed request; `errors` in FastAPI's 422 shape."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("invalid request")
        self.errors = errors


def apply_infotext(wire: GenerationWire, mode: str, gpu_noise_source: str = "GPU") -> GenerationWire:
    """The `infotext` field fills every field the client did not send; settings go to override_settings.
    ``gpu_noise_source``: "NV" where there is no CUDA, so A1111's GPU noise is reproduced (no RNG key)."""
    if not wire.infotext:
        return wire
    fields, overrides = infotext_to_request_fields(parse_infotext(wire.infotext), mode=mode,
                                                   gpu_noise_source=gpu_noise_source)
    explicit = wire.model_fields_set
    updates = {key: value for key, value in fields.items() if key not in explicit and key in type(wire).model_fields}
    if overrides:
        updates["override_settings"] = {**overrides, **(wire.override_settings or {})}
    return wire.model_copy(update=updates)


def _common(wire: GenerationWire, settings: Mapping[str, Any], scripts: ScriptSelection,
            overrides: Mapping[str, Any]) -> dict[str, Any]:
    resolution = resolve_sampler(wire.sampler_name, wire.scheduler, wire.sampler_index, strict=True)
    values = {name: getattr(wire, name) for name in COMMON_FIELDS}
    values.update(
        script_name=scripts.script_name, script_args=scripts.script_args,
        alwayson_scripts=scripts.alwayson_scripts,
        sampler_name=resolution.sampler.name,
        scheduler=resolution.scheduler.label,
        styles=list(wire.styles or []),
        restore_faces=bool(settings.get("face_restoration")) if wire.restore_faces is None else wire.restore_faces,
        tiling=bool(settings.get("tiling")) if wire.tiling is None else wire.tiling,
        override_settings=dict(overrides),
        do_not_save_samples=wire.do_not_save_samples or not wire.save_images,
        do_not_save_grid=wire.do_not_save_grid or not wire.save_images,
    )
    return {key: value for key, value in values.items() if value is not None or key in ("eta",)}


def _build(model: type, values: dict[str, Any]) -> Any:
    try:
        return model(**values)
    except ValidationError as error:
        raise RequestInvalid([{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
                              for e in error.errors(include_url=False, include_context=False,
                                                    include_input=False)]) from error


def txt2img_request(wire: Txt2ImgWire, settings: Mapping[str, Any], scripts: ScriptSelection,
                    overrides: Mapping[str, Any]) -> Txt2ImgRequest:
    """The typed request for a wire request whose `infotext` was already applied (see apply_infotext)."""
    values = _common(wire, settings, scripts, overrides)
    values.update({name: getattr(wire, name) for name in HIRES_FIELDS})
    values["hr_upscaler"] = wire.hr_upscaler or "Latent"
    values["denoising_strength"] = 0.7 if wire.denoising_strength is None else wire.denoising_strength
    if wire.firstphase_width and wire.firstphase_height and wire.enable_hr:
        values.update(hr_resize_x=wire.width, hr_resize_y=wire.height, width=wire.firstphase_width,
                      height=wire.firstphase_height)
    return _build(Txt2ImgRequest, {k: v for k, v in values.items() if v is not None})


def img2img_request(wire: Img2ImgWire, settings: Mapping[str, Any], scripts: ScriptSelection,
                    overrides: Mapping[str, Any]) -> Img2ImgRequest:
    if not wire.init_images:
        raise NotFoundError("Init image not found", code="init_image_not_found",
                        hint="img2img needs init_images: a list of base64 images.")
    values = _common(wire, settings, scripts, overrides)
    values.update({name: getattr(wire, name) for name in IMG2IMG_FIELDS})
    values["init_images"] = [decode_image(data, f"init_images[{i}]") for i, data in enumerate(wire.init_images)]
    values["mask"] = decode_image(wire.mask, "mask") if wire.mask else None
    if "denoising_strength" in wire.model_fields_set:  # unset: the model's default (1.0 for editing models)
        values["denoising_strength"] = 0.75 if wire.denoising_strength is None else wire.denoising_strength
    values["inpaint_full_res"] = bool(wire.inpaint_full_res)
    if wire.mask_blur is not None:
        values["mask_blur_x"] = values["mask_blur_y"] = wire.mask_blur
    if len(values["init_images"]) > 1:
        values["batch_size"] = min(wire.batch_size, len(values["init_images"]))
    return _build(Img2ImgRequest, {k: v for k, v in values.items() if v is not None or k == "mask"})
