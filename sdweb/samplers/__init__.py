"""A1111 sampler and schedule-type names -> diffusers schedulers.

The table and the lookups are pure and cheap to import; ``sdweb.samplers.build`` (which imports
diffusers) makes the scheduler itself.
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
