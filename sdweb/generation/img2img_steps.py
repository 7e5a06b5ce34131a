"""How many schedule steps to give diffusers' img2img pipelines so that the wanted number of steps runs.

diffusers runs int(num_inference_steps * strength) steps of a num_inference_steps schedule; with a small
strength that can be 0, which crashes inside the pipeline. A1111 always runs at least one step, and with
"img2img_fix_steps" (and in the hires pass) exactly the requested number."""

from __future__ import annotations

import math

MIN_STRENGTH = 1e-3  # diffusers needs a positive strength; below this the image is unchanged anyway


def steps_run(schedule_steps: int, strength: float) -> int:
    """The number of steps diffusers' img2img pipelines run (their get_timesteps)."""
    return min(int(schedule_steps * strength), schedule_steps)


def schedule_for(wanted: int, strength: float) -> tuple[int, float]:
    """(schedule steps, strength) so that diffusers runs exactly `wanted` (at least 1) steps."""
    wanted = max(1, int(wanted))
    strength = min(max(float(strength), MIN_STRENGTH), 1.0)
    schedule = max(wanted, math.ceil(wanted / strength))
    while steps_run(schedule, strength) < wanted:  # float rounding in ceil
        schedule += 1
    while schedule > wanted and steps_run(schedule - 1, strength) >= wanted:
        schedule -= 1
    return schedule, strength


def img2img_schedule(steps: int, strength: float, fix_steps: bool) -> tuple[int, float]:
    """The img2img pass: A1111 runs about steps × strength steps (at least one), or exactly `steps` with
    the img2img_fix_steps setting."""
    if fix_steps:
        return schedule_for(steps, strength)
    if strength > 0 and steps_run(steps, strength) >= 1:
        return steps, strength
    return schedule_for(1, strength)
