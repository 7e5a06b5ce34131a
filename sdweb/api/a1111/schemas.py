"""A1111's wire schemas for /sdapi/v1/txt2img and /img2img, with the API's own defaults and quirks.

Unknown fields are accepted and ignored (clients send fields from newer or older versions), and a JSON
`null` for a field that has a default means that default (A1111's fields are all optional). The schema
documents the bounds, so a value out of range is FastAPI's 422 naming the field; rules across fields
(multiples of 8, hires size) are checked where the typed request is built, also a 422 naming the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sdweb.core.limits import MAX_PROMPT_CHARS
from sdweb.core.requests import MAX_BATCH_COUNT, MAX_BATCH_SIZE, MAX_SEED, MAX_SIDE

_SIZE = {"multipleOf": 8}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {key: value for key, value in data.items()
                if not (value is None and key in fields and fields[key].default is not None)}


class GenerationWire(_Wire):
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    styles: list[str] | None = None
    seed: int = Field(-1, ge=-1, le=MAX_SEED)
    subseed: int = Field(-1, ge=-1, le=MAX_SEED)
    subseed_strength: float = Field(0.0, ge=0.0, le=1.0)
    seed_resize_from_h: int = Field(-1, ge=-1, le=MAX_SIDE)
    seed_resize_from_w: int = Field(-1, ge=-1, le=MAX_SIDE)
    sampler_name: str | None = None
    sampler_index: str = "Euler"
    scheduler: str | None = None
    batch_size: int = Field(1, ge=1, le=MAX_BATCH_SIZE)
    n_iter: int = Field(1, ge=1, le=MAX_BATCH_COUNT)
    steps: int = Field(50, ge=1, le=150)
    cfg_scale: float = Field(7.0, ge=0.0, le=100.0)
    distilled_cfg_scale: float = Field(3.5, ge=0.0, le=100.0)
    width: int = Field(512, ge=64, le=MAX_SIDE, json_schema_extra=_SIZE)
    height: int = Field(512, ge=64, le=MAX_SIDE, json_schema_extra=_SIZE)
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    eta: float | None = Field(None, ge=0.0, le=1.0)
    denoising_strength: float | None = Field(None, ge=0.0, le=1.0)
    s_min_uncond: float | None = Field(None, ge=0.0, le=100.0)
    s_churn: float | None = Field(None, ge=0.0, le=100.0)
    s_tmax: float | None = Field(None, ge=0.0, le=1000.0)
    s_tmin: float | None = Field(None, ge=0.0, le=1000.0)
    s_noise: float | None = Field(None, ge=0.0, le=2.0)
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = Field(None, ge=0.0, le=1.0)
    disable_extra_networks: bool = False
    firstpass_image: str | None = Field(None, description="Accepted and ignored, as in A1111.")
    comments: dict[str, Any] | None = None
    force_task_id: str | None = Field(None, max_length=200)
    script_name: str | None = Field(None, description="Title of a selectable script (GET /scripts).")
    script_args: list[Any] = Field(default_factory=list)
    alwayson_scripts: dict[str, Any] = Field(
        default_factory=dict, description='{"<always-on script title>": {"args": [...]}}')
    send_images: bool = True
    save_images: bool = False
    infotext: str | None = Field(None, description="Infotext whose values fill every field not sent.")


class Txt2ImgWire(GenerationWire):
    enable_hr: bool = False
    firstphase_width: int = Field(0, ge=0, le=MAX_SIDE)
    firstphase_height: int = Field(0, ge=0, le=MAX_SIDE)
    hr_scale: float = Field(2.0, ge=1.0, le=8.0)
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = Field(0, ge=0, le=150)
    hr_resize_x: int = Field(0, ge=0, le=MAX_SIDE)
    hr_resize_y: int = Field(0, ge=0, le=MAX_SIDE)
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    hr_negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)


class Img2ImgWire(GenerationWire):
    init_images: list[str] | None = Field(None, max_length=MAX_BATCH_SIZE,
                                          description="Base64 images, with or without a data: prefix.")
    resize_mode: int = Field(0, ge=0, le=3)
    denoising_strength: float | None = Field(0.75, ge=0.0, le=1.0)
    image_cfg_scale: float | None = Field(None, ge=0.0, le=100.0)
    mask: str | None = Field(None, description="Base64 mask; white is repainted.")
    mask_blur_x: int = Field(4, ge=0, le=256)
    mask_blur_y: int = Field(4, ge=0, le=256)
    mask_blur: int | None = Field(None, ge=0, le=256)
    mask_round: bool = True
    inpainting_fill: int = Field(0, ge=0, le=3)
    inpaint_full_res: bool | int = Field(True, ge=0, le=1)
    inpaint_full_res_padding: int = Field(0, ge=0, le=1024)
    inpainting_mask_invert: int = Field(0, ge=0, le=1)
    initial_noise_multiplier: float | None = Field(None, ge=0.0, le=2.0)
    latent_mask: str | None = Field(None, description="Accepted and ignored, as in A1111.")
    include_init_images: bool = False


class GenerationResponse(BaseModel):
    images: list[str] | None = Field(None, description="Bare base64 images (no data: prefix); grid first "
                                     "when one was made and save_images is set.")
    parameters: dict[str, Any]
    info: str = Field(description="A JSON string of A1111's Processed.js() keys.")
