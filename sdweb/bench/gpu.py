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


def load_bare_pipeline(kind: str, file: Path, device: str = "cuda") -> Any:
    """`from_single_file` with the bundled configs (offline), fp16, on the GPU."""
    import diffusers
    import torch
    from transformers import CLIPTokenizer

    configs = Path(__file__).resolve().parents[1] / "models" / "configs"
    tokenizer = CLIPTokenizer.from_pretrained(str(configs / "clip_tokenizer"), model_max_length=77,
                                              local_files_only=True)
    if kind == "sdxl":
        pipe_class, extra = diffusers.StableDiffusionXLPipeline, {"tokenizer_2": tokenizer}
    else:
        pipe_class, extra = diffusers.StableDiffusionPipeline, {"safety_checker": None,
                                                                 "requires_safety_checker": False}
    pipe = pipe_class.from_single_file(str(file), config=str(configs / kind), local_files_only=True,
                                       torch_dtype=torch.float16, tokenizer=tokenizer, **extra)
    return pipe.to(device)


def component_report(pipe: Any) -> dict[str, Any]:
    """Per component: parameter counts by device and by dtype, and the offload hooks present."""
    from collections import Counter

    import torch

    report = {}
    for name, module in pipe.components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        parameters = list(module.parameters())
        report[name] = {"devices": dict(Counter(str(p.device) for p in parameters)),
                        "dtypes": dict(Counter(str(p.dtype) for p in parameters)),
                        "hooks": sorted({hook for sub in module.modules()
                                         for hook in ("_hf_hook", "_diffusers_hook") if hasattr(sub, hook)})}
    return report


class _Bench:
    """One app state on one model file with one set of memory flags."""

    def __init__(self, data: Path, flags: list[str], title: str, size: int, steps: int, kind: str = "sd1") -> None:
        from sdweb.cli import parse_options
        from sdweb.core.requests import Txt2ImgRequest
        from sdweb.generation.service import SaveOptions
        from sdweb.state import build_app_state

        self.state = build_app_state(parse_options(["--data-dir", str(data), "--no-hashing", *flags], {}))
        self.state.settings.update({"live_previews_enable": False}, save=False)
        self.title, self.size, self.steps, self.kind = title, size, steps, kind
        self.file = data / "models" / "Stable-diffusion" / title
        self.bare_pipe: Any = None
        self.device = "cuda"  # the CPU for a smoke run of this code
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
        """The same image from a bare diffusers pipeline of the same file, loaded on its own as a diffusers user
        loads it (`from_single_file`, fp16, on the GPU): sharing our components would let its VAE upcast and our
        NaN retry change each other's dtypes."""
        import torch
        from diffusers import EulerDiscreteScheduler

        if self.bare_pipe is None:
            self.bare_pipe = load_bare_pipeline(self.kind, self.file, self.device)
        pipe = self.bare_pipe
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)

        def run() -> Any:
            with torch.no_grad():
                return pipe("a photo of a cat", negative_prompt="blurry", num_inference_steps=self.steps,
                            width=self.size, height=self.size, guidance_scale=7.0,
                            num_images_per_prompt=batch_size,
                            generator=torch.Generator(self.device).manual_seed(1)).images

        return run

    def components(self) -> dict[str, Any]:
        """Where our pipeline's components are and in which dtypes (parameter counts by device / dtype)."""
        return component_report(self.state.manager.get(self.title).pipeline("txt2img"))

    def close(self) -> None:
        import torch

        self.state.queue.shutdown()
        self.state.manager.unload_all()
        self.state = self.bare_pipe = None
        gc.collect()
        torch.cuda.empty_cache()


