"""Memory while loading a full-size random-weight checkpoint on the CPU: peak and settled RSS against the size of
the loaded weights in the compute dtype. Each load runs in a fresh process:

- sdweb: build the app state (--no-hashing, so the sha256 read is not counted), then `manager.get(title)`:
  the file is loaded and the runtime plan applied, as the first job does;
- bare: `StableDiffusionPipeline.from_single_file(..., torch_dtype=float32)` (SD 1.5 only), the reference.

Before the baseline each child loads a tiny SD1 file through the same path and drops it, so the libraries'
lazily imported modules are not counted as weights. The child reads its RSS then (the baseline), the kernel's high-water mark VmHWM after the load
(the peak) and VmRSS after a garbage collection (settled). Goals (issue 24) on the growth over the baseline:
peak <= 1.15x the weights, settled <= 1.05x.

    python -m sdweb.bench.memory {sdweb,bare} FILE   (one child run, prints JSON)
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdweb.bench.report import Row, SectionResult, median
from sdweb.config.environment import child_environment

PEAK_GOAL, SETTLED_GOAL = 1.15, 1.05
MARKER = "MEMORY "
WARM_UP_NAME = "warm-up-tiny-sd1.safetensors"


def read_status(field: str, text: str | None = None) -> int:
    """A `/proc/self/status` size field (VmRSS, VmHWM) in bytes."""
    if text is None:
        text = Path("/proc/self/status").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> None:
    """Start VmHWM from the current RSS (Linux >= 4.0: writing 5 to clear_refs)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")


def _weights_bytes(pipeline: Any) -> int:
    import torch

    total = 0
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(t.numel() * t.element_size() for t in (*component.parameters(), *component.buffers()))
    return total


def _baseline() -> dict[str, int]:
    """The RSS before the load; the peaks start from here."""
    gc.collect()
    _reset_peak()
    return {"baseline": read_status("VmRSS"), "baseline_anon": read_status("RssAnon")}


def _load_sdweb(file: Path, data: Path, anon: AnonPeak) -> Any:
    from sdweb.cli import parse_options
    from sdweb.state import build_app_state
    from sdweb.testing.tiny import write_tiny

    checkpoints = data / "models" / "Stable-diffusion"
    checkpoints.mkdir(parents=True, exist_ok=True)
    os.symlink(file, checkpoints / file.name)
    write_tiny("sd1", checkpoints / WARM_UP_NAME, seed=1)
    state = build_app_state(parse_options(["--data-dir", str(data), "--no-hashing"], {}))
    state.manager.get(WARM_UP_NAME)
    state.manager.unload_all()
    baseline = _baseline()
    anon.reset()
    model = state.manager.get(file.name)
    return state, model.base_pipeline, baseline


def _load_bare(file: Path, data: Path, anon: AnonPeak) -> Any:
    import torch
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    from sdweb.models.loader import load_checkpoint
    from sdweb.testing.tiny import write_tiny

    configs = Path(__file__).resolve().parents[1] / "models" / "configs"
    tokenizer = CLIPTokenizer.from_pretrained(str(configs / "clip_tokenizer"), model_max_length=77,
                                              local_files_only=True)
    warm_up = write_tiny("sd1", data / WARM_UP_NAME, seed=1)
    load_checkpoint(warm_up, config_cache_dir=data / "configs")  # the same from_single_file, on a tiny file
    baseline = _baseline()
    anon.reset()
    pipe = StableDiffusionPipeline.from_single_file(str(file), config=str(configs / "sd1"), local_files_only=True,
                                                    torch_dtype=torch.float32, tokenizer=tokenizer)
    return None, pipe, baseline


class AnonPeak:
    """Samples RssAnon (private memory, which the kernel cannot drop, unlike the file pages of an mmap'd
    checkpoint that VmRSS also counts) every few milliseconds in a thread and keeps the highest."""

    def __init__(self, every_seconds: float = 0.02) -> None:
        self.every_seconds, self.peak, self._stop = every_seconds, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, name="anon-peak", daemon=True)

    def reset(self) -> None:
        self.peak = read_status("RssAnon")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, read_status("RssAnon"))
            self._stop.wait(self.every_seconds)

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, read_status("RssAnon"))


