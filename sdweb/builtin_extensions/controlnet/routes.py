"""sd-webui-controlnet's HTTP routes (API version 3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from sdweb.builtin_extensions.controlnet.control import detect, preprocessor, thresholds
from sdweb.builtin_extensions.controlnet.models import ControlNetModels
from sdweb.builtin_extensions.controlnet.preprocessors import PREPROCESSORS
from sdweb.builtin_extensions.controlnet.units import UnitSettings
from sdweb.extensions.api import ExtensionContext, UserError, decode_image, encode_image

API_VERSION = 3


class DetectRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    controlnet_module: str = "none"
    controlnet_input_images: list[str] = []
    controlnet_images: list[str] = []  # webuiapi's name for the same field
    controlnet_processor_res: int = -1
    controlnet_threshold_a: float = -1
    controlnet_threshold_b: float = -1
    low_vram: bool = False


def _slider(slider: Any) -> dict[str, Any] | None:
    if slider is None:
        return None
    return {"name": slider.name, "value": slider.value, "min": slider.min, "max": slider.max, "step": slider.step}


def _error(message: str, status: int = 422) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": "ControlNetError", "detail": message})


def controlnet_router(context: ExtensionContext, models: ControlNetModels) -> APIRouter:
    router = APIRouter(prefix="/controlnet", tags=["ControlNet"])

    @router.get("/version")
    def version() -> dict[str, int]:
        return {"version": API_VERSION}

    @router.get("/model_list")
    def model_list(update: bool = True) -> dict[str, list[str]]:
        if update:
            models.refresh()
        return {"model_list": models.titles()[1:]}

    @router.get("/module_list")
    def module_list(alias_names: bool = False) -> dict[str, Any]:
        names = [pre.aliases[0] if alias_names and pre.aliases else pre.name for pre in PREPROCESSORS]
        detail = {pre.name: {"model_free": False,
                             "sliders": [s for s in (_slider(pre.threshold_a), _slider(pre.threshold_b)) if s]}
                  for pre in PREPROCESSORS}
        return {"module_list": names, "module_detail": detail}

    @router.get("/control_types")
    def control_types() -> dict[str, Any]:
        titles = models.titles()
        kinds = {"All": [pre.name for pre in PREPROCESSORS], "Canny": ["none", "canny", "invert"],
                 "Scribble": ["none", "scribble_xdog", "invert"], "Lineart": ["none", "lineart_standard", "invert"],
                 "Shuffle": ["none", "shuffle"], "Tile": ["none", "tile_resample", "blur_gaussian"]}
        result = {}
        for name, modules in kinds.items():
            key = name.lower()
            matching = ["None", *(t for t in titles[1:] if name == "All" or key in t.lower())]
            result[name] = {"module_list": modules, "model_list": matching, "default_option": modules[0],
                            "default_model": matching[1] if len(matching) > 1 and name != "All" else "None"}
        return {"control_types": result}

    @router.get("/settings")
    def settings() -> dict[str, int]:
        return {"control_net_unit_count": int(context.setting("control_net_unit_count", 3))}

    @router.post("/detect")
    def detect_route(request: DetectRequest) -> Any:
        images = request.controlnet_input_images or request.controlnet_images
        if not images:
            return _error("No image selected")
        try:
            pre = preprocessor(request.controlnet_module)
            unit = UnitSettings(threshold_a=request.controlnet_threshold_a,
                                threshold_b=request.controlnet_threshold_b)
            a, b = thresholds(pre, unit)
            resolution = request.controlnet_processor_res if request.controlnet_processor_res > 0 \
                else pre.resolution or 512
            results = [detect(pre, decode_image(data, f"controlnet_input_images[{i}]"), resolution, a, b)
                       for i, data in enumerate(images)]
        except UserError as error:
            return _error(f"{error.message} {error.hint}".strip())
        return {"images": [encode_image(image) for image in results], "info": "Success"}

    return router
