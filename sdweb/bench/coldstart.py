"""Cold start to the first image, whole processes: sdweb (build the app state, load the checkpoint, one image
through the generation service) against a plain script (`StableDiffusionPipeline.from_single_file` + one call),
on the same full-size random SD 1.5 file, same size, steps, sampler (Euler), CFG and seed, on the CPU.

The two run alternately, each in a fresh Python process; the parent measures the process's wall time (spawn to
exit), its CPU seconds and its peak RSS (from wait4). Each child also reports its own phases (imports, app
state, load, image), which is the profile of where the seconds go. A third variant, sdweb with --no-hashing,
shows the share of the checkpoint's sha256 (A1111 hashes at load too, for the infotext; the bare script does not).

    python -m sdweb.bench.coldstart {sdweb,sdweb-nohash,bare} FILE [--size 256] [--steps 4]   (one child run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdweb.bench.report import Row, SectionResult, median
from sdweb.config.environment import child_environment

PROMPT, NEGATIVE, CFG, SEED = "a photo of a cat", "blurry", 7.0, 1
GOAL_RATIO = 1.0
MARKER = "COLDSTART "


def _sdweb_child(file: Path, size: int, steps: int, data: Path, hashing: bool) -> dict[str, float]:
    started = time.perf_counter()
    from sdweb.cli import parse_options
    from sdweb.core.requests import Txt2ImgRequest
    from sdweb.generation.service import SaveOptions
    from sdweb.state import build_app_state

    imported = time.perf_counter()
    checkpoints = data / "models" / "Stable-diffusion"
    checkpoints.mkdir(parents=True, exist_ok=True)
    link = checkpoints / file.name
    if not link.exists():
        os.symlink(file, link)
    state = build_app_state(parse_options(["--data-dir", str(data), *([] if hashing else ["--no-hashing"])], {}))
    built = time.perf_counter()
    title = state.registry.checkpoints[0].name
    state.manager.get(title)
    loaded = time.perf_counter()
    request = Txt2ImgRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=steps, width=size,
                             height=size, cfg_scale=CFG, sampler_name="Euler",
                             override_settings={"sd_model_checkpoint": title})
    state.service.txt2img(request, None, SaveOptions(save_samples=False, save_grid=False))
    done = time.perf_counter()
    state.queue.shutdown()
    return {"imports": imported - started, "app_state": built - imported, "load": loaded - built,
            "image": done - loaded}


def _bare_child(file: Path, size: int, steps: int) -> dict[str, float]:
    started = time.perf_counter()
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    imported = time.perf_counter()
    configs = Path(__file__).resolve().parents[1] / "models" / "configs"
    tokenizer = CLIPTokenizer.from_pretrained(str(configs / "clip_tokenizer"), model_max_length=77,
                                              local_files_only=True)
    pipe = StableDiffusionPipeline.from_single_file(str(file), config=str(configs / "sd1"), local_files_only=True,
                                                    torch_dtype=torch.float32, tokenizer=tokenizer)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    loaded = time.perf_counter()
    with torch.no_grad():
        pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, width=size, height=size,
             guidance_scale=CFG, generator=torch.Generator().manual_seed(SEED))
    done = time.perf_counter()
    return {"imports": imported - started, "app_state": 0.0, "load": loaded - imported, "image": done - loaded}


def run_once(kind: str, file: Path, size: int, steps: int) -> dict[str, Any]:
    """One whole child process: wall seconds, CPU seconds, peak RSS (bytes) and the child's own phases."""
    with tempfile.TemporaryDirectory(prefix="sdweb-cold-") as tmp:
        command = [sys.executable, "-m", "sdweb.bench.coldstart", kind, str(file), "--size", str(size),
                   "--steps", str(steps), "--data-dir", str(Path(tmp) / "data")]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=child_environment(Path(tmp)), stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"coldstart {kind} child exited with {process.returncode}: {output[-500:]}")
    phases = next(json.loads(line[len(MARKER):]) for line in output.splitlines() if line.startswith(MARKER))
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_rss_bytes": usage.ru_maxrss * 1024,
            "phases": phases}


def coldstart_rows(runs: dict[str, list[dict[str, Any]]]) -> list[Row]:
    """Medians of sdweb vs bare per clock, plus peak RSS and each phase (pure: tests feed it numbers)."""
    rows = []
    for clock in ("wall", "cpu"):
        ours, bare = median(r[clock] for r in runs["sdweb"]), median(r[clock] for r in runs["bare"])
        rows.append(Row("coldstart", f"process start -> first image ({clock})", ours, "s", bare,
                        f"ratio <= {GOAL_RATIO:g}", ours / bare <= GOAL_RATIO))
    if runs.get("sdweb-nohash"):
        for clock in ("wall", "cpu"):
            ours, bare = median(r[clock] for r in runs["sdweb-nohash"]), median(r[clock] for r in runs["bare"])
            rows.append(Row("coldstart", f"same with --no-hashing ({clock})", ours, "s", bare))
    rss = {kind: median(r["peak_rss_bytes"] for r in kind_runs) / 2**30 for kind, kind_runs in runs.items()
           if kind_runs}
    rows.append(Row("coldstart", "peak RSS of the process", rss["sdweb"], "GiB", rss["bare"]))
    for phase in ("imports", "app_state", "load", "image"):
        ours = median(r["phases"][phase] for r in runs["sdweb"])
        bare = median(r["phases"][phase] for r in runs["bare"])
        rows.append(Row("coldstart", f"phase: {phase}", ours, "s", bare or None))
    return rows


def run_coldstart(repeats: int, *, size: int = 256, steps: int = 4, cache_dir: Path | None = None) -> SectionResult:
    from sdweb.bench.fullsize import ensure_fullsize

    path, build_seconds = ensure_fullsize("sd1", cache_dir)
    kinds = ("sdweb", "bare", "sdweb-nohash")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for index in range(repeats):  # rotate which goes first
        shift = index % len(kinds)
        for kind in kinds[shift:] + kinds[:shift]:
            runs[kind].append(run_once(kind, path, size, steps))
    details = {"file": str(path), "build_seconds": build_seconds, "size": size, "steps": steps, "runs": runs}
    return SectionResult("coldstart", coldstart_rows(runs), details)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdweb.bench.coldstart", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("sdweb", "sdweb-nohash", "bare"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.kind.startswith("sdweb"):
        with tempfile.TemporaryDirectory(prefix="sdweb-cold-data-") as tmp:
            phases = _sdweb_child(args.file.resolve(), args.size, args.steps, args.data_dir or Path(tmp),
                                  hashing=args.kind == "sdweb")
    else:
        phases = _bare_child(args.file.resolve(), args.size, args.steps)
    print(MARKER + json.dumps(phases), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
