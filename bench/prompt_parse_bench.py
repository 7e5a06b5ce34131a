"""Prompt parsing speed: 10,000 mixed A1111 prompts through every parser stage (target: under 1 s in total).

    venv/bin/python bench/prompt_parse_bench.py [--prompts 10000] [--steps 20] [--repeats 3] [--out FILE]

Each prompt goes the way the generation path takes it: extra-network tags removed, AND split, each
sub-prompt's editing schedule over `steps`, and emphasis parsed for every distinct scheduled text. Prompts
are generated from a fixed seed: plain tag lists, emphasis and de-emphasis, weights, escapes, BREAK,
prompt editing, alternation, AND with weights, <lora:...> tags and long (>75 token) prompts. Prints the best
of `repeats` runs, per stage (wall clock; the CPU time of the whole run is printed too, since a shared
machine's other load inflates wall time), and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from sdweb.prompts.parser import (
    parse_extra_networks,
    parse_prompt_attention,
    prompt_schedules,
    split_composable,
)

WORDS = ("masterpiece", "best quality", "1girl", "cat", "dog", "portrait", "city street", "night", "neon lights",
         "detailed face", "oil painting", "sharp focus", "bokeh", "forest", "red dress", "blue eyes", "smile",
         "cinematic lighting", "4k", "highly detailed", "by greg rutkowski", "watercolor", "sunset", "rain")


def _tag(rng: random.Random) -> str:
    word = rng.choice(WORDS)
    kind = rng.random()
    if kind < 0.15:
        return f"({word}:{rng.choice(['0.8', '1.1', '1.2', '1.35', '1.5', '-0.5'])})"
    if kind < 0.25:
        return "(" * rng.randint(1, 3) + word + ")" * rng.randint(1, 3)
    if kind < 0.32:
        return f"[{word}]"
    if kind < 0.38:
        return f"[{word}:{rng.choice(WORDS)}:{rng.choice(['0.3', '0.5', '5', '10', '.75'])}]"
    if kind < 0.42:
        return f"[{word}|{rng.choice(WORDS)}]"
    if kind < 0.45:
        return f"\\({word}\\)"
    if kind < 0.48:
        return f"<lora:{word.replace(' ', '_')}:{rng.choice(['0.5', '0.8', '1'])}>"
    return word


def make_prompts(count: int, seed: int = 1234) -> list[str]:
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        tags = [_tag(rng) for _ in range(rng.choice([3, 8, 15, 25, 40]))]
        if rng.random() < 0.1:
            tags.insert(rng.randrange(len(tags)), "BREAK")
        prompt = ", ".join(tags)
        if rng.random() < 0.12:
            prompt += f" :{rng.choice(['0.7', '1.2'])} AND " + ", ".join(_tag(rng) for _ in range(5))
        prompts.append(prompt)
    return prompts


def run_once(prompts: list[str], steps: int) -> dict[str, float]:
    timings = {"extra_networks": 0.0, "composable": 0.0, "schedules": 0.0, "attention": 0.0}
    clock = time.perf_counter
    cpu_started = time.process_time()
    for prompt in prompts:
        started = clock()
        text, _ = parse_extra_networks(prompt)
        split = clock()
        parts = split_composable(text)
        scheduled = clock()
        schedules = [prompt_schedules(part, steps) for part, _ in parts]
        attended = clock()
        for schedule in schedules:
            for entry in {scheduled_text for _, scheduled_text in schedule}:
                parse_prompt_attention(entry)
        done = clock()
        timings["extra_networks"] += split - started
        timings["composable"] += scheduled - split
        timings["schedules"] += attended - scheduled
        timings["attention"] += done - attended
    timings["total"] = sum(timings.values())
    timings["cpu_total"] = time.process_time() - cpu_started  # includes the loop; robust on a busy machine
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench/results/prompt_parse.json")
    args = parser.parse_args()

    prompts = make_prompts(args.prompts)
    runs = [run_once(prompts, args.steps) for _ in range(args.repeats)]
    best = min(runs, key=lambda timing: timing["total"])
    result = {
        "prompts": args.prompts, "steps": args.steps, "repeats": args.repeats,
        "mean_prompt_chars": round(sum(map(len, prompts)) / len(prompts), 1),
        "seconds": {key: round(value, 4) for key, value in best.items()},
        "all_totals": [round(run["total"], 4) for run in runs],
        "target_seconds": 1.0, "within_target": best["total"] < 1.0,
    }
    print(f"{args.prompts} prompts (mean {result['mean_prompt_chars']} chars), {args.steps} steps: "
          f"{best['total']:.3f} s total (best of {args.repeats}; CPU time {best['cpu_total']:.3f} s)")
    for key in ("extra_networks", "composable", "schedules", "attention"):
        print(f"  {key:15s} {best[key]:.3f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
