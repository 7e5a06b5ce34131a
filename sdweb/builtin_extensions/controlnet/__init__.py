"""Built-in ControlNet, on the extension API, compatible with sd-webui-controlnet's API.

`alwayson_scripts: {"controlnet": {"args": [unit, ...]}}` with its unit fields; routes /controlnet/version,
model_list, module_list, control_types, settings, detect. Models from models/ControlNet (+ --controlnet-dir).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdweb.builtin_extensions.controlnet.control import (
    build_control,
    cached,
    detect,
    preprocessor,
    thresholds,
)
from sdweb.builtin_extensions.controlnet.models import ControlNetModels
from sdweb.builtin_extensions.controlnet.units import UI_FIELDS, UNIT_DEFAULTS, units_from_args
from sdweb.extensions.api import (
    AlwaysVisible,
    ExtensionContext,
    OptionSpec,
    Processing,
    SamplingCall,
    Script,
)

SECTION = "ControlNet"
OPTIONS = (
    OptionSpec("control_net_unit_count", 3, "Multi-ControlNet: ControlNet unit number", SECTION, minimum=1,
               maximum=10),
    OptionSpec("control_net_model_cache_size", 2, "Model cache size", SECTION, minimum=1, maximum=10),
    OptionSpec("control_net_no_detectmap", False, "Do not append detected maps to the output", SECTION),
)


class ControlNet(Script):
    def __init__(self, context: ExtensionContext, models: ControlNetModels) -> None:
        self.context = context
        self.models = models

    def title(self) -> str:
        return "ControlNet"

    def show(self, is_img2img: bool) -> Any:
        return AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        from sdweb.builtin_extensions.controlnet.ui import unit_controls  # gradio: only when a page is built

        count = int(self.context.setting("control_net_unit_count", 3))
        return unit_controls(count, is_img2img, self.models)

    def api_defaults(self, is_img2img: bool) -> list[Any]:
        count = int(self.context.setting("control_net_unit_count", 3))
        return [UNIT_DEFAULTS[field] for _ in range(max(1, count)) for field in UI_FIELDS]

    def before_sampling(self, p: Processing, call: SamplingCall, *args: Any) -> None:
        units = [unit for unit in units_from_args(args) if unit.enabled]
        if call.is_hires_pass or not units:
            return
        detected_maps = p.state.setdefault("controlnet_maps", [])
        for index, unit in enumerate(units):
            if unit.model in ("", "None", None):
                p.notes.append(f"ControlNet unit {index} is enabled without a model: skipped.")
                continue
            key = f"controlnet-{index}-{call.width}x{call.height}"
            control, detected, info = cached(p.state, key, lambda u=unit, i=index: build_control(u, i, call,
                                                                                                  self.models))
            call.controlnets.append(control)
            p.extra_generation_params[f"ControlNet {index}"] = info
            if unit.save_detected_map and unit.module != "none" and detected not in detected_maps:
                detected_maps.append(detected)
        if getattr(p.request, "enable_hr", False):
            p.notes.append("ControlNet is applied to the first pass only (not to the hires pass).")

    def per_image(self, *args: Any) -> bool:
        """Idle without enabled units; enabled ones add their detected maps once per job (kept whole)."""
        return not any(unit.enabled for unit in units_from_args(args))

    def extra_images(self, p: Processing, *args: Any) -> list[Any]:
        if self.context.setting("control_net_no_detectmap", False):
            return []
        return list(p.state.get("controlnet_maps", []))


class ControlNetM2M(Script):
    """Listed so clients (webuiapi) detect ControlNet; video (m2m) is not supported."""

    def title(self) -> str:
        return "controlnet m2m"

    def shown_in_ui(self) -> bool:
        return False

    def run(self, p: Processing, *args: Any) -> Any:
        from sdweb.extensions.api import UserError

        raise UserError("ControlNet m2m (video) is not supported by sdweb.", code="unsupported_script")


def setup(context: ExtensionContext) -> None:
    for option in OPTIONS:
        context.add_option(option)
    paths = context.paths
    folders = [Path(paths.controlnet)] + ([Path(paths.extra_controlnet_dir)] if paths.extra_controlnet_dir else [])
    models = ControlNetModels(folders, Path(paths.cache_dir) / "configs",
                              cache_size=int(context.setting("control_net_model_cache_size", 2)),
                              allow_unsafe_pickle=context.launch_options.disable_safe_unpickle)
    context.add_script(ControlNet(context, models))
    context.add_script(ControlNetM2M())
    context.on_app_started(lambda app: _mount_routes(app, context, models))


def _mount_routes(app: Any, context: ExtensionContext, models: ControlNetModels) -> None:
    from sdweb.builtin_extensions.controlnet.routes import controlnet_router  # fastapi: only with a server

    app.include_router(controlnet_router(context, models))


__all__ = ["ControlNet", "ControlNetM2M", "detect", "preprocessor", "setup", "thresholds"]
