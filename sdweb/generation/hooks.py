"""The seams the generation service offers to scripts and extensions (A1111's Script hooks, typed).

The service calls a `JobHooks` object at fixed points of a job; the extension layer provides one bound to
the scripts a request asks for (`alwayson_scripts`, `script_name`). Without extensions the no-op
`NO_HOOKS` is used. Everything a hook may change is on the objects it receives: `Processing` (the job's
request and extra infotext), `SamplingCall` (the pipeline call about to run: ControlNet units go here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from sdweb.core.requests import GenerationRequest

_OWN_ATTRIBUTES = {"mode", "request", "extra_generation_params", "model", "notes", "batch_number",
                   "prompts", "seeds", "subseeds", "state", "process_images"}


class Processing:
    """A job as scripts see it (A1111's `p`): request fields read and written as attributes.

    `p.prompt = "..."` validates and sets the request's field (a bad value raises with the field's name);
    `p.extra_generation_params[key] = value` adds a key to every image's infotext."""

    def __init__(self, mode: str, request: GenerationRequest) -> None:
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "request", request.model_copy(deep=False))
        object.__setattr__(self, "extra_generation_params", {})
        object.__setattr__(self, "model", None)  # the LoadedModel, once loaded
        object.__setattr__(self, "notes", [])
        object.__setattr__(self, "batch_number", 0)
        object.__setattr__(self, "prompts", [])
        object.__setattr__(self, "seeds", [])
        object.__setattr__(self, "subseeds", [])
        object.__setattr__(self, "state", {})  # free space for scripts, per job
        object.__setattr__(self, "process_images", None)  # set by the service: run the (changed) job

    @property
    def is_img2img(self) -> bool:
        return self.mode == "img2img"

    def __getattr__(self, name: str) -> Any:
        request = object.__getattribute__(self, "request")
        if name in type(request).model_fields:
            return getattr(request, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        elif name in type(self.request).model_fields:
            setattr(self.request, name, value)  # validate_assignment: bad values raise
        else:
            raise AttributeError(f"{name!r} is not a field of {type(self.request).__name__}")


@dataclass
class ControlUnit:
    """One ControlNet applied to a sampling call (diffusers `ControlNetModel` and its conditioning image)."""

    model: Any  # diffusers ControlNetModel on the pipeline's device and dtype
    image: Image.Image  # the preprocessed control image at the generation size
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    control_mode: str = "Balanced"  # or "My prompt is more important" / "ControlNet is more important"


@dataclass
class SamplingCall:
    """The pipeline call about to run for one batch (first pass; the hires pass gets its own)."""

    mode: str  # "txt2img" / "img2img" / "inpaint"
    family: str  # "sd1" / "sd2" / "sdxl"
    width: int
    height: int
    batch_size: int
    steps: int
    is_hires_pass: bool = False
    device: str = "cpu"  # where the UNet runs: ControlNets go there too, in `dtype`
    dtype: Any = None
    init_images: list[Image.Image] = field(default_factory=list)  # img2img / inpaint input (resized)
    mask: Image.Image | None = None
    controlnets: list[ControlUnit] = field(default_factory=list)


@dataclass
class StepInfo:
    step: int  # 1-based steps done
    total: int
    latents: Any


class JobHooks:
    """No-op hooks; the extension layer subclasses this for a job's scripts."""

    def before_process(self, p: Processing) -> None:
        """Before the model loads: change the request (prompt, seed, size, override_settings...)."""

    def process(self, p: Processing) -> None:
        """After the model is loaded (p.model), before prompts are encoded."""

    def process_batch(self, p: Processing) -> None:
        """Before each batch (p.batch_number, p.prompts, p.seeds, p.subseeds)."""

    def before_sampling(self, p: Processing, call: SamplingCall) -> None:
        """Just before each pipeline call: add ControlNet units, inspect the size."""

    def on_step(self, p: Processing, info: StepInfo) -> None:
        """After each sampling step (A1111's cfg_denoiser callbacks, read-only here)."""

    def postprocess_image(self, p: Processing, image: Image.Image) -> Image.Image:
        """Each decoded image before saving; return it, changed or not."""
        return image

    def extra_images(self, p: Processing) -> list[Image.Image]:
        """Images to append to the result after the batch images (e.g. ControlNet's detected maps)."""
        return []

    def postprocess(self, p: Processing, result: Any) -> None:
        """After everything (the GenerationResult): edit infotexts, append images."""

    def before_image_saved(self, p: Processing, image: Image.Image, infotext: str) -> tuple[Image.Image, str]:
        return image, infotext

    def image_saved(self, p: Processing, image: Image.Image, infotext: str, path: Any) -> None:
        """After an image file was written."""

    def run_selected(self, p: Processing) -> Any:
        """A selected script that does the whole job returns its result here (it calls p.process_images())."""
        return None


NO_HOOKS = JobHooks()


class HookProvider(Protocol):
    def bind(self, mode: str, request: GenerationRequest) -> JobHooks:
        """The hooks of the scripts this request asks for (always-on ones included)."""
