"""A1111's wire shapes for the routes that do not generate (modules/api/models.py names and fields).

Responses are documented here so /docs and schema-driven clients see A1111's exact shapes; each model
allows extra keys, as later A1111 versions and extensions add some.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- errors --------------------------------------------------------------------------------------------
class ErrorResponse(_Open):
    """A1111's error body; sdweb adds `code` and `hint` for errors a user can fix."""

    error: str
    detail: Any = ""
    body: Any = ""
    errors: Any = ""
    code: str | None = None
    hint: str | None = None


class ValidationIssue(_Open):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(_Open):
    """FastAPI's own 422 body for a request that does not fit the schema (kept as A1111 keeps it)."""

    detail: list[ValidationIssue]


# -- images and progress -------------------------------------------------------------------------------
class PNGInfoRequest(_Request):
    image: str = Field(description="Base64 image, with or without a data: prefix.")


class PNGInfoResponse(_Open):
    info: str
    items: dict[str, Any]
    parameters: dict[str, Any]


class ProgressState(_Open):
    skipped: bool
    interrupted: bool
    stopping_generation: bool
    job: str
    job_count: int
    job_timestamp: str
    job_no: int
    sampling_step: int
    sampling_steps: int


class ProgressResponse(_Open):
    progress: float
    eta_relative: float
    state: ProgressState
    current_image: str | None = None
    textinfo: str | None = None


# -- lists -------------------------------------------------------------------------------------------------
class SamplerItem(_Open):
    name: str
    aliases: list[str]
    options: dict[str, str]


class SchedulerItem(_Open):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float | None = None
    need_inner_model: bool | None = None


class UpscalerItem(_Open):
    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = None


class LatentUpscalerModeItem(_Open):
    name: str


class SDModelItem(_Open):
    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SDVaeItem(_Open):
    model_name: str
    filename: str


class LoraItem(_Open):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any]


class HypernetworkItem(_Open):
    name: str
    path: str | None = None


class FaceRestorerItem(_Open):
    name: str
    cmd_dir: str | None = None


class RealesrganItem(_Open):
    name: str
    path: str | None = None
    scale: int | None = None


class PromptStyleItem(_Open):
    name: str
    prompt: str | None = None
    negative_prompt: str | None = None


class EmbeddingItem(_Open):
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    shape: int | None = None
    vectors: int | None = None


class EmbeddingsResponse(_Open):
    loaded: dict[str, EmbeddingItem]
    skipped: dict[str, EmbeddingItem]


class ScriptsList(_Open):
    txt2img: list[str]
    img2img: list[str]


class ScriptArg(_Open):
    label: str | None = None
    value: Any = None
    minimum: Any = None
    maximum: Any = None
    step: Any = None
    choices: list[Any] | None = None


class ScriptInfoItem(_Open):
    name: str | None = None
    is_alwayson: bool | None = None
    is_img2img: bool | None = None
    args: list[ScriptArg]


class ExtensionItem(_Open):
    name: str
    remote: str
    branch: str
    commit_hash: str
    version: str
    commit_date: int | str
    enabled: bool


# -- postprocessing (extras, interrogate) ---------------------------------------------------------------
class ExtrasBaseWire(_Request):
    resize_mode: Literal[0, 1] = 0
    show_extras_results: bool = True
    gfpgan_visibility: float = Field(0.0, ge=0.0, le=1.0)
    codeformer_visibility: float = Field(0.0, ge=0.0, le=1.0)
    codeformer_weight: float = Field(0.0, ge=0.0, le=1.0)
    upscaling_resize: float = Field(2.0, gt=0.0, le=8.0)
    upscaling_resize_w: int = Field(512, ge=1, le=16384)
    upscaling_resize_h: int = Field(512, ge=1, le=16384)
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = Field(0.0, ge=0.0, le=1.0)
    upscale_first: bool = False


class ExtrasSingleImageWire(ExtrasBaseWire):
    image: str = Field("", description="Base64 image, with or without a data: prefix.")


class FileData(_Request):
    data: str = Field(description="Base64 image")
    name: str = Field("", description="File name")


class ExtrasBatchImagesWire(ExtrasBaseWire):
    imageList: list[FileData] = Field(default_factory=list, max_length=256)  # noqa: N815 (A1111's name)


class ExtrasSingleImageResponse(_Open):
    html_info: str
    image: str | None = None


class ExtrasBatchImagesResponse(_Open):
    html_info: str
    images: list[str]


class InterrogateWire(_Request):
    image: str = Field("", description="Base64 image")
    model: str = "clip"


class InterrogateResponse(_Open):
    caption: str | None = None
