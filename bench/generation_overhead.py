"""Our txt2img service vs the bare diffusers pipeline call: same file, sampler, size, steps, seed, CPU.

    venv/bin/python bench/generation_overhead.py [--steps 20] [--size 64] [--repeats 5] [--out FILE]

Runs alternate (ours, bare, ours, bare, ...) so machine noise hits both; prints medians and the ratio, and
writes JSON. The bare call gets plain prompt strings and diffusers' own Euler scheduler, the way a diffusers
user would write it; ours goes through the queue-free service path (conditioning, seeds, infotext, no saving).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from diffusers import EulerDiscreteScheduler

from sdweb.cli import parse_options
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--previews", action="store_true", help="also measure with live previews every step")
    parser.add_argument("--out", default="bench/results/generation_overhead.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data:
        write_tiny("sd1", Path(data) / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
        state = build_app_state(parse_options(["--data-dir", data], {}))
        state.settings.update({"live_previews_enable": False}, save=False)
        request = Txt2ImgRequest(prompt="a photo of a cat", negative_prompt="blurry", seed=1, steps=args.steps,
                                 width=args.size, height=args.size, sampler_name="Euler")
        no_save = SaveOptions(save_samples=False, save_grid=False)
        state.service.txt2img(request, None, no_save)  # load + warm up
        pipe = state.manager.get(None).pipeline("txt2img")

        def ours() -> None:
            state.service.txt2img(request, None, no_save)

        def bare() -> None:
            pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
            pipe("a photo of a cat", negative_prompt="blurry", num_inference_steps=args.steps, width=args.size,
                 height=args.size, guidance_scale=7.0, generator=torch.Generator().manual_seed(1))

        bare()
        times: dict[str, list[float]] = {"ours": [], "bare": []}
        for _ in range(args.repeats):
            for name, run in (("ours", ours), ("bare", bare)):
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
        if args.previews:
            state.settings.update({"live_previews_enable": True, "show_progress_every_n_steps": 1}, save=False)
            times["ours_previews_every_step"] = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                ours()
                times["ours_previews_every_step"].append(time.perf_counter() - started)
        state.queue.shutdown()

    medians = {name: statistics.median(values) for name, values in times.items()}
    report = {"steps": args.steps, "size": args.size, "repeats": args.repeats, "threads": torch.get_num_threads(),
              "median_seconds": medians, "ratio_ours_to_bare": medians["ours"] / medians["bare"], "raw": times}
    print(f"{'run':<28}{'median s':>10}")
    for name, value in medians.items():
        print(f"{name:<28}{value:>10.3f}")
    print(f"ratio ours/bare: {report['ratio_ours_to_bare']:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
