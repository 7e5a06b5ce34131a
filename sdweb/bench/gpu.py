"""GPU figures (only where CUDA is present): SD 1.5 512 px and SDXL 1024 px, 20 steps, Euler, batch 1:
seconds per image and end-to-end it/s (steps / wall seconds, text encoding and VAE decode included), ours vs
the bare diffusers call on the same loaded pipeline; batch-8 throughput (images/s); peak VRAM (torch's
max_memory_allocated) with the default plan, --medvram and --lowvram.

The models are full-size random-weight files built from the bundled configs (sdweb/bench/fullsize.py), so
no download is needed; the weights are noise but every layer has its real size.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdweb.bench.report import Row, SectionResult, median

MODELS = (("sd1", 512), ("sdxl", 1024))
MEMORY_MODES = (("default", []), ("medvram", ["--medvram"]), ("lowvram", ["--lowvram"]),
                ("lowvram-group", ["--lowvram", "--lowvram-offload", "group"]))
GIB = 2**30


def cuda_reason() -> str | None:
    """None when a CUDA device is usable, else why not (decided by the runtime policy's probe)."""
    from sdweb.runtime.policy import probe_hardware

    hardware = probe_hardware()
    if not hardware.cuda_devices:
        return "no CUDA device"
    return None


def _timed(run: Callable[[], Any]) -> float:
    import torch

    torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return time.perf_counter() - started


def _peak_gib(run: Callable[[], Any]) -> tuple[float, float]:
    """(seconds, peak GiB allocated) of one run."""
    import torch

    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    seconds = _timed(run)
    return seconds, torch.cuda.max_memory_allocated() / GIB


class _Bench:
    """One app state on one model file with one set of memory flags."""

    def __init__(self, data: Path, flags: list[str], title: str, size: int, steps: int) -> None:
        from sdweb.cli import parse_options
        from sdweb.core.requests import Txt2ImgRequest
        from sdweb.generation.service import SaveOptions
        from sdweb.state import build_app_state

        self.state = build_app_state(parse_options(["--data-dir", str(data), "--no-hashing", *flags], {}))
        self.state.settings.update({"live_previews_enable": False}, save=False)
        self.title, self.size, self.steps = title, size, steps
        self.no_save = SaveOptions(save_samples=False, save_grid=False)
        self.request_type = Txt2ImgRequest

    def request(self, batch_size: int = 1) -> Any:
        return self.request_type(prompt="a photo of a cat", negative_prompt="blurry", seed=1, steps=self.steps,
                                 width=self.size, height=self.size, cfg_scale=7.0, sampler_name="Euler",
                                 batch_size=batch_size, override_settings={"sd_model_checkpoint": self.title})

    def ours(self, batch_size: int = 1) -> Callable[[], Any]:
        request = self.request(batch_size)
        return lambda: self.state.service.txt2img(request, None, self.no_save)

    def bare(self, batch_size: int = 1) -> Callable[[], Any]:
        import torch
        from diffusers import EulerDiscreteScheduler

        model = self.state.manager.get(self.title)
        pipe = model.pipeline("txt2img")
        config = dict(model.scheduler_config)
        self.placement = {name: f"{module.device} {module.dtype}" for name, module in pipe.components.items()
                          if isinstance(module, torch.nn.Module)}  # where the bare call finds the components
        plan = self.state.plan

        def run() -> Any:
            pipe.scheduler = EulerDiscreteScheduler.from_config(config)
            with torch.no_grad(), plan.autocast_context(), plan.sdpa_context():  # the same numerics as ours
                return pipe("a photo of a cat", negative_prompt="blurry", num_inference_steps=self.steps,
                            width=self.size, height=self.size, guidance_scale=7.0,
                            num_images_per_prompt=batch_size,
                            generator=torch.Generator(str(pipe.unet.device)).manual_seed(1)).images

        return run

    def close(self) -> None:
        import torch

        self.state.queue.shutdown()
        self.state.manager.unload_all()
        self.state = None
        gc.collect()
        torch.cuda.empty_cache()


def _speed_rows(label: str, bench: _Bench, steps: int, repeats: int, batch: int,
                details: dict[str, Any]) -> list[Row]:
    ours, bare = bench.ours(), bench.bare()
    ours()
    bare()  # warm-up (loads, cuDNN autotune, allocator)
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    for index in range(repeats):
        order = (("ours", ours), ("bare", bare)) if index % 2 == 0 else (("bare", bare), ("ours", ours))
        for name, run in order:
            times[name].append(_timed(run))
    ours_s, bare_s = median(times["ours"]), median(times["bare"])
    rows = [
        Row("gpu", f"{label} bs1 s/image", ours_s, "s", bare_s, "ratio <= 1.02", ours_s / bare_s <= 1.02),
        Row("gpu", f"{label} bs1 it/s (end-to-end)", steps / ours_s, "it/s", steps / bare_s),
    ]
    ours8, bare8 = bench.ours(batch), bench.bare(batch)
    ours8_s, bare8_s = _timed(ours8), _timed(bare8)
    rows.append(Row("gpu", f"{label} batch {batch} images/s", batch / ours8_s, "img/s", batch / bare8_s))
    _, ours_peak = _peak_gib(ours)
    _, bare_peak = _peak_gib(bare)
    rows.append(Row("gpu", f"{label} bs1 peak VRAM default", ours_peak, "GiB", bare_peak))
    details |= {"raw_seconds": times, "batch_seconds": {"ours": ours8_s, "bare": bare8_s},
                "peak_gib_default": {"ours": ours_peak, "bare": bare_peak}}
    return rows


def _sync_rows(label: str, bench: _Bench, steps: int, details: dict[str, Any]) -> list[Row]:
    """Host<->device synchronisations during one image: torch's sync debug mode warns at each synchronising
    call, attributed to the Python line that made it; counted by line."""
    import warnings
    from collections import Counter

    import torch

    run = bench.ours()
    run()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    sites = Counter(f"{warning.filename}:{warning.lineno}" for warning in caught
                    if "synchroniz" in str(warning.message))
    details["sync_sites"] = dict(sites.most_common(25))
    per_step = sum(count for count in sites.values() if count >= steps) / steps
    return [Row("gpu", f"{label} host syncs per image", sum(sites.values()), "syncs",
                note=f"{per_step:.1f} per step at lines hit every step")]


def _worker_rows(label: str, data: Path, title: str, size: int, steps: int, jobs: int,
                 details: dict[str, Any]) -> list[Row]:
    """Images/s for `jobs` one-image jobs through the queue: one worker vs two workers sharing the device."""
    rows = []
    for per_device in (1, 2):
        bench = _Bench(data, ["--workers-per-device", str(per_device), "--scheduling", "fifo"], title, size, steps)
        try:
            request = bench.request()
            for job in [bench.state.submit("txt2img", request, bench.no_save) for _ in range(2 * per_device)]:
                job.wait()  # every worker loads and warms up
            started = time.perf_counter()
            for job in [bench.state.submit("txt2img", request, bench.no_save) for _ in range(jobs)]:
                job.wait()
            seconds = time.perf_counter() - started
        finally:
            bench.close()
        rows.append(Row("gpu", f"{label} {jobs} jobs, {per_device} worker(s) on the device", jobs / seconds,
                        "img/s"))
        details[f"workers_{per_device}_seconds"] = seconds
    return rows


def _compile_rows(label: str, data: Path, title: str, size: int, steps: int, repeats: int,
                  details: dict[str, Any]) -> list[Row]:
    bench = _Bench(data, ["--compile"], title, size, steps)
    try:
        run = bench.ours()
        first = _timed(run)
        seconds = median([_timed(run) for _ in range(repeats)])
    finally:
        bench.close()
    details["compile"] = {"first_call_s": first, "seconds": seconds}
    return [Row("gpu", f"{label} bs1 it/s --compile (end-to-end)", steps / seconds, "it/s",
                note=f"first call (compiles) {first:.1f} s")]


def _mode_rows(label: str, data: Path, title: str, size: int, steps: int, details: dict[str, Any]) -> list[Row]:
    rows = []
    for mode, flags in MEMORY_MODES[1:]:
        bench = _Bench(data, flags, title, size, steps)
        try:
            run = bench.ours()
            run()  # load + warm-up in this mode
            seconds, peak = _peak_gib(run)
            rows.append(Row("gpu", f"{label} bs1 peak VRAM --{mode}", peak, "GiB", note=f"{seconds:.2f} s/image"))
            details[f"{mode}"] = {"seconds": seconds, "peak_gib": peak}
        finally:
            bench.close()
    return rows


PARTS = ("speed", "modes", "syncs", "workers", "compile")


def _model_rows(label: str, data: Path, title: str, size: int, steps: int, repeats: int, batch: int,
                parts: tuple[str, ...]) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    details: dict[str, Any] = {"size": size, "steps": steps, "repeats": repeats, "batch": batch}
    if "speed" in parts or "syncs" in parts:
        bench = _Bench(data, [], title, size, steps)
        try:
            if "syncs" in parts:
                rows += _part(label, "syncs", details, lambda: _sync_rows(label, bench, steps, details))
            if "speed" in parts:
                rows += _part(label, "speed", details,
                              lambda: _speed_rows(label, bench, steps, repeats, batch, details))
                details["bare_placement"] = getattr(bench, "placement", None)
        finally:
            bench.close()
    if "modes" in parts:
        rows += _part(label, "modes", details, lambda: _mode_rows(label, data, title, size, steps, details))
    if "workers" in parts:
        rows += _part(label, "workers", details,
                      lambda: _worker_rows(label, data, title, size, steps, batch, details))
    if "compile" in parts:
        rows += _part(label, "compile", details,
                      lambda: _compile_rows(label, data, title, size, steps, repeats, details))
    return rows, details


def _part(label: str, part: str, details: dict[str, Any], run: Callable[[], list[Row]]) -> list[Row]:
    """One part's rows; a failing part leaves its traceback in the details and the other parts still run."""
    import traceback

    try:
        return run()
    except Exception as error:  # e.g. OOM or a dtype mismatch in one mode: keep the other parts' figures
        details[f"{part}_error"] = traceback.format_exc()[-4000:]
        return [Row("gpu", f"{label} {part} failed", None, note=f"{type(error).__name__}: {error}"[:200])]


def run_gpu(repeats: int, *, steps: int = 20, batch: int = 8, cache_dir: Path | None = None,
            models: tuple[tuple[str, int], ...] = MODELS, parts: tuple[str, ...] = PARTS[:3]) -> SectionResult:
    reason = cuda_reason()
    if reason is not None:
        return SectionResult("gpu", skipped=reason, details={"skipped": reason})
    import torch

    from sdweb.bench.fullsize import KINDS, ensure_fullsize
    from sdweb.bench.overhead import _link_or_copy

    result = SectionResult("gpu", details={"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                           "parts": list(parts)})
    for kind, size in models:
        path, build_seconds = ensure_fullsize(kind, cache_dir)
        label = {"sd1": "SD1.5", "sdxl": "SDXL"}[kind] + f" {size}px {steps} steps"
        with tempfile.TemporaryDirectory(prefix="sdweb-gpu-") as tmp:
            data = Path(tmp)
            _link_or_copy(path, data / "models" / "Stable-diffusion" / KINDS[kind])
            try:
                rows, details = _model_rows(label, data, KINDS[kind], size, steps, repeats, batch, parts)
            except Exception as error:  # e.g. OOM or NaN on one model: keep the other model's figures
                rows = [Row("gpu", f"{label} failed", None, note=f"{type(error).__name__}: {error}"[:200])]
                details = {"error": f"{type(error).__name__}: {error}"}
        details["build_seconds"] = build_seconds
        result.rows += rows
        result.details[kind] = details
    return result
