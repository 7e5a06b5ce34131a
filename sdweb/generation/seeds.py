"""A job's seeds with A1111's semantics (a1111.md §10): random seeds, seed + i per image unless a variation
is on. The noise drawn from them follows A1111's ImageRNG rules (sdweb.samplers.rng)."""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_RANDOM_SEED = 4294967294


def resolve_seed(seed: int | str | None) -> int:
    """-1, None, "" or a non-number become a random seed (A1111's range); anything else is kept."""
    try:
        value = int(seed) if seed not in (None, "") else -1
    except (TypeError, ValueError):
        value = -1
    return random.randrange(MAX_RANDOM_SEED) if value == -1 else value


@dataclass(frozen=True)
class SeedPlan:
    """Seeds for every image of a job: batch_size x n_iter, in order."""

    seeds: tuple[int, ...]
    subseeds: tuple[int, ...]
    subseed_strength: float

    def for_batch(self, index: int, batch_size: int) -> tuple[list[int], list[int]]:
        start = index * batch_size
        return list(self.seeds[start:start + batch_size]), list(self.subseeds[start:start + batch_size])


def plan_seeds(seed: int, subseed: int, subseed_strength: float, count: int) -> SeedPlan:
    """seed+i per image, unless a variation is on: then every image keeps the same seed."""
    base, sub = resolve_seed(seed), resolve_seed(subseed)
    seeds = tuple([base] * count if subseed_strength > 0 else (base + i for i in range(count)))
    return SeedPlan(seeds=seeds, subseeds=tuple(sub + i for i in range(count)), subseed_strength=subseed_strength)
