"""The X/Y/Z plot's axes: what each one sets on a job, how its legend reads, which values it accepts.

API clients name an axis by its index in A1111's axis list as filtered for the tab (`x_type: 4` is Steps in
both tabs); the page and sdweb's own clients may give its label. A1111's whole list is kept for those
indexes; the axes sdweb cannot apply (their setting does nothing here) answer with a clear message instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sdweb.builtin_scripts.common.elem import tab_of
from sdweb.extensions.api import Processing, UserError

# A1111 1.10's list (scripts/xyz_grid.py), in order; the tab an axis is limited to ("" = both).
A1111_AXES: tuple[tuple[str, str], ...] = (
    ("Nothing", ""), ("Seed", ""), ("Var. seed", ""), ("Var. strength", ""), ("Steps", ""),
    ("Hires steps", "txt2img"), ("CFG Scale", ""), ("Image CFG Scale", "img2img"), ("Prompt S/R", ""),
    ("Prompt order", ""), ("Sampler", "txt2img"), ("Hires sampler", "txt2img"), ("Sampler", "img2img"),
    ("Checkpoint name", ""), ("Negative Guidance minimum sigma", ""), ("Sigma Churn", ""), ("Sigma min", ""),
    ("Sigma max", ""), ("Sigma noise", ""), ("Schedule type", ""), ("Schedule min sigma", ""),
    ("Schedule max sigma", ""), ("Schedule rho", ""), ("Beta schedule alpha", ""), ("Beta schedule beta", ""),
    ("Eta", ""), ("Clip skip", ""), ("Denoising", ""), ("Initial noise multiplier", ""), ("Extra noise", ""),
    ("Hires upscaler", "txt2img"), ("Cond. Image Mask Weight", "img2img"), ("VAE", ""), ("Styles", ""),
    ("UniPC Order", ""), ("Face restore", ""), ("Token merging ratio", ""), ("Token merging ratio high-res", ""),
    ("Always discard next-to-last sigma", ""), ("SGM noise multiplier", ""), ("Refiner checkpoint", ""),
    ("Refiner switch at", ""), ("RNG source", ""), ("FP8 mode", ""), ("Size", ""),
    # Forge's, after A1111's (so A1111 clients' axis indexes stay): flow models' guidance and shift
    ("Distilled CFG Scale", ""), ("Shift", ""),
)

Apply = Callable[[Processing, Any, Sequence[Any]], None]
Check = Callable[[Any, list[Any], Processing], list[Any]]  # (services, values, p) -> canonical values


@dataclass(frozen=True)
class Axis:
    label: str
    kind: str  # int / float / str / permutations (axis_values.parse_axis_values)
    apply: Apply
    legend: str = "label"  # label: "Steps: 20"; value: "20"; join: "a, b"; basename: file name only
    choices: Callable[[Any], list[str]] | None = None  # services -> the values the page offers
    check: Check | None = None  # runs before the first image: unknown names fail the job at once
    cost: float = 0.0  # the costliest axis changes least often (a checkpoint load per value)

    def legend_text(self, value: Any) -> str:
        if self.label == "Nothing":
            return ""
        if isinstance(value, float):
            value = round(value, 8)
        if self.legend == "join":
            return ", ".join(value)
        if self.legend == "basename":
            return os.path.basename(str(value))
        return str(value) if self.legend == "value" else f"{self.label}: {value}"


# -- how values change a job ---------------------------------------------------------------------------------
def _set(name: str) -> Apply:
    def apply(p: Processing, value: Any, values: Sequence[Any]) -> None:
        setattr(p, name, value)

    return apply


def _override(key: str) -> Apply:
    def apply(p: Processing, value: Any, values: Sequence[Any]) -> None:
        p.override_settings = {**p.override_settings, key: value}

    return apply


def _nothing(p: Processing, value: Any, values: Sequence[Any]) -> None:
    return None


def _prompt_sr(p: Processing, value: Any, values: Sequence[Any]) -> None:
    p.prompt = p.prompt.replace(values[0], value)
    p.negative_prompt = p.negative_prompt.replace(values[0], value)


def _prompt_order(p: Processing, value: Any, values: Sequence[Any]) -> None:
    """The tokens (found in the prompt) put in this order, in the places the tokens held."""
    rest, parts = p.prompt, []
    for token in sorted(value, key=lambda token: p.prompt.find(token)):
        index = rest.find(token)
        parts.append(rest[:index])
        rest = rest[index + len(token):]
    p.prompt = "".join(part + token for part, token in zip(parts, value, strict=True)) + rest


def _styles(p: Processing, value: Any, values: Sequence[Any]) -> None:
    p.styles = [*p.styles, *(name.strip() for name in str(value).split(",") if name.strip())]


def _size(p: Processing, value: Any, values: Sequence[Any]) -> None:
    width, _, height = str(value).lower().partition("x")
    p.width, p.height = int(width), int(height)


def _face_restore(p: Processing, value: Any, values: Sequence[Any]) -> None:
    choice = str(value).strip().lower()
    if choice in ("codeformer", "gfpgan"):
        p.override_settings = {**p.override_settings,
                               "face_restoration_model": "CodeFormer" if choice == "codeformer" else "GFPGAN"}
    p.restore_faces = choice in ("codeformer", "gfpgan", "true", "yes", "y", "1")


def _refiner(p: Processing, value: Any, values: Sequence[Any]) -> None:
    p.refiner_checkpoint = None if value in ("", "None") else value


# -- checks (before the first image) --------------------------------------------------------------------------
def _names(find: Callable[[Any, str], str | None], what: str, listing: Callable[[Any], list[str]],
           allow_none: bool = False) -> Check:
    def check(services: Any, values: list[Any], p: Processing) -> list[Any]:
        found = []
        for value in values:
            if allow_none and str(value).strip() in ("", "None", "none"):
                found.append("None")
                continue
            name = find(services, str(value))
            if name is None:
                raise UserError(f"X/Y/Z plot: unknown {what} {value!r}.", code="invalid_script_args",
                                hint=f"Use one of: {', '.join(listing(services)) or 'none found'}.")
            found.append(name)
        return found

    return check


def _in_list(listing: Callable[[Any], list[str]], what: str) -> Check:
    def find(services: Any, value: str) -> str | None:
        return next((name for name in listing(services) if name.casefold() == value.strip().casefold()), None)

    return _names(find, what, listing)


def _check_prompt_sr(services: Any, values: list[Any], p: Processing) -> list[Any]:
    if values and values[0] not in p.prompt and values[0] not in p.negative_prompt:
        raise UserError(f"Prompt S/R did not find {values[0]!r} in the prompt or negative prompt.",
                        code="invalid_script_args", hint="The first Prompt S/R value is the text to replace.")
    return values


def _check_prompt_order(services: Any, values: list[Any], p: Processing) -> list[Any]:
    missing = [token for token in (values[0] if values else ()) if token not in p.prompt]
    if missing:
        raise UserError(f"Prompt order: {missing[0]!r} is not in the prompt.", code="invalid_script_args")
    return values


def _check_sizes(services: Any, values: list[Any], p: Processing) -> list[Any]:
    for value in values:
        width, separator, height = str(value).lower().partition("x")
        if not separator or not width.strip().isdigit() or not height.strip().isdigit():
            raise UserError(f"X/Y/Z plot: size {value!r} is not WIDTHxHEIGHT (like 512x768).",
                            code="invalid_script_args")
    return values


def _check_choice(choices: Sequence[str], what: str) -> Check:
    return _in_list(lambda services: list(choices), what)


FACE_RESTORE = ("CodeFormer", "GFPGAN", "True", "False")
RNG_SOURCES = ("GPU", "CPU", "NV")


def _axes() -> list[Axis]:
    samplers = _names(lambda s, v: s.find_sampler(v) and v.strip(), "sampler", lambda s: s.sampler_names())
    return [
        Axis("Nothing", "str", _nothing, legend="value"),
        Axis("Seed", "int", _set("seed")),
        Axis("Var. seed", "int", _set("subseed")),
        Axis("Var. strength", "float", _set("subseed_strength")),
        Axis("Steps", "int", _set("steps")),
        Axis("Hires steps", "int", _set("hr_second_pass_steps")),
        Axis("CFG Scale", "float", _set("cfg_scale")),
        Axis("Prompt S/R", "str", _prompt_sr, legend="value", check=_check_prompt_sr),
        Axis("Prompt order", "permutations", _prompt_order, legend="join", check=_check_prompt_order),
        Axis("Sampler", "str", _set("sampler_name"), legend="value", choices=lambda s: s.sampler_names(),
             check=samplers),
        Axis("Hires sampler", "str", _set("hr_sampler_name"), choices=lambda s: s.sampler_names(), check=samplers),
        Axis("Checkpoint name", "str", _override("sd_model_checkpoint"), legend="basename", cost=1.0,
             choices=lambda s: s.checkpoint_titles(),
             check=_names(lambda s, v: s.find_checkpoint(v), "checkpoint", lambda s: s.checkpoint_titles())),
        Axis("Negative Guidance minimum sigma", "float", _set("s_min_uncond")),
        Axis("Sigma Churn", "float", _set("s_churn")),
        Axis("Sigma min", "float", _set("s_tmin")),
        Axis("Sigma max", "float", _set("s_tmax")),
        Axis("Sigma noise", "float", _set("s_noise")),
        Axis("Schedule type", "str", _set("scheduler"), choices=lambda s: s.scheduler_labels(),
             check=_names(lambda s, v: s.find_scheduler(v), "schedule type", lambda s: s.scheduler_labels())),
        Axis("Schedule min sigma", "float", _override("sigma_min")),
        Axis("Schedule max sigma", "float", _override("sigma_max")),
        Axis("Schedule rho", "float", _override("rho")),
        Axis("Eta", "float", _set("eta")),
        Axis("Clip skip", "int", _override("CLIP_stop_at_last_layers")),
        Axis("Denoising", "float", _set("denoising_strength")),
        Axis("Hires upscaler", "str", _set("hr_upscaler"), choices=lambda s: s.hires_upscaler_names(),
             check=_in_list(lambda s: s.hires_upscaler_names(), "hires upscaler")),
        Axis("VAE", "str", _override("sd_vae"), cost=0.7, choices=lambda s: s.vae_names(),
             check=_names(lambda s, v: s.find_vae(v), "VAE", lambda s: s.vae_names())),
        Axis("Styles", "str", _styles, choices=lambda s: s.style_names()),
        Axis("Face restore", "str", _face_restore, legend="value", choices=lambda s: list(FACE_RESTORE)),
        Axis("Refiner checkpoint", "str", _refiner, legend="basename", cost=1.0,
             choices=lambda s: ["None", *s.checkpoint_titles()],
             check=_names(lambda s, v: s.find_checkpoint(v), "checkpoint", lambda s: s.checkpoint_titles(),
                          allow_none=True)),
        Axis("Refiner switch at", "float", _set("refiner_switch_at")),
        Axis("RNG source", "str", _override("randn_source"), choices=lambda s: list(RNG_SOURCES),
             check=_check_choice(RNG_SOURCES, "RNG source")),
        Axis("Size", "str", _size, check=_check_sizes),
        Axis("Distilled CFG Scale", "float", _set("distilled_cfg_scale")),
        Axis("Shift", "float", _override("flow_shift")),
    ]


AXES: dict[str, Axis] = {axis.label: axis for axis in _axes()}
NOTHING = AXES["Nothing"]


def a1111_labels(is_img2img: bool) -> list[str]:
    """A1111's axis list for a tab (what an API client's index counts in)."""
    return [label for label, tab in A1111_AXES if tab in ("", tab_of(is_img2img))]


def axis_labels(is_img2img: bool) -> list[str]:
    """The axes the page offers: A1111's, in its order, that sdweb applies."""
    return [label for label in a1111_labels(is_img2img) if label in AXES]