def child(kind: str, file: Path) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="sdweb-mem-") as tmp, AnonPeak() as anon:
        state, pipeline, baseline = (_load_sdweb if kind == "sdweb" else _load_bare)(file, Path(tmp), anon)
        peak = read_status("VmHWM")
        gc.collect()
        settled = read_status("VmRSS")
        result = {**baseline, "peak": peak, "settled": settled, "weights": _weights_bytes(pipeline),
                  "file": file.stat().st_size, "peak_anon": anon.peak, "settled_anon": read_status("RssAnon")}
        if state is not None:
            state.queue.shutdown()
        return result


def run_once(kind: str, file: Path) -> dict[str, int]:
    with tempfile.TemporaryDirectory(prefix="sdweb-mem-") as tmp:
        done = subprocess.run([sys.executable, "-m", "sdweb.bench.memory", kind, str(file)],
                              env=child_environment(Path(tmp)),
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory {kind} child exited with {done.returncode}: {done.stderr[-800:]}")
    return next(json.loads(line[len(MARKER):]) for line in done.stdout.splitlines() if line.startswith(MARKER))


def memory_rows(label: str, runs: dict[str, list[dict[str, int]]]) -> list[Row]:
    """Peak and settled growth over the baseline against the weights, sdweb and (when run) bare. Pure."""
    rows = []
    for kind, kind_runs in runs.items():
        weights = median(r["weights"] for r in kind_runs)
        peak = median(r["peak"] - r["baseline"] for r in kind_runs)
        settled = median(r["settled"] - r["baseline"] for r in kind_runs)
        who = "sdweb" if kind == "sdweb" else "bare diffusers"
        rows.append(Row("memory", f"{label} {who}: peak RSS growth while loading", peak / 2**30, "GiB",
                        weights / 2**30, f"ratio <= {PEAK_GOAL}", peak / weights <= PEAK_GOAL))
        if all("peak_anon" in r for r in kind_runs):
            anon = median(r["peak_anon"] - r["baseline_anon"] for r in kind_runs)
            rows.append(Row("memory", f"{label} {who}: peak private (anonymous) RSS growth", anon / 2**30, "GiB",
                            weights / 2**30, note="" if kind != "sdweb" else
                            "private memory only: VmRSS also counts the checkpoint's mmap'd file pages"))
        rows.append(Row("memory", f"{label} {who}: settled RSS growth after load", settled / 2**30, "GiB",
                        weights / 2**30, f"ratio <= {SETTLED_GOAL}", settled / weights <= SETTLED_GOAL,
                        note="reference = the loaded weights' size in the compute dtype" if kind == "sdweb" else ""))
    return rows


def run_memory(repeats: int, *, kinds: Sequence[str] = ("sd1",), cache_dir: Path | None = None) -> SectionResult:
    from sdweb.bench.fullsize import ensure_fullsize

    result = SectionResult("memory")
    for kind in kinds:
        path, build_seconds = ensure_fullsize(kind, cache_dir)
        variants = ("sdweb", "bare") if kind == "sd1" else ("sdweb",)
        runs: dict[str, list[dict[str, int]]] = {variant: [] for variant in variants}
        for index in range(repeats):
            for variant in variants[index % len(variants):] + variants[:index % len(variants)]:
                runs[variant].append(run_once(variant, path))
        label = {"sd1": "SD 1.5", "sdxl": "SDXL"}[kind]
        result.rows += memory_rows(label, runs)
        result.details[kind] = {"file": str(path), "build_seconds": build_seconds, "runs": runs}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdweb.bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("sdweb", "bare"))
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    print(MARKER + json.dumps(child(args.kind, args.file.resolve())), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
