"""A1111 sampler / schedule-type lookup (pure): legacy combined names, aliases, fallbacks, API lists.

A1111 rules kept: a sampler name may end in " <schedule label|name|alias>" ("DPM++ 2M Karras"),
which wins over the separate scheduler field; an empty name falls back to ``sampler_index``, then
to "DPM++ 2M"; an unknown name silently becomes "DPM++ 2M" (here: non-strict mode, with a warning
string for the caller to log). Friendlier than A1111, without changing any name it accepts:
``k_*`` aliases and case-insensitive names are recognised instead of falling back.
"""

from __future__ import annotations

from typing import NamedTuple

from sdweb.core.errors import NotFoundError
from sdweb.samplers.table import AUTOMATIC, DEFAULT_SAMPLER, SAMPLERS, SCHEDULERS, SamplerInfo, SchedulerInfo


class Resolution(NamedTuple):
    sampler: SamplerInfo
    scheduler: SchedulerInfo
    warning: str | None = None


def _scheduler_words(schedule: SchedulerInfo) -> tuple[str, ...]:
    return (schedule.label, schedule.name, *(schedule.aliases or ()))


def _split_schedule_suffix(name: str, fold: bool) -> tuple[str, SchedulerInfo | None]:
    """Strip " <schedule word>" suffixes, scanning schedule types in order as A1111 does."""
    found = None
    for schedule in SCHEDULERS:
        for word in _scheduler_words(schedule):
            suffix = " " + word
            tail = name[-len(suffix):]
            if len(name) > len(suffix) and (tail.casefold() == suffix.casefold() if fold else tail == suffix):
                found = schedule
                name = name[: -len(suffix)]
                break
    return name, found


def find_sampler(name: str) -> SamplerInfo | None:
    """Exact display name, then alias, then either one case-insensitively."""
    for sampler in SAMPLERS:
        if sampler.name == name:
            return sampler
    for sampler in SAMPLERS:
        if name in sampler.aliases:
            return sampler
    folded = name.casefold()
    for sampler in SAMPLERS:
        if folded in (word.casefold() for word in (sampler.name, *sampler.aliases)):
            return sampler
    return None


def find_scheduler(name: str) -> SchedulerInfo | None:
    """Label, name or alias (exact first, then case-insensitive)."""
    for schedule in SCHEDULERS:
        if name in _scheduler_words(schedule):
            return schedule
    folded = name.casefold()
    for schedule in SCHEDULERS:
        if folded in (word.casefold() for word in _scheduler_words(schedule)):
            return schedule
    return None


def _sampler_from_name(requested: str) -> tuple[SamplerInfo | None, SchedulerInfo | None]:
    for fold in (False, True):
        name, suffix = _split_schedule_suffix(requested, fold)
        sampler = find_sampler(name)
        if sampler is not None:
            return sampler, suffix
    return None, None


def _not_found(kind: str, name: str, valid: list[str]) -> NotFoundError:
    return NotFoundError(
        f'{kind} "{name}" not found.',
        code=f"{kind.lower().replace(' ', '_')}_not_found",
        hint="Valid values: " + ", ".join(valid) + ".",
    )


def resolve_sampler(
    sampler_name: str | None,
    scheduler: str | None,
    sampler_index: str | None = None,
    *,
    strict: bool = False,
    convert_automatic: bool = True,
) -> Resolution:
    """A1111's get_sampler_and_scheduler plus the API's ``sampler_name or sampler_index``.

    ``strict`` raises NotFoundError for an unknown sampler or schedule type; otherwise they fall
    back to "DPM++ 2M" / "Automatic" like A1111 and ``warning`` says so. ``convert_automatic``
    reports a schedule equal to the sampler's default as "Automatic", as A1111's API path does.
    The A1111 wire schema's ``sampler_index`` default is "Euler" (API_DEFAULT_SAMPLER_INDEX):
    pass it, so an empty request runs Euler there while the UI's default stays "DPM++ 2M".
    """
    warnings: list[str] = []
    schedule = AUTOMATIC
    scheduler = (scheduler or "").strip()
    if scheduler:
        found_schedule = find_scheduler(scheduler)
        if found_schedule is not None:
            schedule = found_schedule
        elif strict:
            raise _not_found("Schedule type", scheduler, [s.label for s in SCHEDULERS])
        else:
            warnings.append(f'Unknown schedule type "{scheduler}"; using "Automatic".')

    requested = (sampler_name or sampler_index or "").strip()
    sampler = DEFAULT_SAMPLER
    if requested:
        found_sampler, suffix = _sampler_from_name(requested)
        if found_sampler is not None:
            sampler = found_sampler
            schedule = suffix or schedule
        elif strict:
            raise _not_found("Sampler", requested, [s.name for s in SAMPLERS])
        else:
            schedule = _split_schedule_suffix(requested, False)[1] or schedule  # A1111 keeps the suffix
            warnings.append(f'Unknown sampler "{requested}"; using "{DEFAULT_SAMPLER.name}" as A1111 does.')

    if convert_automatic and sampler.default_schedule == schedule.name:
        schedule = AUTOMATIC
    return Resolution(sampler, schedule, " ".join(warnings) or None)


def effective_schedule(sampler: SamplerInfo, schedule: SchedulerInfo) -> SchedulerInfo | None:
    """The schedule the sampler really uses: "Automatic" becomes the sampler's default.

    None means the sampler's own timesteps: timestep samplers (DDIM, PLMS, UniPC) ignore the
    Schedule type, and "Automatic" on a sampler without a default means the model's own sigmas.
    """
    if sampler.is_timestep_sampler:
        return None
    if schedule.name == AUTOMATIC.name:
        return find_scheduler(sampler.default_schedule) if sampler.default_schedule else None
    return schedule


def scheduler_for_infotext(sampler: SamplerInfo, scheduler: SchedulerInfo) -> str:
    """The "Schedule type" infotext value A1111 writes.

    k-diffusion samplers record the label they actually used: "Automatic" on DPM++ 2M is written
    as "Karras", and stays "Automatic" on Euler (no default). Timestep samplers never look the
    schedule up, so A1111 writes the requested label unchanged.
    """
    if sampler.is_timestep_sampler:
        return scheduler.label
    used = effective_schedule(sampler, scheduler)
    return used.label if used is not None else AUTOMATIC.label


def sampler_names() -> list[str]:
    """What the UI and /samplers offer, in A1111's order."""
    return [sampler.name for sampler in SAMPLERS]


def scheduler_labels() -> list[str]:
    return [schedule.label for schedule in SCHEDULERS]


def samplers_api_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/samplers."""
    return [
        {"name": sampler.name, "aliases": list(sampler.aliases), "options": sampler.api_options()}
        for sampler in SAMPLERS
    ]


def schedulers_api_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/schedulers."""
    return [
        {
            "name": schedule.name,
            "label": schedule.label,
            "aliases": list(schedule.aliases) if schedule.aliases is not None else None,
            "default_rho": schedule.default_rho,
            "need_inner_model": schedule.need_inner_model,
        }
        for schedule in SCHEDULERS
    ]
