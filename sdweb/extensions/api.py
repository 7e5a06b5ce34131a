"""The sdweb extension API, version 1: the only module extensions import (see README.md beside it).

An extension's `scripts/*.py` defines `Script` subclasses (A1111's spirit: title, show, ui, hooks with the
UI's values as `*args`) and may define `setup(context: ExtensionContext)` to register callbacks: API routes
(`on_app_started`), UI tabs, settings, model-loaded and image-saved callbacks, upscalers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from sdweb.config.launch_options import LaunchOptions
from sdweb.core.errors import NotFoundError, UserError
from sdweb.generation.control import CONTROL_MODES
from sdweb.generation.hooks import ControlUnit, Processing, SamplingCall, StepInfo
from sdweb.generation.outpaint import DIRECTIONS as OUTPAINT_DIRECTIONS
from sdweb.generation.outpaint import outpaint_canvas
from sdweb.generation.seeds import resolve_seed
from sdweb.generation.service import GenerationResult
from sdweb.infotext import add_params as add_infotext_params
from sdweb.models.controlnet import load_controlnet
from sdweb.models.hashing import legacy_model_hash
from sdweb.outputs.grid import GridAnnotation, draw_grid_annotations, make_grid

API_VERSION = 1

__all__ = [
    "API_VERSION", "AlwaysVisible", "CONTROL_MODES", "ControlUnit", "ExtensionContext", "GenerationResult",
    "GridAnnotation", "ImageSaveParams", "NotFoundError", "OUTPAINT_DIRECTIONS", "OptionSpec", "Processing",
    "SamplingCall", "Script", "StepInfo", "UserError", "add_infotext_params", "decode_image", "draw_grid_annotations",
    "encode_image", "legacy_model_hash", "load_controlnet", "make_grid", "outpaint_canvas", "resolve_seed",
]

MAX_IMAGE_PIXELS = 8192 * 8192


def decode_image(data: str, field_name: str) -> Image.Image:
    """A base64 image (bare or with a data: prefix) as RGB; a UserError naming the field when it is not one."""
    import base64
    import binascii
    import io

    text = data.split(",", 1)[1] if data.strip().startswith("data:") and "," in data else data
    try:
        raw = base64.b64decode(text.strip(), validate=False)
        with Image.open(io.BytesIO(raw)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UserError(f"{field_name}: the image is {image.width}x{image.height}, too large.",
                                code="image_too_large")
            return image.convert("RGB")
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError) as error:
        raise UserError(f"{field_name} is not a valid base64 image: {error}", code="invalid_image",
                        hint="Send a PNG or JPEG as base64 (with or without a data: prefix).") from None


def encode_image(image: Image.Image) -> str:
    """Bare base64 PNG."""
    import base64
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class _AlwaysVisible:
    def __repr__(self) -> str:
        return "AlwaysVisible"


AlwaysVisible = _AlwaysVisible()  # show() returns this for always-on scripts (their own accordion)


class Script:
    """Subclass in an extension's scripts/*.py. Every hook gets `p` then the values of `ui()`'s components.

    `show(is_img2img)`: False (hidden), True (listed in the Script dropdown), or AlwaysVisible.
    A selectable script may implement `run(p, *args)` and call `p.process_images()` itself."""

    def title(self) -> str:
        raise NotImplementedError

    def show(self, is_img2img: bool) -> bool | _AlwaysVisible:
        return True

    def ui(self, is_img2img: bool) -> list[Any]:
        """Create Gradio components (inside the page being built); return the input components."""
        return []

    def api_defaults(self, is_img2img: bool) -> list[Any] | None:
        """The initial values of ui()'s components, without building them (None: build a throwaway ui() to
        read them). Lets an API job run without importing Gradio; must equal what ui() gives."""
        return None

    def before_process(self, p: Processing, *args: Any) -> None:
        """Before the model loads: change p.prompt, p.seed, p.width, p.override_settings, ..."""

    def process(self, p: Processing, *args: Any) -> None:
        """After the model is loaded (p.model), before prompts are encoded."""

    def process_batch(self, p: Processing, *args: Any) -> None:
        """Before each batch (p.batch_number, p.prompts, p.seeds, p.subseeds); setting p.prompt or
        p.negative_prompt here changes the prompt from this batch on."""

    def before_sampling(self, p: Processing, call: SamplingCall, *args: Any) -> None:
        """Before each pipeline call: e.g. `call.controlnets.append(ControlUnit(...))`."""

    def on_step(self, p: Processing, info: StepInfo, *args: Any) -> None:
        """After each sampling step."""

    def postprocess_image(self, p: Processing, image: Image.Image, *args: Any) -> Image.Image | None:
        """Each image before it is saved; return a replacement or None to keep it."""
        return None

    def extra_images(self, p: Processing, *args: Any) -> list[Image.Image]:
        """Images appended to the job's results (not saved), e.g. detected maps."""
        return []

    def postprocess(self, p: Processing, result: Any, *args: Any) -> None:
        """After everything: `result.images`, `result.infotexts`, `result.info` may be edited."""

    def run(self, p: Processing, *args: Any) -> Any:
        """Selectable scripts only: do the whole job (call p.process_images()); None = run normally."""
        return None

    def shown_in_ui(self) -> bool:
        """False keeps a selectable script out of the page's Script dropdown (API only)."""
        return True

    def per_image(self, *args: Any) -> bool:
        """An always-on script: True when, with these arguments, it leaves each image of a batch independent of
        the others (no per-batch or per-job state, no extra images), so sdweb may split a batch over several
        workers. False (the default) keeps the batch whole."""
        return False


