"""Checkpoint switching: cached switch time, cold load time and process RSS over 20 switches.

    venv/bin/python bench/switching_bench.py [--switches 20] [--no-generate] [--out FILE]

A thin wrapper over sdweb/bench/switching.py (also run by `python -m sdweb.bench --only switching`).
Goals: cached switch <= 1 s; RSS after the last switch within 5 % of the RSS after the first round.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sdweb.bench.switching import print_phase, switching_phases, verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--no-generate", action="store_true", help="only switch, generate nothing")
    parser.add_argument("--out", default="bench/results/switching.json")
    args = parser.parse_args()
    phases = switching_phases(args.switches, not args.no_generate)
    for phase in phases:
        print_phase(phase)
    summary = verdict(phases)
    print(f"\ncached switch <= 1 s: {summary['cached_switch_ok']}; RSS growth <= 5 %: {summary['rss_growth_ok']}; "
          f"cold load median {summary['cold_load_median_seconds']:.2f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"phases": phases, "verdict": summary}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
