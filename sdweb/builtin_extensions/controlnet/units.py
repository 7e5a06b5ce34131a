"""sd-webui-controlnet's unit: API field names, aliases, string and legacy integer enums; infotext text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from sdweb.extensions.api import CONTROL_MODES, UserError

RESIZE_MODES = ("Just Resize", "Crop and Resize", "Resize and Fill")
OLD_RESIZE_NAMES = {"Inner Fit (Scale to Fit)": "Crop and Resize", "Outer Fit (Shrink to Fit)": "Resize and Fill",
                    "Scale to Fit (Inner Fit)": "Crop and Resize", "Envelope (Outer Fit)": "Resize and Fill"}
HR_OPTIONS = ("Both", "Low res only", "High res only")
ALIASES = {"lowvram": "low_vram", "guidance": "guidance_end", "mask_image": "mask", "input_image": "image"}


@dataclass
class UnitSettings:
    enabled: bool = False
    module: str = "none"
    model: str = "None"
    weight: float = 1.0
    image: Any = None  # base64 str, {"image", "mask"}, [image, mask], a PIL image (UI), or None
    mask: Any = None
    resize_mode: str = "Crop and Resize"
    low_vram: bool = False
    processor_res: int = -1
    threshold_a: float = -1.0
    threshold_b: float = -1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    pixel_perfect: bool = False
    control_mode: str = "Balanced"
    hr_option: str = "Both"
    save_detected_map: bool = True

    def infotext(self, model_title: str, resolution: int, a: float, b: float) -> str:
        """sd-webui-controlnet's `ControlNet <i>` value (quoted by the infotext writer)."""
        parts = {"Module": self.module, "Model": model_title, "Weight": self.weight, "Resize Mode": self.resize_mode,
                 "Processor Res": resolution, "Threshold A": a, "Threshold B": b,
                 "Guidance Start": self.guidance_start, "Guidance End": self.guidance_end,
                 "Pixel Perfect": self.pixel_perfect, "Control Mode": self.control_mode}
        return ", ".join(f"{key}: {value}" for key, value in parts.items())


_FIELDS = {field.name for field in fields(UnitSettings)}


def _enum(value: Any, choices: tuple[str, ...], field_name: str, old: dict[str, str] | None = None) -> str:
    if isinstance(value, bool):
        raise UserError(f"ControlNet {field_name}: {value!r} is not one of {', '.join(choices)}.",
                        code="invalid_controlnet_unit")
    if isinstance(value, int | float) and int(value) == value and 0 <= int(value) < len(choices):
        return choices[int(value)]
    if isinstance(value, str):
        if value in choices:
            return value
        if old and value in old:
            return old[value]
        lowered = {choice.lower(): choice for choice in choices}
        if value.lower() in lowered:
            return lowered[value.lower()]
    raise UserError(f"ControlNet {field_name}: {value!r} is not one of {', '.join(choices)}.",
                    code="invalid_controlnet_unit")


def _number(value: Any, field_name: str, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UserError(f"ControlNet {field_name} must be a number, got {value!r}.",
                        code="invalid_controlnet_unit") from None


def parse_unit(raw: Any, index: int) -> UnitSettings:
    """A unit from an API dict (unknown keys ignored) or an already-built UnitSettings."""
    if isinstance(raw, UnitSettings):
        return raw
    if not isinstance(raw, dict):
        raise UserError(f"ControlNet unit {index} must be an object, got {type(raw).__name__}.",
                        code="invalid_controlnet_unit")
    values = {ALIASES.get(key, key): value for key, value in raw.items()}
    unit = UnitSettings(**{key: value for key, value in values.items() if key in _FIELDS and value is not None})
    unit.enabled = bool(unit.enabled)
    unit.weight = _number(unit.weight, "weight", float)
    unit.processor_res = _number(unit.processor_res, "processor_res", int)
    unit.threshold_a = _number(unit.threshold_a, "threshold_a", float)
    unit.threshold_b = _number(unit.threshold_b, "threshold_b", float)
    unit.guidance_start = _number(unit.guidance_start, "guidance_start", float)
    unit.guidance_end = _number(unit.guidance_end, "guidance_end", float)
    unit.resize_mode = _enum(unit.resize_mode, RESIZE_MODES, "resize_mode", OLD_RESIZE_NAMES)
    unit.control_mode = _enum(unit.control_mode, CONTROL_MODES, "control_mode")
    unit.hr_option = _enum(unit.hr_option, HR_OPTIONS, "hr_option")
    if not 0.0 <= unit.guidance_start <= 1.0 or not 0.0 <= unit.guidance_end <= 1.0:
        raise UserError(f"ControlNet unit {index}: guidance_start and guidance_end must be within 0..1.",
                        code="invalid_controlnet_unit")
    if unit.guidance_start > unit.guidance_end:
        raise UserError(f"ControlNet unit {index}: guidance_start ({unit.guidance_start}) is after guidance_end "
                        f"({unit.guidance_end}).", code="invalid_controlnet_unit")
    if not 0.0 <= unit.weight <= 2.0:
        raise UserError(f"ControlNet unit {index}: weight must be within 0..2, got {unit.weight}.",
                        code="invalid_controlnet_unit")
    return unit


UI_FIELDS = ("enabled", "image", "low_vram", "pixel_perfect", "module", "model", "weight", "guidance_start",
             "guidance_end", "processor_res", "threshold_a", "threshold_b", "control_mode", "resize_mode")
# each field's initial value in the page (ui.py builds the components with these)
UNIT_DEFAULTS: dict[str, Any] = {
    "enabled": False, "image": None, "low_vram": False, "pixel_perfect": False, "module": "none", "model": "None",
    "weight": 1.0, "guidance_start": 0.0, "guidance_end": 1.0, "processor_res": -1, "threshold_a": -1,
    "threshold_b": -1, "control_mode": CONTROL_MODES[0], "resize_mode": "Crop and Resize",
}


def units_from_args(args: tuple[Any, ...] | list[Any]) -> list[UnitSettings]:
    """API args (a list of unit dicts) or the page's flat values (UI_FIELDS per unit) as units."""
    items = list(args)
    if any(isinstance(item, dict | UnitSettings) for item in items):
        return [parse_unit(item, index) for index, item in enumerate(items)
                if isinstance(item, dict | UnitSettings)]
    size = len(UI_FIELDS)
    units = []
    for start in range(0, len(items) - size + 1, size):
        chunk = dict(zip(UI_FIELDS, items[start:start + size], strict=True))
        units.append(parse_unit(chunk, start // size))
    return units


def unit_dict(unit: UnitSettings) -> dict[str, Any]:
    return asdict(unit)