def find_axis(chosen: Any, is_img2img: bool, name: str) -> Axis:
    """An axis by A1111 index (int or digits) or by label (any case); UserError naming `name` (X type...)."""
    labels = a1111_labels(is_img2img)
    if isinstance(chosen, int | float) and not isinstance(chosen, bool) or str(chosen).strip().isdigit():
        index = int(chosen)
        if not 0 <= index < len(labels):
            raise UserError(f"X/Y/Z plot: {name} {index} is not an axis index (0 to {len(labels) - 1}).",
                            code="invalid_script_args", hint=f"Axes: {', '.join(labels)}.")
        label = labels[index]
    else:
        text = str(chosen or "Nothing").strip().casefold()
        label = next((known for known in labels if known.casefold() == text), "")
        if not label:
            raise UserError(f"X/Y/Z plot: {name} {chosen!r} is not an axis for {tab_of(is_img2img)}.",
                            code="invalid_script_args", hint=f"Axes: {', '.join(axis_labels(is_img2img))}.")
    axis = AXES.get(label)
    if axis is None:
        raise UserError(f"X/Y/Z plot: the axis {label!r} is not available in sdweb (the setting it changes has "
                        f"no effect here).", code="unsupported_axis",
                        hint=f"Axes: {', '.join(axis_labels(is_img2img))}.")
    return axis


def apply_value(axis: Axis, p: Processing, value: Any, values: Sequence[Any]) -> None:
    """Set one axis value on a cell's job; a value the job refuses is a UserError naming the axis."""
    try:
        axis.apply(p, value, values)
    except ValidationError as error:
        problem = "; ".join(str(item.get("msg", "")).removeprefix("Value error, ") for item in error.errors())
        raise UserError(f"X/Y/Z plot: {axis.label} {value!r}: {problem}", code="invalid_script_args") from None
    except ValueError as error:
        raise UserError(f"X/Y/Z plot: {axis.label} {value!r}: {error}", code="invalid_script_args") from None
