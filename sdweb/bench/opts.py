"""Optimisations behind the runtime policy, on the tiny SD1 through our generation service (CPU here):
eager (default plan) vs --compile, --opt-fused-qkv and --opt-channelslast, each a separately loaded copy of the
same file. The first --compile call (compiling the UNet and VAE decoder for this size) is timed on its own;
then every variant gets one discarded warm-up round and `repeats` interleaved rounds (rotating order).
Figures are steady-state medians and ratios to eager. CPU figures say little about the GPU goals."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sdweb.bench.overhead import interleaved
from sdweb.bench.report import Row, SectionResult, median

PROMPT, NEGATIVE, CFG, SEED = "a photo of a cat", "blurry", 7.0, 1
VARIANTS = {"eager": [], "compile": ["--compile"], "fused_qkv": ["--opt-fused-qkv"],
            "channels_last": ["--opt-channelslast"]}
TITLE = "tiny-sd1.safetensors"


def _state(data: Path, flags: list[str]) -> Any:
    from sdweb.cli import parse_options
    from sdweb.state import build_app_state

    return build_app_state(parse_options(["--data-dir", str(data), "--no-hashing", *flags], {}))


def _runner(state: Any, size: int, steps: int) -> Any:
    from sdweb.core.requests import Txt2ImgRequest
    from sdweb.generation.service import SaveOptions

    request = Txt2ImgRequest(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=steps, width=size,
                             height=size, cfg_scale=CFG, sampler_name="Euler",
                             override_settings={"sd_model_checkpoint": TITLE})
    no_save = SaveOptions(save_samples=False, save_grid=False)
    return lambda: state.service.txt2img(request, None, no_save)


def _compile_seconds(state: Any) -> dict[str, Any]:
    from sdweb.runtime.compile import compiled_forward

    pipe = state.manager.get(TITLE).base_pipeline
    found: dict[str, Any] = {}
    for label, module in (("unet", pipe.unet), ("vae_decoder", pipe.vae.decoder)):
        wrapper = compiled_forward(module)
        if wrapper is not None:
            found[label] = {"x".join(map(str, key)): seconds for key, seconds in wrapper.compile_seconds.items()}
        else:
            found[label] = "not compiled (fell back to eager, or not installed)"
    return found


def run_opts(repeats: int, *, size: int = 64, steps: int = 30) -> SectionResult:
    import numpy as np

    from sdweb.testing.tiny import write_tiny

    result = SectionResult("opts", details={"size": size, "steps": steps, "repeats": repeats})
    with tempfile.TemporaryDirectory(prefix="sdweb-bench-opts-") as tmp:
        states = {}
        try:
            for name, flags in VARIANTS.items():
                data = Path(tmp) / name
                write_tiny("sd1", data / "models" / "Stable-diffusion" / TITLE, seed=1)
                states[name] = _state(data, flags)
            runs = {name: _runner(state, size, steps) for name, state in states.items()}
            first: dict[str, float] = {}
            images: dict[str, Any] = {}
            for name, run in runs.items():  # loads the model; for compile this call also compiles
                started = time.perf_counter()
                images[name] = np.asarray(run().images[0], dtype=np.int16)
                first[name] = time.perf_counter() - started
            result.details["first_call_seconds"] = first
            result.details["compile_seconds"] = _compile_seconds(states["compile"])
            result.details["max_abs_pixel_diff_vs_eager"] = {
                name: int(np.abs(image - images["eager"]).max()) for name, image in images.items()}
            interleaved(runs, 1)  # discarded warm-up round
            times = interleaved(runs, repeats)
        finally:
            for state in states.values():
                state.queue.shutdown()
    result.details["raw_seconds"] = times
    result.rows += _rows(times, first, result.details)
    return result


def _rows(times: dict[str, dict[str, list[float]]], first: dict[str, float], details: dict[str, Any]) -> list[Row]:
    size, steps = details["size"], details["steps"]
    label = f"tiny SD1 {size}px {steps} steps"
    rows = [Row("opts", f"{label} --compile first call (load + compile)", first["compile"], "s", first["eager"],
                note="reference: the eager first call (load + warm-up)")]
    diffs = details["max_abs_pixel_diff_vs_eager"]
    for clock, by_name in times.items():
        eager = median(by_name["eager"])
        rows.append(Row("opts", f"{label} eager ({clock})", eager, "s"))
        for name in VARIANTS:
            if name == "eager":
                continue
            note = f"max |pixel diff| vs eager {diffs[name]}" if clock == "wall" else ""
            rows.append(Row("opts", f"{label} {name} vs eager ({clock})", median(by_name[name]), "s", eager,
                            note=note))
    return rows
