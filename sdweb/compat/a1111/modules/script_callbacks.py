"""A1111's `modules.script_callbacks`: the registration functions extensions call at import, mapped onto the
loading extension's sdweb `ExtensionContext` where sdweb has the same callback, kept for later otherwise.

Mapped (called by sdweb): on_app_started (demo is None), on_ui_tabs, on_model_loaded, on_before_image_saved,
on_image_saved. Called by this layer: on_ui_settings and on_before_ui (right after the extension's scripts are
imported), on_cfg_denoiser / on_cfg_denoised / on_cfg_after_cfg (once per sampling step, read-only: sdweb's
sampler does not expose A1111's tensors, so only x, the step counts and sigma None are set). Accepted and never
called: the rest (sdweb has no such event).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sdweb.compat.a1111.world import WORLD

log = logging.getLogger(__name__)


@dataclass
class ImageSaveParams:
    image: Any
    p: Any
    filename: str | None
    pnginfo: dict[str, Any] = field(default_factory=dict)


@dataclass
class CFGDenoiserParams:
    x: Any = None
    image_cond: Any = None
    sigma: Any = None
    sampling_step: int = 0
    total_sampling_steps: int = 0
    text_cond: Any = None
    text_uncond: Any = None
    denoiser: Any = None


@dataclass
class CFGDenoisedParams:
    x: Any = None
    sampling_step: int = 0
    total_sampling_steps: int = 0
    inner_model: Any = None


@dataclass
class AfterCFGCallbackParams:
    x: Any = None
    sampling_step: int = 0
    total_sampling_steps: int = 0


@dataclass
class UiTrainTabParams:
    txt2img_preview_params: Any = None


@dataclass
class ImageGridLoopParams:
    imgs: Any = None
    cols: int = 0
    rows: int = 0


@dataclass
class BeforeTokenCounterParams:
    prompt: str = ""
    steps: int = 0
    styles: list[str] = field(default_factory=list)
    is_positive: bool = True


@dataclass
class ExtraNoiseParams:
    noise: Any = None
    x: Any = None
    xi: Any = None


def _context() -> Any:
    loading = WORLD.loading
    return loading.context if loading is not None else None


def _later(kind: str, callback: Callable[..., Any]) -> None:
    """A callback this layer calls itself (see the module docstring)."""
    WORLD.callbacks.setdefault(kind, []).append(callback)


def on_app_started(callback: Callable[[Any, Any], None], *, name: str | None = None) -> None:
    context = _context()
    if context is not None:
        context.on_app_started(lambda app: callback(None, app))


def on_ui_tabs(callback: Callable[[], Any], *, name: str | None = None) -> None:
    def tabs() -> list[Any]:
        built = list(callback() or [])
        WORLD.ui_tab_ids.extend(str(item[2]) for item in built if isinstance(item, tuple | list) and len(item) > 2)
        return built

    context = _context()
    if context is not None:
        context.on_ui_tabs(tabs)


def on_model_loaded(callback: Callable[[Any], None], *, name: str | None = None) -> None:
    from sdweb.compat.a1111.modules.sd_models import SdModel

    def loaded(model: Any) -> None:
        WORLD.loaded_model = model
        callback(SdModel(model))

    context = _context()
    if context is not None:
        context.on_model_loaded(loaded)


def _image_params(params: Any) -> ImageSaveParams:
    from sdweb.compat.a1111.modules.processing import StableDiffusionProcessing

    p = StableDiffusionProcessing.wrap(params.p) if params.p is not None else None
    return ImageSaveParams(params.image, p, str(params.filename) if params.filename else None,
                           {"parameters": params.infotext})


def on_before_image_saved(callback: Callable[[ImageSaveParams], None], *, name: str | None = None) -> None:
    def before(params: Any) -> None:
        a1111 = _image_params(params)
        callback(a1111)
        params.image = a1111.image
        params.infotext = str(a1111.pnginfo.get("parameters", params.infotext))

    context = _context()
    if context is not None:
        context.on_before_image_saved(before)


def on_image_saved(callback: Callable[[ImageSaveParams], None], *, name: str | None = None) -> None:
    context = _context()
    if context is not None:
        context.on_image_saved(lambda params: callback(_image_params(params)))


def on_ui_settings(callback: Callable[[], None], *, name: str | None = None) -> None:
    _later("ui_settings", callback)


def on_before_ui(callback: Callable[[], None], *, name: str | None = None) -> None:
    _later("before_ui", callback)


def on_cfg_denoiser(callback: Callable[[CFGDenoiserParams], None], *, name: str | None = None) -> None:
    _later("cfg_denoiser", callback)


def on_cfg_denoised(callback: Callable[[CFGDenoisedParams], None], *, name: str | None = None) -> None:
    _later("cfg_denoised", callback)


def on_cfg_after_cfg(callback: Callable[[AfterCFGCallbackParams], None], *, name: str | None = None) -> None:
    _later("cfg_after_cfg", callback)


def _accepted(kind: str) -> Callable[..., None]:
    def register(callback: Callable[..., Any], *, name: str | None = None) -> None:
        _later(kind, callback)

    register.__name__ = f"on_{kind}"
    return register


on_script_unloaded = _accepted("script_unloaded")
on_infotext_pasted = _accepted("infotext_pasted")
on_before_reload = _accepted("before_reload")
on_ui_train_tabs = _accepted("ui_train_tabs")
on_before_component = _accepted("before_component")
on_after_component = _accepted("after_component")
on_image_grid = _accepted("image_grid")
on_list_optimizers = _accepted("list_optimizers")
on_list_unets = _accepted("list_unets")
on_before_token_counter = _accepted("before_token_counter")
on_extra_noise = _accepted("extra_noise")


def run_step_callbacks(step: int, total: int, latents: Any) -> None:
    """A1111's per-step denoiser callbacks, read-only, once per sampling step (a failing one is logged once)."""
    for kind, params in (("cfg_denoiser", CFGDenoiserParams(x=latents, sampling_step=step - 1,
                                                             total_sampling_steps=total)),
                         ("cfg_denoised", CFGDenoisedParams(x=latents, sampling_step=step - 1,
                                                            total_sampling_steps=total)),
                         ("cfg_after_cfg", AfterCFGCallbackParams(x=latents, sampling_step=step - 1,
                                                                  total_sampling_steps=total))):
        for callback in list(WORLD.callbacks.get(kind, [])):
            try:
                callback(params)
            except Exception:
                log.exception("An A1111 %s callback failed and is removed", kind)
                WORLD.callbacks[kind].remove(callback)


def remove_current_script_callbacks() -> None:
    return None


def remove_callbacks_for_function(callback: Callable[..., Any]) -> None:
    for registered in WORLD.callbacks.values():
        while callback in registered:
            registered.remove(callback)
