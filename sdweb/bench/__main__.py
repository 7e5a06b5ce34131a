"""`python -m sdweb.bench`: the performance benchmarks in one command; prints a table and writes JSON.

    python -m sdweb.bench [--only overhead,startup,coldstart,memory,switching,gpu,opts,lora_compile] [--repeats 5] [--out bench/results/bench.json]

Sections: overhead (our service vs the bare diffusers call: tiny SD1 and a full-size random SD 1.5 on CPU),
startup (process start -> page, API, first image), coldstart (whole processes: sdweb's app state + load + one
image vs a plain from_single_file script, full-size SD 1.5), memory (peak and settled RSS while loading full-size
checkpoints vs the weights' size), switching (cached / cold checkpoint switches, RSS over 20
switches), gpu (SD 1.5 / SDXL it/s, batch throughput, peak VRAM; "skipped: no CUDA device" without CUDA),
opts (eager vs --compile, --opt-fused-qkv, --opt-channelslast on the tiny SD1, with the compile time).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from sdweb.bench import report
from sdweb.bench.report import SECTIONS, SectionResult

DEFAULT_OUT = Path("bench/results/bench.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sdweb.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help=f"comma-separated sections, of: {','.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions per measurement (default 5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report (default %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where full-size random checkpoints are kept between runs "
                             "(default $SDWEB_BENCH_CACHE or <tmp>/sdweb-bench-cache)")
    overhead = parser.add_argument_group("overhead")
    overhead.add_argument("--tiny-size", type=int, default=64)
    overhead.add_argument("--tiny-steps", type=int, default=30)
    overhead.add_argument("--no-fullsize", action="store_true", help="skip the full-size SD 1.5 (CPU, slow)")
    overhead.add_argument("--full-size", type=int, default=256)
    overhead.add_argument("--full-steps", type=int, default=4)
    overhead.add_argument("--full-repeats", type=int, default=3)
    overhead.add_argument("--no-queue", action="store_true", help="skip the via-queue variant")
    overhead.add_argument("--threads", type=int, default=None,
                          help="torch threads for the overhead runs (default: torch's own choice)")
    startup = parser.add_argument_group("startup")
    startup.add_argument("--startup-repeats", type=int, default=3)
    coldstart = parser.add_argument_group("coldstart")
    coldstart.add_argument("--coldstart-repeats", type=int, default=3)
    memory = parser.add_argument_group("memory")
    memory.add_argument("--memory-repeats", type=int, default=1)
    memory.add_argument("--memory-models", default="sd1", help="comma-separated, of sd1,sdxl (default sd1)")
    switching = parser.add_argument_group("switching")
    switching.add_argument("--switches", type=int, default=20)
    gpu = parser.add_argument_group("gpu")
    gpu.add_argument("--gpu-steps", type=int, default=20)
    gpu.add_argument("--gpu-batch", type=int, default=8)
    gpu.add_argument("--gpu-parts", default="speed,modes,syncs",
                     help="comma-separated, of speed,modes,syncs,workers,compile (default %(default)s)")
    gpu.add_argument("--gpu-models", default="sd1,sdxl", help="comma-separated, of sd1,sdxl")
    opts = parser.add_argument_group("opts")
    opts.add_argument("--opts-size", type=int, default=64)
    opts.add_argument("--opts-steps", type=int, default=30)
    return parser


def section_runners(args: argparse.Namespace) -> dict[str, Callable[[], SectionResult]]:
    """Each section as a zero-argument callable (imports happen only when a section runs)."""

    def overhead() -> SectionResult:
        from sdweb.bench.overhead import run_overhead

        return run_overhead(args.repeats, tiny_size=args.tiny_size, tiny_steps=args.tiny_steps,
                            fullsize=not args.no_fullsize, full_size=args.full_size, full_steps=args.full_steps,
                            full_repeats=min(args.full_repeats, args.repeats), cache_dir=args.cache_dir,
                            with_queue=not args.no_queue, threads=args.threads)

    def startup() -> SectionResult:
        from sdweb.bench.startup import run_startup

        return run_startup(args.startup_repeats)

    def coldstart() -> SectionResult:
        from sdweb.bench.coldstart import run_coldstart

        return run_coldstart(args.coldstart_repeats, size=args.full_size, steps=args.full_steps,
                             cache_dir=args.cache_dir)

    def memory() -> SectionResult:
        from sdweb.bench.memory import run_memory

        kinds = [kind.strip() for kind in args.memory_models.split(",") if kind.strip()]
        return run_memory(args.memory_repeats, kinds=kinds, cache_dir=args.cache_dir)

    def switching() -> SectionResult:
        from sdweb.bench.switching import run_switching

        return run_switching(args.switches)

    def gpu() -> SectionResult:
        from sdweb.bench.gpu import MODELS, run_gpu

        wanted = args.gpu_models.split(",")
        return run_gpu(args.repeats, steps=args.gpu_steps, batch=args.gpu_batch, cache_dir=args.cache_dir,
                       models=tuple(model for model in MODELS if model[0] in wanted),
                       parts=tuple(part.strip() for part in args.gpu_parts.split(",") if part.strip()))

    def opts() -> SectionResult:
        from sdweb.bench.opts import run_opts

        return run_opts(args.repeats, size=args.opts_size, steps=args.opts_steps)

    def lora_compile() -> SectionResult:
        from sdweb.bench.lora_compile import run_lora_compile

        return run_lora_compile(size=args.opts_size)

    return {"overhead": overhead, "startup": startup, "coldstart": coldstart, "memory": memory,
            "switching": switching, "gpu": gpu, "opts": opts, "lora_compile": lora_compile}


def run_sections(names: Sequence[str], runners: dict[str, Callable[[], SectionResult]]) -> list[SectionResult]:
    """Run the chosen sections in order; a failing section is recorded (with its error) and the rest still run."""
    results = []
    for name in names:
        print(f"== {name} ...", file=sys.stderr, flush=True)
        try:
            results.append(runners[name]())
        except Exception as error:  # one broken section must not lose the others' figures
            traceback.print_exc()
            results.append(SectionResult(name, skipped=f"failed: {type(error).__name__}: {error}",
                                         details={"error": traceback.format_exc()}))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        names = report.parse_sections(args.only)
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.WARNING)
    results = run_sections(names, section_runners(args))
    print(report.format_table(results))
    path = report.write_report(report.build_report(results, argv, report.machine_info()), args.out)
    print(f"wrote {path}")
    return 1 if any((r.skipped or "").startswith("failed:") for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
