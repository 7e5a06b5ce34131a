"""Typed generation requests shared by the UI and the API (A1111's parameter names, UI defaults).

The A1111 API adapter keeps its own wire schemas (with the API's odd defaults) and converts to these.
Every numeric field has bounds; a value out of range fails validation with a message naming the field.
"""

from __future__ import annotations

from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sdweb.core.limits import MAX_PROMPT_CHARS

MAX_SIDE = 4096
MAX_BATCH_SIZE = 64
MAX_BATCH_COUNT = 1000
MAX_SEED = 2**64 - 1


def _multiple_of_8(name: str, value: int) -> int:
    if value % 8:
        raise ValueError(f"{name} must be a multiple of 8 (got {value}); try {value - value % 8} or "
                         f"{value - value % 8 + 8}")
    return value


class GenerationRequest(BaseModel):
    """Fields common to txt2img and img2img."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_assignment=True)

    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    styles: list[str] = Field(default_factory=list)
    seed: int = Field(-1, ge=-1, le=MAX_SEED)
    subseed: int = Field(-1, ge=-1, le=MAX_SEED)
    subseed_strength: float = Field(0.0, ge=0.0, le=1.0)
    seed_resize_from_w: int = Field(-1, ge=-1, le=MAX_SIDE)
    seed_resize_from_h: int = Field(-1, ge=-1, le=MAX_SIDE)
    sampler_name: str = "DPM++ 2M"
    scheduler: str = "Automatic"
    batch_size: int = Field(1, ge=1, le=MAX_BATCH_SIZE)
    n_iter: int = Field(1, ge=1, le=MAX_BATCH_COUNT)
    steps: int = Field(20, ge=1, le=150)
    cfg_scale: float = Field(7.0, ge=0.0, le=100.0)
    distilled_cfg_scale: float = Field(3.5, ge=0.0, le=100.0)  # models with guidance distilled in (Forge's)
    width: int = Field(512, ge=64, le=MAX_SIDE)
    height: int = Field(512, ge=64, le=MAX_SIDE)
    restore_faces: bool = False
    tiling: bool = False
    eta: float | None = Field(None, ge=0.0, le=1.0)
    s_min_uncond: float | None = Field(None, ge=0.0, le=100.0)
    s_churn: float | None = Field(None, ge=0.0, le=100.0)
    s_tmax: float | None = Field(None, ge=0.0, le=1000.0)
    s_tmin: float | None = Field(None, ge=0.0, le=1000.0)
    s_noise: float | None = Field(None, ge=0.0, le=2.0)
    override_settings: dict[str, Any] = Field(default_factory=dict)
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = Field(None, ge=0.0, le=1.0)
    disable_extra_networks: bool = False
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    script_name: str | None = None
    script_args: list[Any] = Field(default_factory=list)
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)

    @field_validator("width", "height")
    @classmethod
    def _check_size(cls, value: int, info) -> int:
        return _multiple_of_8(info.field_name, value)

    @field_validator("seed_resize_from_w", "seed_resize_from_h")
    @classmethod
    def _check_seed_resize(cls, value: int) -> int:
        return -1 if value <= 0 else value

    @property
    def total_images(self) -> int:
        return self.batch_size * self.n_iter


class Txt2ImgRequest(GenerationRequest):
    enable_hr: bool = False
    denoising_strength: float = Field(0.7, ge=0.0, le=1.0)
    hr_scale: float = Field(2.0, ge=1.0, le=8.0)
    hr_upscaler: str = "Latent"
    hr_second_pass_steps: int = Field(0, ge=0, le=150)
    hr_resize_x: int = Field(0, ge=0, le=MAX_SIDE)
    hr_resize_y: int = Field(0, ge=0, le=MAX_SIDE)
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    hr_negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)

    @model_validator(mode="after")
    def _check_hires_size(self) -> Txt2ImgRequest:
        if self.enable_hr:
            width, height = self.hires_target_size()
            if width > MAX_SIDE or height > MAX_SIDE:
                raise ValueError(f"hires fix would make a {width}x{height} image; the limit is "
                                 f"{MAX_SIDE}x{MAX_SIDE}: lower hr_scale or hr_resize_x/hr_resize_y")
        return self

    def hires_target_size(self) -> tuple[int, int]:
        """A1111's rule: scale, or resize-to with one side 0 meaning keep the aspect ratio."""
        if self.hr_resize_x == 0 and self.hr_resize_y == 0:
            return int(self.width * self.hr_scale), int(self.height * self.hr_scale)
        if self.hr_resize_y == 0:
            return self.hr_resize_x, self.hr_resize_x * self.height // self.width
        if self.hr_resize_x == 0:
            return self.hr_resize_y * self.width // self.height, self.hr_resize_y
        return self.hr_resize_x, self.hr_resize_y


class Img2ImgRequest(GenerationRequest):
    init_images: list[Image.Image] = Field(default_factory=list)
    resize_mode: int = Field(0, ge=0, le=3)
    denoising_strength: float = Field(0.75, ge=0.0, le=1.0)
    image_cfg_scale: float | None = Field(None, ge=0.0, le=100.0)
    mask: Image.Image | None = None
    mask_blur_x: int = Field(4, ge=0, le=256)
    mask_blur_y: int = Field(4, ge=0, le=256)
    mask_round: bool = True
    inpainting_fill: int = Field(1, ge=0, le=3)
    inpaint_full_res: bool = False
    inpaint_full_res_padding: int = Field(32, ge=0, le=1024)
    inpainting_mask_invert: int = Field(0, ge=0, le=1)
    initial_noise_multiplier: float | None = Field(None, ge=0.0, le=2.0)

    @model_validator(mode="after")
    def _check_images(self) -> Img2ImgRequest:
        if not self.init_images:
            raise ValueError("init_images: img2img needs at least one input image")
        if len(self.init_images) > self.batch_size and len(self.init_images) > 1:
            raise ValueError(f"init_images: {len(self.init_images)} images given but batch_size is "
                             f"{self.batch_size}; send at most batch_size images")
        return self
