"""Our generation service vs the bare diffusers pipeline call on the same loaded model: same file, sampler
(Euler = EulerDiscreteScheduler), size, steps, CFG and seed, on CPU.

Variants run interleaved in a rotating order (so machine noise hits all of them alike):
- ours: GenerationService.txt2img with no job context (no progress, no previews, nothing saved);
- ours (queue): the same request through the job queue, as the UI and API run it, with the default
  progress reporting and live previews (every 10 steps);
- bare: `pipe(prompt, negative_prompt=..., num_inference_steps=..., generator=...)` on the very pipeline
  object our manager loaded, with diffusers' own EulerDiscreteScheduler from the model's scheduler config.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdweb.bench.report import Row, SectionResult, median

PROMPT, NEGATIVE, CFG, SEED = "a photo of a cat", "blurry", 7.0, 1
GOAL_RATIO = 1.02


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(source, target)
    except OSError:
        import shutil

        shutil.copyfile(source, target)


def _variants(state: Any, title: str, size: int, steps: int, with_queue: bool) -> dict[str, Callable[[], Any]]:
    import torch
    from diffusers import EulerDiscreteScheduler

    from sdweb.core.requests import Txt2ImgRequest
    from sdweb.generation.service import SaveOptions
    from sdweb.state import GenerationJob

    request = Txt2ImgRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=steps, width=size,
                             height=size, cfg_scale=CFG, sampler_name="Euler",
                             override_settings={"sd_model_checkpoint": title})
    no_save = SaveOptions(save_samples=False, save_grid=False)
    state.service.txt2img(request, None, no_save)  # load and warm up
    model = state.manager.get(title)
    pipe = model.pipeline("txt2img")
    pipe.set_progress_bar_config(disable=True)  # the same object serves both: no tqdm output for either
    scheduler_config = dict(model.scheduler_config)

    def ours() -> Any:
        return state.service.txt2img(request, None, no_save)

    def ours_queue() -> Any:
        return state.queue.submit("txt2img", GenerationJob(request, no_save)).wait()

    def bare() -> Any:
        pipe.scheduler = EulerDiscreteScheduler.from_config(scheduler_config)
        with torch.no_grad():
            return pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, width=size, height=size,
                        guidance_scale=CFG, generator=torch.Generator().manual_seed(SEED)).images

    variants = {"ours": ours, "bare": bare}
    if with_queue:
        variants["ours_queue"] = ours_queue
    bare()  # warm up the bare path too
    return variants


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved(variants: dict[str, Callable[[], Any]], repeats: int,
                clocks: dict[str, Callable[[], float]] = CLOCKS) -> dict[str, dict[str, list[float]]]:
    """Run each variant `repeats` times, rotating the order every round; seconds per run on each clock
    (wall time, and this process's CPU time, which other processes on a shared machine disturb less)."""
    names = list(variants)
    times: dict[str, dict[str, list[float]]] = {clock: {name: [] for name in names} for clock in clocks}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = {clock: read() for clock, read in clocks.items()}
            variants[name]()
            for clock, read in clocks.items():
                times[clock][name].append(read() - started[clock])
    return times


def _rows(label: str, times: dict[str, dict[str, list[float]]]) -> list[Row]:
    rows = []
    for clock, by_name in times.items():
        bare = median(by_name["bare"])
        for name, metric in (("ours", "service"), ("ours_queue", "service via queue, previews")):
            if name not in by_name:
                continue
            value = median(by_name[name])
            rows.append(Row("overhead", f"{label} {metric} vs bare ({clock})", value, "s", bare,
                            f"ratio <= {GOAL_RATIO}", value / bare <= GOAL_RATIO))
    return rows


def measure(state: Any, title: str, label: str, size: int, steps: int, repeats: int,
            with_queue: bool) -> tuple[list[Row], dict[str, Any]]:
    variants = _variants(state, title, size, steps, with_queue)
    interleaved(variants, 1)  # one discarded round: the first timed runs were slower for every variant
    times = interleaved(variants, repeats)
    details = {"size": size, "steps": steps, "repeats": repeats, "sampler": "Euler", "cfg": CFG,
               "raw_seconds": times,
               "median_seconds": {clock: {name: median(values) for name, values in by_name.items()}
                                  for clock, by_name in times.items()},
               "ratio_ours_to_bare": {clock: median(by_name["ours"]) / median(by_name["bare"])
                                      for clock, by_name in times.items()}}
    return _rows(label, times), details


def _state(data: Path, extra_flags: list[str]) -> Any:
    from sdweb.cli import parse_options
    from sdweb.state import build_app_state

    state = build_app_state(parse_options(["--data-dir", str(data), *extra_flags], {}))
    return state


def run_overhead(repeats: int, *, tiny_size: int = 64, tiny_steps: int = 30, fullsize: bool = True,
                 full_size: int = 256, full_steps: int = 4, full_repeats: int | None = None,
                 cache_dir: Path | None = None, with_queue: bool = True,
                 threads: int | None = None) -> SectionResult:
    import torch

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run_overhead(repeats, tiny_size, tiny_steps, fullsize, full_size, full_steps, full_repeats,
                             cache_dir, with_queue)
    finally:
        torch.set_num_threads(previous_threads)


def _run_overhead(repeats: int, tiny_size: int, tiny_steps: int, fullsize: bool, full_size: int, full_steps: int,
                  full_repeats: int | None, cache_dir: Path | None, with_queue: bool) -> SectionResult:
    import torch

    from sdweb.testing.tiny import write_tiny

    result = SectionResult("overhead", details={"threads": torch.get_num_threads()})
    with tempfile.TemporaryDirectory(prefix="sdweb-bench-") as tmp:
        data = Path(tmp)
        write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny-sd1.safetensors", seed=1)
        state = _state(data, ["--no-hashing"])
        try:
            rows, details = measure(state, "tiny-sd1.safetensors", f"tiny SD1 {tiny_size}px {tiny_steps} steps",
                                    tiny_size, tiny_steps, repeats, with_queue)
            result.rows += rows
            result.details["tiny"] = details
            if fullsize:
                from sdweb.bench.fullsize import KINDS, ensure_fullsize

                state.manager.unload_all()
                path, build_seconds = ensure_fullsize("sd1", cache_dir)
                _link_or_copy(path, data / "models" / "Stable-diffusion" / KINDS["sd1"])
                state.registry.refresh_all()
                rows, details = measure(state, KINDS["sd1"], f"full-size SD1.5 {full_size}px {full_steps} steps",
                                        full_size, full_steps, full_repeats or repeats, with_queue=False)
                details["file"], details["build_seconds"] = str(path), build_seconds
                result.rows += rows
                result.details["fullsize_sd15"] = details
        finally:
            state.queue.shutdown()
    return result
