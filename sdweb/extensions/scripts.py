"""Scripts bound to a job: which scripts run (always-on ones, the selected one), with which arguments, and
the generation hooks that call them (a failing script is logged and noted, never fatal to the queue).

Arguments follow A1111's API rules: each script's defaults are its UI components' initial values;
`alwayson_scripts: {"<title>": {"args": [...]}}` overwrites the first values (title case-insensitive);
`script_name` / `script_args` choose and fill a selectable script.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from sdweb.core.errors import NotFoundError, UserError
from sdweb.core.requests import GenerationRequest
from sdweb.extensions.api import AlwaysVisible, Callbacks, ImageSaveParams, Script
from sdweb.generation.hooks import JobHooks, Processing, SamplingCall, StepInfo

log = logging.getLogger(__name__)


def script_id(script: Script) -> str:
    return script.title().strip().lower()


def default_args(script: Script, is_img2img: bool) -> list[Any]:
    """The initial values of the script's UI components: its api_defaults(), else read from a throwaway Blocks."""
    declared = script.api_defaults(is_img2img)
    if declared is not None:
        return list(declared)
    import gradio as gr

    with gr.Blocks():
        components = script.ui(is_img2img) or []
    return [getattr(component, "value", None) for component in components]


@dataclass
class BoundScript:
    script: Script
    args: list[Any]
    extension: str

    @property
    def title(self) -> str:
        return self.script.title()


class ScriptHooks(JobHooks):
    """The generation hooks of one job's scripts, in order (always-on first, then the selected one)."""

    def __init__(self, scripts: list[BoundScript], selected: BoundScript | None, callbacks: Callbacks) -> None:
        self.scripts = scripts
        self.selected = selected
        self.callbacks = callbacks

    def _each(self, hook: str, p: Processing, *extra: Any) -> list[Any]:
        results = []
        for bound in self.scripts:
            method: Callable[..., Any] = getattr(bound.script, hook)
            try:
                results.append(method(p, *extra, *bound.args))
            except UserError:
                raise
            except Exception as error:  # a broken script must not break the job
                log.exception("Script %r (extension %s) failed in %s", bound.title, bound.extension, hook)
                p.notes.append(f"Script {bound.title!r} failed in {hook}: {type(error).__name__}: {error}")
                results.append(None)
        return results

    def before_process(self, p: Processing) -> None:
        self._each("before_process", p)

    def process(self, p: Processing) -> None:
        self._each("process", p)

    def process_batch(self, p: Processing) -> None:
        self._each("process_batch", p)

    def before_sampling(self, p: Processing, call: SamplingCall) -> None:
        self._each("before_sampling", p, call)

    def on_step(self, p: Processing, info: StepInfo) -> None:
        self._each("on_step", p, info)

    def postprocess_image(self, p: Processing, image: Image.Image) -> Image.Image:
        for bound in self.scripts:
            try:
                replaced = bound.script.postprocess_image(p, image, *bound.args)
            except UserError:
                raise
            except Exception as error:
                log.exception("Script %r failed in postprocess_image", bound.title)
                p.notes.append(f"Script {bound.title!r} failed in postprocess_image: {error}")
                continue
            if isinstance(replaced, Image.Image):
                image = replaced
        return image

    def extra_images(self, p: Processing) -> list[Image.Image]:
        images: list[Image.Image] = []
        for found in self._each("extra_images", p):
            images.extend(image for image in (found or []) if isinstance(image, Image.Image))
        return images

    def postprocess(self, p: Processing, result: Any) -> None:
        self._each("postprocess", p, result)

    def before_image_saved(self, p: Processing, image: Image.Image, infotext: str) -> tuple[Image.Image, str]:
        params = ImageSaveParams(image=image, infotext=infotext, p=p)
        for fn in self.callbacks.before_image_saved:
            _call_callback(fn, params, p)
        return params.image, params.infotext

    def image_saved(self, p: Processing, image: Image.Image, infotext: str, path: Any) -> None:
        params = ImageSaveParams(image=image, infotext=infotext, p=p, filename=path)
        for fn in self.callbacks.image_saved:
            _call_callback(fn, params, p)

    def run_selected(self, p: Processing) -> Any:
        if self.selected is None:
            return None
        bound = self.selected
        try:
            return bound.script.run(p, *bound.args)
        except UserError:
            raise
        except Exception as error:  # a broken script fails its job with its name, never as an anonymous 500
            log.exception("Script %r (extension %s) failed in run", bound.title, bound.extension)
            raise UserError(f"Script {bound.title!r} (extension {bound.extension}) failed: {type(error).__name__}: "
                            f"{error}", code="script_failed",
                            hint="The server log has the traceback; update or disable the extension.") from error


