"""Make the diffusers scheduler (and the extra pipeline-call arguments) for an A1111 sampler + schedule.

How a schedule type reaches diffusers, first match wins:
1. Karras / Exponential / Beta: the class's ``use_*_sigmas`` flag, with ``timestep_spacing="linspace"``
   so the range is the model's full sigma_min..sigma_max as in A1111 (not the config's "leading").
   Polyexponential (rho 1 in A1111) is the exponential schedule.
2. Uniform / Normal (and "Automatic" without a sampler default, which is the model's own sigmas
   in A1111) on the k-diffusion-style classes, whose "linspace" spacing is exactly that schedule.
3. Classes whose ``set_timesteps`` takes ``sigmas`` (Euler, UniPC): our own A1111 sigmas, exact.
4. Classes that take ``timesteps`` (Heun, DPM-Solver, LCM): our sigmas turned into timesteps
   (rounded to integers where the class does).
5. Otherwise the nearest built-in option, with a note.
Timestep samplers (DDIM, PLMS, UniPC) ignore the schedule type, as in A1111; LCM's "Automatic"
keeps diffusers' LCM schedule while the step count fits it (up to original_inference_steps).
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import diffusers
import numpy as np
from diffusers import SchedulerMixin
from diffusers.schedulers import AysSchedules

from sdweb.samplers import schedules
from sdweb.samplers.resolve import effective_schedule
from sdweb.samplers.table import SamplerInfo, SchedulerInfo

_SIGMA_FLAGS = {"karras": "use_karras_sigmas", "exponential": "use_exponential_sigmas", "beta": "use_beta_sigmas"}
# Schedules a flag reproduces: A1111's polyexponential has rho 1, which is the exponential schedule.
_FLAG_FOR_SCHEDULE = {**_SIGMA_FLAGS, "polyexponential": "use_exponential_sigmas"}
# Classes whose "linspace" spacing is k-diffusion's get_sigmas(n): n timesteps from T-1 down to 0.
_K_LINSPACE = frozenset({
    "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "LMSDiscreteScheduler",
    "HeunDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
    "DPMSolverSDEScheduler",
})
# Classes that keep fractional custom timesteps; the others cast them to integers.
_FLOAT_TIMESTEPS = frozenset({"EulerDiscreteScheduler", "HeunDiscreteScheduler"})
# Built-in stand-ins when a class can take neither the flag nor custom sigmas/timesteps.
_FALLBACK: dict[str, dict[str, Any]] = {
    "uniform": {"timestep_spacing": "linspace"},
    "normal": {"timestep_spacing": "linspace"},
    "polyexponential": {"timestep_spacing": "linspace"},
    "sgm_uniform": {"timestep_spacing": "trailing"},
    "simple": {"timestep_spacing": "trailing"},
    "ddim": {"timestep_spacing": "leading", "steps_offset": 1},
    "kl_optimal": {"use_karras_sigmas": True, "timestep_spacing": "linspace"},
    "align_your_steps": {"use_karras_sigmas": True, "timestep_spacing": "linspace"},
    "karras": {"timestep_spacing": "linspace"},
    "exponential": {"timestep_spacing": "linspace"},
    "beta": {"timestep_spacing": "linspace"},
}


class BuiltScheduler(NamedTuple):
    scheduler: SchedulerMixin
    call_kwargs: dict[str, Any]  # extra pipeline-call arguments: timesteps, sigmas, eta
    notes: list[str]  # what differs from A1111, for the log / infotext


class _Plan(NamedTuple):
    config: dict[str, Any]
    custom: str | None  # "sigmas", "timesteps" or None
    notes: list[str]


def scheduler_class(sampler: SamplerInfo) -> type[SchedulerMixin]:
    return getattr(diffusers, sampler.scheduler_class)


def _init_params(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters)


def _set_timesteps_params(cls: type) -> set[str]:
    return set(inspect.signature(cls.set_timesteps).parameters)


def _step_params(cls: type) -> set[str]:
    return set(inspect.signature(cls.step).parameters)


def _plan_schedule(cls: type, schedule: str, init: set[str], discard: bool) -> _Plan:
    """Pick how the schedule named ``schedule`` reaches the class (see the module docstring)."""
    takes = _set_timesteps_params(cls)
    flag = _FLAG_FOR_SCHEDULE.get(schedule)
    spacing = {"timestep_spacing": "linspace"} if "timestep_spacing" in init else {}
    if flag is not None and flag in init:
        # Exact sigmas beat dropping the next-to-last one through rounded custom timesteps.
        return _Plan({flag: True, **spacing}, None, [])
    # A sampler that drops the next-to-last sigma needs our own list when the class takes one.
    custom_possible = bool({"sigmas", "timesteps"} & takes)
    if schedule in ("uniform", "normal") and cls.__name__ in _K_LINSPACE and not (discard and custom_possible):
        return _Plan(spacing, None, [])
    if "sigmas" in takes:
        return _Plan({}, "sigmas", [])
    if "timesteps" in takes:
        return _Plan({}, "timesteps", [])
    fallback = {key: value for key, value in _FALLBACK[schedule].items() if key in init}
    described = ", ".join(f"{key}={value!r}" for key, value in fallback.items()) or "its default schedule"
    return _Plan(fallback, None, [f"{cls.__name__} cannot follow the {schedule} schedule; using {described}."])


def _lcm_original_steps(cls: type, base_config: dict[str, Any]) -> int:
    default = inspect.signature(cls.__init__).parameters["original_inference_steps"].default
    return int(base_config.get("original_inference_steps") or default)


def _plan(cls: type, sampler: SamplerInfo, schedule: SchedulerInfo, init: set[str], own_ok: bool) -> _Plan:
    """``own_ok``: the class's own schedule stands in for "Automatic" (LCM, when the steps fit)."""
    used = effective_schedule(sampler, schedule)
    if used is not None:
        return _plan_schedule(cls, used.name, init, sampler.discard_penultimate_sigma)
    if sampler.is_timestep_sampler:
        notes = [] if schedule.name == "automatic" else [
            f"Schedule type {schedule.label} is ignored by {sampler.name}, as in A1111."
        ]
        return _Plan({}, None, notes)
    if own_ok:
        return _Plan({}, None, [])
    return _plan_schedule(cls, "uniform", init, sampler.discard_penultimate_sigma)


