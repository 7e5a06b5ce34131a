"""The seams the generation service offers to scripts and extensions (A1111's Script hooks, typed).

The service calls a `JobHooks` object at fixed points of a job; the extension layer provides one bound to
the scripts a request asks for (`alwayson_scripts`, `script_name`). Without extensions the no-op
`NO_HOOKS` is used. Everything a hook may change is on the objects it receives: `Processing` (the job's
request and extra infotext), `SamplingCall` (the pipeline call about to run: ControlNet units go here).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from sdweb.core.requests import GenerationRequest
from sdweb.generation.jobs import JobContext
from sdweb.generation.seeds import resolve_seed
from sdweb.models.families import ModelCapabilities

_OWN_ATTRIBUTES = {"mode", "request", "extra_generation_params", "model", "notes", "batch_number",
                   "prompts", "seeds", "subseeds", "state", "scope"}


@dataclass(frozen=True)
class ScriptImage:
    """An image a script saves itself (a grid, a combined upscale), named like the job's own files."""

    image: Image.Image
    infotext: str
    seed: int
    grid: bool = False
    basename: str = ""  # A1111's file name prefix: "xyz_grid" -> xyz_grid-0000.png


@dataclass
class JobScope:
    """What a job's Processing and its copies share: how to run the job and save a script's images (set by the
    service), the job's progress and interrupt, how many runs a script plans (for the progress bar), the models
    the runs loaded (their LoRAs are switched off when the job ends) and the services scripts may call."""

    run: Callable[[Processing], Any]
    save: Callable[[Processing, ScriptImage], Path | None] | None = None
    context: JobContext | None = None
    services: Any = None
    planned_runs: int = 1
    runs_started: int = 0
    jobs_done: int = 0
    models: list[Any] = field(default_factory=list)


def _no_run(p: Processing) -> Any:
    raise RuntimeError("this Processing is not bound to a job")


class Processing:
    """A job as scripts see it (A1111's `p`): request fields read and written as attributes.

    `p.prompt = "..."` validates and sets the request's field (a bad value raises with the field's name);
    `p.extra_generation_params[key] = value` adds a key to every image's infotext. A selectable script's
    `run(p, ...)` may run the job several times: `p.copy()`, change the copy, `copy.process_images()`."""

    def __init__(self, mode: str, request: GenerationRequest, scope: JobScope | None = None) -> None:
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
        object.__setattr__(self, "scope", scope or JobScope(run=_no_run))

    @property
    def is_img2img(self) -> bool:
        return self.mode == "img2img"

    @property
    def services(self) -> Any:
        """sdweb.generation.script_services.ScriptServices: model names, upscaling, interrogation."""
        return self.scope.services

    @property
    def interrupted(self) -> bool:
        """The user pressed Interrupt: a script running several jobs stops before the next one."""
        return self.scope.context is not None and self.scope.context.interrupted

    def process_images(self) -> Any:
        """Run the job as this Processing now describes it; the GenerationResult."""
        return self.scope.run(self)

    def copy(self) -> Processing:
        """An independent copy of the job (its own request, lists and infotext keys) sharing the scope."""
        request = self.request
        changes = {name: list(value) if isinstance(value, list) else dict(value)
                   for name in ("styles", "override_settings", "script_args", "alwayson_scripts", "init_images")
                   if isinstance(value := getattr(request, name, None), list | dict)}
        copied = Processing(self.mode, request.model_copy(update=changes), self.scope)
        copied.extra_generation_params.update(self.extra_generation_params)
        copied.notes.extend(self.notes)
        return copied

    def fix_seed(self) -> None:
        """-1 seeds become fixed random ones (A1111's fix_seed), so every run of a script uses the same."""
        self.seed = resolve_seed(self.seed)
        self.subseed = resolve_seed(self.subseed)

    def plan_runs(self, count: int) -> None:
        """A script says how many times it will call process_images, so progress counts over all of them."""
        self.scope.planned_runs = max(1, int(count))

    def save_image(self, image: Image.Image, infotext: str, basename: str = "", seed: int | None = None,
                   grid: bool = False) -> Path | None:
        """Save a script's own image (a grid, a combined upscale) as the job's settings say; the path or None
        when saving is off (an API call without save_images, `grid_save` off)."""
        if self.scope.save is None:
            return None
        first_seed = seed if seed is not None else self.seed
        return self.scope.save(self, ScriptImage(image, infotext, first_seed, grid, basename))

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
    capabilities: ModelCapabilities  # what the loaded model can do (the family record's facts)
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

    @property
    def family(self) -> str:
        """Deprecated (one version): the model's compatibility key; read ``capabilities`` instead."""
        warnings.warn("SamplingCall.family is deprecated: use SamplingCall.capabilities (compatible_with, engine, "
                      "...)", DeprecationWarning, stacklevel=2)
        return self.capabilities.compatible_with


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
        """Before each batch (p.batch_number, p.prompts, p.seeds, p.subseeds). Setting p.prompt or
        p.negative_prompt here changes the prompt from this batch on (per-batch prompts, A1111's all_prompts)."""

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

    def runs_per_image(self, mode: str, request: GenerationRequest) -> bool:
        """True when these scripts leave a batch's images independent (the batch may be split over workers)."""
