"""A1111's `modules.extra_networks`: `<name:args>` tags in prompts. Extensions may subclass ExtraNetwork and
register it; sdweb parses the tags itself (LoRA is built in), so a registered network is listed, and its
`activate` is not called (sdweb's prompt path has no such step): prompts keep their tags for the network's
own hooks to read."""

from __future__ import annotations

import re
from typing import Any

extra_network_registry: dict[str, Any] = {}
extra_network_aliases: dict[str, Any] = {}
_TAG = re.compile(r"<(\w+):([^>]+)>")


class ExtraNetworkParams:
    def __init__(self, items: list[str] | None = None) -> None:
        self.items = items or []
        self.positional = [item for item in self.items if "=" not in item]
        self.named = dict(item.split("=", 1) for item in self.items if "=" in item)


class ExtraNetwork:
    def __init__(self, name: str) -> None:
        self.name = name

    def activate(self, p: Any, params_list: list[ExtraNetworkParams]) -> None:
        return None

    def deactivate(self, p: Any) -> None:
        return None


def register_extra_network(extra_network: ExtraNetwork) -> None:
    extra_network_registry[extra_network.name] = extra_network


def register_extra_network_alias(extra_network: ExtraNetwork, alias: str) -> None:
    extra_network_aliases[alias] = extra_network


def parse_prompt(prompt: str) -> tuple[str, dict[str, list[ExtraNetworkParams]]]:
    found: dict[str, list[ExtraNetworkParams]] = {}

    def collect(match: re.Match) -> str:
        found.setdefault(match.group(1), []).append(ExtraNetworkParams(match.group(2).split(":")))
        return ""

    return _TAG.sub(collect, prompt), found


def parse_prompts(prompts: list[str]) -> tuple[list[str], dict[str, list[ExtraNetworkParams]]]:
    cleaned, data = [], {}
    for prompt in prompts:
        text, found = parse_prompt(prompt)
        cleaned.append(text)
        data = data or found
    return cleaned, data