def _reset_flags(init: set[str]) -> dict[str, Any]:
    """Switch off sigma options a model's own scheduler config may carry."""
    return {flag: False for flag in (*_SIGMA_FLAGS.values(), "use_lu_lambdas") if flag in init}


def _ays_table(is_sdxl: bool) -> list[float]:
    key = "StableDiffusionXLSigmas" if is_sdxl else "StableDiffusionSigmas"
    return [*AysSchedules[key][:-1], schedules.AYS_SIGMA_MIN]


def target_sigmas(
    sampler: SamplerInfo, schedule: SchedulerInfo, model_sigmas: np.ndarray, steps: int, *, is_sdxl: bool = False
) -> np.ndarray:
    """The sigmas A1111 would use ("Automatic" resolved here; next-to-last dropped where A1111 does)."""
    used = effective_schedule(sampler, schedule)
    name = used.name if used is not None else "uniform"
    count = steps + 1 if sampler.discard_penultimate_sigma else steps
    sigmas = schedules.a1111_sigmas(name, model_sigmas, count, _ays_table(is_sdxl))
    return schedules.discard_penultimate(sigmas) if sampler.discard_penultimate_sigma else sigmas


def _custom_kwargs(
    scheduler: SchedulerMixin, sampler: SamplerInfo, schedule: SchedulerInfo, how: str, steps: int, is_sdxl: bool
) -> tuple[dict[str, Any], list[str]]:
    model_sigmas = schedules.model_sigmas_from_alphas_cumprod(np.asarray(scheduler.alphas_cumprod))
    sigmas = target_sigmas(sampler, schedule, model_sigmas, steps, is_sdxl=is_sdxl)
    if how == "sigmas":
        return {"sigmas": [float(value) for value in sigmas]}, []
    integer = type(scheduler).__name__ not in _FLOAT_TIMESTEPS
    timesteps = schedules.sigmas_to_timesteps(model_sigmas, sigmas, integer=integer)
    notes = []
    if len(timesteps) < len(sigmas) - 1:
        notes.append(f"{len(sigmas) - 1 - len(timesteps)} steps merged: they round to the same timestep.")
    return {"timesteps": timesteps}, notes


def _eta_kwargs(cls: type, sampler: SamplerInfo, eta: float | None) -> tuple[dict[str, Any], list[str]]:
    if eta is None or sampler.eta_default is None:
        return {}, []
    if "eta" in _step_params(cls):
        return {"eta": float(eta)}, []
    if eta != sampler.eta_default:
        return {}, [f"{cls.__name__} takes no eta; eta {eta:g} is ignored."]
    return {}, []


def build_scheduler(
    base_config: dict[str, Any],
    sampler: SamplerInfo,
    schedule: SchedulerInfo,
    *,
    steps: int,
    eta: float | None = None,
    prediction_type: str | None = None,
    is_sdxl: bool = False,
    seed: int | None = None,
) -> BuiltScheduler:
    """A scheduler of the sampler's class from the model's scheduler config, plus call kwargs and notes.

    ``base_config`` is the model's scheduler config (any class); its prediction_type is kept unless
    ``prediction_type`` overrides it. ``seed`` seeds the Brownian tree of DPM++ SDE.
    Pass ``call_kwargs`` to the pipeline call; ``timesteps``/``sigmas`` replace num_inference_steps.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    cls = scheduler_class(sampler)
    init = _init_params(cls)
    own_ok = "original_inference_steps" in init and steps <= _lcm_original_steps(cls, base_config)
    plan = _plan(cls, sampler, schedule, init, own_ok)
    config = {key: value for key, value in base_config.items() if key in init}
    config.update(_reset_flags(init))
    config.update({key: value for key, value in sampler.options.items() if key in init})
    config.update(plan.config)
    if prediction_type:
        config["prediction_type"] = prediction_type
    if seed is not None and "noise_sampler_seed" in init:
        config["noise_sampler_seed"] = seed
    scheduler = cls.from_config(config)

    notes = [sampler.note] if sampler.note and not sampler.exact else []
    notes += plan.notes
    call_kwargs: dict[str, Any] = {}
    if plan.custom is not None:
        custom, custom_notes = _custom_kwargs(scheduler, sampler, schedule, plan.custom, steps, is_sdxl)
        call_kwargs.update(custom)
        notes += custom_notes
    eta_kwargs, eta_notes = _eta_kwargs(cls, sampler, eta)
    call_kwargs.update(eta_kwargs)
    return BuiltScheduler(scheduler, call_kwargs, notes + eta_notes)
