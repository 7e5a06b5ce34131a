"""A1111's `modules.sd_samplers`: the sampler names (sdweb's table, A1111's names and order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sdweb.samplers.resolve import sampler_names


@dataclass
class SamplerData:
    name: str
    constructor: Any = None
    aliases: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


all_samplers = [SamplerData(name) for name in sampler_names()]
all_samplers_map = {sampler.name: sampler for sampler in all_samplers}
samplers = all_samplers
samplers_for_img2img = all_samplers
samplers_map = {sampler.name.lower(): sampler.name for sampler in all_samplers}


def visible_sampler_names() -> list[str]:
    return [sampler.name for sampler in all_samplers]


def set_samplers() -> None:
    return None