@dataclass(frozen=True)
class OptionSpec:
    """A setting an extension adds (shown in Settings under `section`, validated like built-in ones)."""

    key: str
    default: Any
    label: str
    section: str
    kind: str | None = None  # bool / int / float / str / choice (from the default when None)
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    secret: bool = False  # a token or password: a password box in Settings, never returned by the options API
    # a folder or file path (where the extension reads or writes files): read-only on a server reachable from
    # other machines unless --enable-insecure-extension-access, like the built-in folder settings
    path: bool = False


@dataclass
class ImageSaveParams:
    image: Image.Image
    infotext: str
    p: Processing | None
    filename: Path | None = None  # set for on_image_saved


@dataclass
class Callbacks:
    app_started: list[Callable[[Any], None]] = field(default_factory=list)  # fn(fastapi_app)
    ui_tabs: list[Callable[[], list[tuple[Any, str, str]]]] = field(default_factory=list)
    model_loaded: list[Callable[[Any], None]] = field(default_factory=list)
    before_image_saved: list[Callable[[ImageSaveParams], None]] = field(default_factory=list)
    image_saved: list[Callable[[ImageSaveParams], None]] = field(default_factory=list)
    upscalers: list[Any] = field(default_factory=list)


class ExtensionContext:
    """Handed to an extension's `setup(context)`; what it registers is tied to that extension (and goes
    away with it when it is disabled)."""

    def __init__(self, name: str, path: Path, callbacks: Callbacks, options: list[OptionSpec],
                 paths: Any, launch_options: LaunchOptions, settings: Any,
                 refresh_models: Callable[[], None] | None = None, services: Any = None) -> None:
        self.name = name
        self.path = path
        self.paths = paths  # sdweb.config.paths.DataPaths: models folders, outputs, ...
        self.launch_options = launch_options  # the frozen command-line options (read-only)
        # sdweb.generation.script_services.ScriptServices: names of models, samplers, upscalers, styles (for
        # ui()); the same object is `p.services` in a job
        self.services = services
        self._settings = settings
        self._callbacks = callbacks
        self._options = options
        self._scripts: list[Script] = []
        self._refresh_models = refresh_models

    def refresh_models(self) -> None:
        """Rescan the model folders (after a download, say)."""
        if self._refresh_models is not None:
            self._refresh_models()

    def extension_access_refusal(self) -> str | None:
        """Why installing or downloading is refused on this server (exposed without
        --enable-insecure-extension-access), or None when it is allowed."""
        from sdweb.extensions.installer import exposure_refusal

        return exposure_refusal(self.launch_options)

    def setting(self, key: str, default: Any = None) -> Any:
        return self._settings.get(key, default)

    def settings_snapshot(self) -> dict[str, Any]:
        return self._settings.as_dict()

    def on_app_started(self, fn: Callable[[Any], None]) -> None:
        """fn(app): add FastAPI routes; they get the same authentication as /sdapi/v1."""
        self._callbacks.app_started.append(fn)

    def on_ui_tabs(self, fn: Callable[[], list[tuple[Any, str, str]]]) -> None:
        """fn() -> [(gr.Blocks, title, elem_id)]: extra top-level tabs."""
        self._callbacks.ui_tabs.append(fn)

    def on_model_loaded(self, fn: Callable[[Any], None]) -> None:
        self._callbacks.model_loaded.append(fn)

    def on_before_image_saved(self, fn: Callable[[ImageSaveParams], None]) -> None:
        """fn(params): may change params.image or params.infotext before the file is written."""
        self._callbacks.before_image_saved.append(fn)

    def on_image_saved(self, fn: Callable[[ImageSaveParams], None]) -> None:
        self._callbacks.image_saved.append(fn)

    def add_script(self, script: Script) -> None:
        """A Script instance built by setup() (for scripts that need the context); no-argument Script
        subclasses are found and built automatically."""
        self._scripts.append(script)

    def take_added_scripts(self) -> list[Script]:
        scripts, self._scripts = self._scripts, []
        return scripts

    def add_option(self, option: OptionSpec) -> None:
        self._options.append(option)

    def register_upscaler(self, upscaler: Any) -> None:
        """An upscaler kind for Extras and hires fix (see sdweb.postprocess.upscalers for the interface)."""
        self._callbacks.upscalers.append(upscaler)
