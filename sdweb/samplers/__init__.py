"""A1111's samplers, schedules and noise, model-agnostic (a k-diffusion-style package).

The table and the lookups are pure and cheap to import. ``run.sample`` samples one batch through a
``denoisers.ModelCall`` the model engine provides; ``rng.ImageRNG`` draws A1111's per-image noise.
"""

from sdweb.samplers.resolve import (
    Resolution,
    effective_schedule,
    find_sampler,
    find_scheduler,
    resolve_sampler,
    sampler_names,
    samplers_api_list,
    scheduler_for_infotext,
    scheduler_labels,
    schedulers_api_list,
)
from sdweb.samplers.table import (
    API_DEFAULT_SAMPLER_INDEX,
    AUTOMATIC,
    DEFAULT_SAMPLER,
    SAMPLERS,
    SCHEDULERS,
    SamplerInfo,
    SchedulerInfo,
)

__all__ = [
    "API_DEFAULT_SAMPLER_INDEX",
    "AUTOMATIC",
    "DEFAULT_SAMPLER",
    "SAMPLERS",
    "SCHEDULERS",
    "Resolution",
    "SamplerInfo",
    "SchedulerInfo",
    "effective_schedule",
    "find_sampler",
    "find_scheduler",
    "resolve_sampler",
    "sampler_names",
    "samplers_api_list",
    "scheduler_for_infotext",
    "scheduler_labels",
    "schedulers_api_list",
]