def _speed_rows(label: str, bench: _Bench, steps: int, repeats: int, batch: int,
                details: dict[str, Any]) -> list[Row]:
    import torch

    ours = bench.ours()
    ours()  # warm-up (load, cuDNN autotune, allocator)
    details["components"] = bench.components()
    _, ours_peak = _peak_gib(ours)  # before the bare pipeline is on the GPU too
    resident = torch.cuda.memory_allocated() / GIB
    bare = bench.bare()
    bare()
    _, bare_peak = _peak_gib(bare)
    bare_peak -= resident  # our weights stay resident while the bare pipeline runs
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    for index in range(repeats):
        order = (("ours", ours), ("bare", bare)) if index % 2 == 0 else (("bare", bare), ("ours", ours))
        for name, run in order:
            times[name].append(_timed(run))
    ours_s, bare_s = median(times["ours"]), median(times["bare"])
    rows = [
        Row("gpu", f"{label} bs1 s/image", ours_s, "s", bare_s, "ratio <= 1.02", ours_s / bare_s <= 1.02),
        Row("gpu", f"{label} bs1 it/s (end-to-end)", steps / ours_s, "it/s", steps / bare_s),
        Row("gpu", f"{label} bs1 peak VRAM default", ours_peak, "GiB", bare_peak),
    ]
    details |= {"raw_seconds": times, "peak_gib_default": {"ours": ours_peak, "bare": bare_peak}}
    ours8, bare8 = bench.ours(batch), bench.bare(batch)
    ours8()
    bare8()  # a new batch shape: cuDNN's autotune and the allocator's growth would go to whichever ran first
    ours8_s, bare8_s = median([_timed(ours8), _timed(ours8)]), median([_timed(bare8), _timed(bare8)])
    rows.append(Row("gpu", f"{label} batch {batch} images/s", batch / ours8_s, "img/s", batch / bare8_s))
    details["batch_seconds"] = {"ours": ours8_s, "bare": bare8_s}
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
                  details: dict[str, Any], cuda_graphs: bool = False) -> list[Row]:
    """--compile as shipped (inductor, default mode), or with CUDA graphs (mode "reduce-overhead": the UNet step
    replayed as one graph per shape), put in place of the shipped compile on the loaded pipeline."""
    bench = _Bench(data, ["--compile"], title, size, steps)
    key = "compile_cuda_graphs" if cuda_graphs else "compile"
    try:
        run = bench.ours()
        if cuda_graphs:
            _use_cuda_graphs(bench.state.manager.get(title).pipeline("txt2img"))
        first = _timed(run)
        seconds = median([_timed(run) for _ in range(repeats)])
    finally:
        bench.close()
    details[key] = {"first_call_s": first, "seconds": seconds}
    what = "--compile + CUDA graphs" if cuda_graphs else "--compile"
    return [Row("gpu", f"{label} bs1 it/s {what} (end-to-end)", steps / seconds, "it/s",
                note=f"first call (compiles) {first:.1f} s")]


def _use_cuda_graphs(pipe: Any) -> None:
    """Recompile the UNet with mode="reduce-overhead". A graph's outputs live in its memory pool and are
    overwritten by its next replay, so each output is cloned before the sampler keeps it."""
    import torch

    from sdweb.runtime.compile import install_compile, uninstall_compile

    def compiler(function: Callable[..., Any], dynamic: bool = False) -> Callable[..., Any]:
        compiled = torch.compile(function, dynamic=dynamic, mode="reduce-overhead")

        def run(*args: Any, **kwargs: Any) -> Any:
            torch.compiler.cudagraph_mark_step_begin()
            out = compiled(*args, **kwargs)
            if isinstance(out, tuple):
                return tuple(item.clone() if isinstance(item, torch.Tensor) else item for item in out)
            if hasattr(out, "sample"):
                out.sample = out.sample.clone()
            return out

        return run

    uninstall_compile(pipe.unet)
    install_compile(pipe.unet, "UNet (CUDA graphs)", compiler)


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
            try:
                details[f"{mode}_components"] = bench.components()
            finally:
                bench.close()
    return rows


PARTS = ("speed", "modes", "syncs", "workers", "compile", "cudagraphs")


def _model_rows(label: str, data: Path, kind: str, title: str, size: int, steps: int, repeats: int,
                batch: int, parts: tuple[str, ...]) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    details: dict[str, Any] = {"size": size, "steps": steps, "repeats": repeats, "batch": batch}
    if "speed" in parts or "syncs" in parts:
        bench = _Bench(data, [], title, size, steps, kind)
        try:
            if "syncs" in parts:
                rows += _part(label, "syncs", details, lambda: _sync_rows(label, bench, steps, details))
            if "speed" in parts:
                rows += _part(label, "speed", details,
                              lambda: _speed_rows(label, bench, steps, repeats, batch, details))
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
    if "cudagraphs" in parts:
        rows += _part(label, "cudagraphs", details,
                      lambda: _compile_rows(label, data, title, size, steps, repeats, details, cuda_graphs=True))
    return rows, details


def _part(label: str, part: str, details: dict[str, Any], run: Callable[[], list[Row]]) -> list[Row]:
    """One part's rows; a failing part leaves its traceback in the details and the other parts still run. Each
    part's outcome is also printed at once, so a step cut short by its time limit keeps the parts done before."""
    import dataclasses
    import json
    import traceback

    try:
        rows = run()
    except Exception as error:  # e.g. OOM or a dtype mismatch in one mode: keep the other parts' figures
        details[f"{part}_error"] = traceback.format_exc()[-4000:]
        rows = [Row("gpu", f"{label} {part} failed", None, note=f"{type(error).__name__}: {error}"[:200])]
        print(details[f"{part}_error"], flush=True)
    print(json.dumps({"part": part, "rows": [dataclasses.asdict(row) for row in rows], "details": details},
                     default=str), flush=True)
    return rows


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
                rows, details = _model_rows(label, data, kind, KINDS[kind], size, steps, repeats, batch, parts)
            except Exception as error:  # e.g. OOM or NaN on one model: keep the other model's figures
                rows = [Row("gpu", f"{label} failed", None, note=f"{type(error).__name__}: {error}"[:200])]
                details = {"error": f"{type(error).__name__}: {error}"}
        details["build_seconds"] = build_seconds
        result.rows += rows
        result.details[kind] = details
    return result