def _call_callback(fn: Callable[[ImageSaveParams], None], params: ImageSaveParams, p: Processing) -> None:
    try:
        fn(params)
    except Exception as error:
        log.exception("Image-saved callback %r failed", fn)
        p.notes.append(f"An extension's image callback failed: {error}")


def _per_image(bound: BoundScript) -> bool:
    try:
        return bool(bound.script.per_image(*bound.args))
    except Exception:  # a script that cannot tell is taken to act on the whole batch
        log.exception("Script %r: per_image() failed", bound.title)
        return False


@dataclass
class LoadedScript:
    script: Script
    extension: str


class ScriptRunner:
    """The loaded scripts; `bind` gives a job its hooks (the generation service's HookProvider)."""

    def __init__(self, scripts: list[LoadedScript], callbacks: Callbacks) -> None:
        self.scripts = scripts
        self.callbacks = callbacks
        self._defaults: dict[tuple[int, bool], list[Any]] = {}

    def visible(self, is_img2img: bool) -> tuple[list[LoadedScript], list[LoadedScript]]:
        """(always-on scripts, selectable scripts) for a tab; a script whose show() fails is skipped."""
        always, selectable = [], []
        for loaded in self.scripts:
            try:
                shown = loaded.script.show(is_img2img)
            except Exception:
                log.exception("Script %r: show() failed", loaded.script)
                continue
            if shown is AlwaysVisible:
                always.append(loaded)
            elif shown:
                selectable.append(loaded)
        return always, selectable

    def defaults(self, loaded: LoadedScript, is_img2img: bool) -> list[Any]:
        key = (id(loaded.script), is_img2img)
        if key not in self._defaults:
            try:
                self._defaults[key] = default_args(loaded.script, is_img2img)
            except Exception:
                log.exception("Script %r: ui() failed; it runs without arguments", loaded.script.title())
                self._defaults[key] = []
        return list(self._defaults[key])

    def runs_per_image(self, mode: str, request: GenerationRequest) -> bool:
        """True when this request's scripts leave each image of a batch independent, so the batch may be split
        over workers: no selected script, every always-on script says so for its arguments (Script.per_image),
        and no image-saved callbacks (the head saves a split batch without them)."""
        if self.callbacks.before_image_saved or self.callbacks.image_saved:
            return False
        try:
            hooks = self.bind(mode, request)
        except UserError:  # an unknown script: the job runs whole and says so
            return False
        return hooks.selected is None and all(_per_image(bound) for bound in hooks.scripts)

    def bind(self, mode: str, request: GenerationRequest) -> ScriptHooks:
        is_img2img = mode == "img2img"
        always, selectable = self.visible(is_img2img)
        given = {str(title).strip().lower(): value for title, value in (request.alwayson_scripts or {}).items()}
        bound = []
        for loaded in always:
            args = self.defaults(loaded, is_img2img)
            entry = given.get(script_id(loaded.script))
            values = entry.get("args", []) if isinstance(entry, dict) else entry if isinstance(entry, list) else []
            args[:len(values)] = list(values)
            bound.append(BoundScript(loaded.script, args, loaded.extension))
        selected = self._selected(request, selectable, is_img2img)
        if selected is not None:
            bound.append(selected)
        return ScriptHooks(bound, selected, self.callbacks)

    def _selected(self, request: GenerationRequest, selectable: list[LoadedScript],
                  is_img2img: bool) -> BoundScript | None:
        name = (request.script_name or "").strip().lower()
        if not name or name == "none":
            return None
        for loaded in selectable:
            if script_id(loaded.script) == name:
                args = self.defaults(loaded, is_img2img)
                values = list(request.script_args or [])
                args[:len(values)] = values
                return BoundScript(loaded.script, args, loaded.extension)
        titles = ", ".join(script_id(loaded.script) for loaded in selectable) or "none"
        raise NotFoundError(f"Script {request.script_name!r} not found.", code="script_not_found",
                            hint=f"Selectable scripts for {'img2img' if is_img2img else 'txt2img'}: {titles}.")
