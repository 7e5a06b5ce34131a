"""Our txt2img service vs the bare diffusers pipeline call: same file, sampler, size, steps, seed, CPU.

    venv/bin/python bench/generation_overhead.py [--steps 30] [--size 64] [--repeats 5] [--previews] [--out FILE]

A thin wrapper over sdweb/bench/overhead.py on the tiny SD1 only (`python -m sdweb.bench --only overhead` also
runs the full-size random SD 1.5). Runs rotate their order so machine noise hits every variant; prints medians
(wall and process CPU time) and the ratios, and writes JSON. --previews adds the via-queue variant (progress and
live previews, as the UI and API run it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sdweb.bench.overhead import run_overhead
from sdweb.bench.report import build_report, format_table, machine_info, write_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--previews", action="store_true", help="also measure through the queue with previews")
    parser.add_argument("--out", default="bench/results/generation_overhead.json")
    args = parser.parse_args()
    result = run_overhead(args.repeats, tiny_size=args.size, tiny_steps=args.steps, fullsize=False,
                          with_queue=args.previews, threads=args.threads)
    print(format_table([result]))
    report = build_report([result], sys.argv[1:], machine_info(), program="python bench/generation_overhead.py")
    write_report(report, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
