"""LoRAs under --compile: the tiny SD1 through our generation service with the real torch.compile (inductor), one
job after another that switches LoRAs, stacks them and changes their weights. Each job's wall time and the graphs
dynamo compiled by then; the same jobs on an eager copy are the reference. Before the LoRA slot every LoRA change
recompiled the UNet (about 38 s each on this CPU, docs/benchmarks.md); now only the first LoRA and the first job
after LoRAs are switched off compile (once each per size)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sdweb.bench.opts import _state
from sdweb.bench.report import Row, SectionResult

JOBS = ("a cat", "a cat <lora:lora_a:1>", "a cat <lora:lora_b:0.5>", "a cat <lora:lora_a:1> <lora:lora_b:0.7>",
        "a cat <lora:lora_a:0.3>", "a cat", "a cat <lora:lora_b:1.2>", "a cat")
TITLE = "tiny-sd1.safetensors"


def run_lora_compile(*, size: int = 64, steps: int = 8) -> SectionResult:
    import numpy as np

    from sdweb.core.requests import Txt2ImgRequest
    from sdweb.generation.service import SaveOptions
    from sdweb.runtime.compile import graphs_compiled
    from sdweb.testing.tiny import write_tiny

    result = SectionResult("lora_compile", details={"size": size, "steps": steps, "jobs": list(JOBS)})
    no_save = SaveOptions(save_samples=False, save_grid=False)
    with tempfile.TemporaryDirectory(prefix="sdweb-bench-lora-") as tmp:
        states: dict[str, Any] = {}
        try:
            for name, flags in (("eager", []), ("compile", ["--compile"])):
                data = Path(tmp) / name
                write_tiny("sd1", data / "models" / "Stable-diffusion" / TITLE, seed=1)
                write_tiny("lora", data / "models" / "Lora" / "lora_a.safetensors", seed=1)
                write_tiny("lora", data / "models" / "Lora" / "lora_b.safetensors", seed=2)
                states[name] = _state(data, flags)
            timings: dict[str, list[float]] = {"eager": [], "compile": []}
            graphs: list[int] = []
            diffs: list[int] = []
            for prompt in JOBS:
                images = {}
                for name, state in states.items():
                    request = Txt2ImgRequest(prompt=prompt, seed=1, steps=steps, width=size, height=size,
                                             cfg_scale=7.0, sampler_name="Euler")
                    started = time.perf_counter()
                    images[name] = np.asarray(state.service.txt2img(request, None, no_save).images[0], dtype=np.int16)
                    timings[name].append(time.perf_counter() - started)
                graphs.append(graphs_compiled())
                diffs.append(int(np.abs(images["compile"] - images["eager"]).max()))
        finally:
            for state in states.values():
                state.queue.shutdown()
    result.details |= {"seconds": timings, "graphs_compiled_after_each_job": graphs, "max_abs_pixel_diff": diffs}
    for index, prompt in enumerate(JOBS):
        new = graphs[index] - (graphs[index - 1] if index else 0)
        result.rows.append(Row("lora_compile", f"job {index + 1}: {prompt!r}", timings["compile"][index], "s",
                               timings["eager"][index], note=f"{new} graph(s) compiled; max |pixel diff| vs eager "
                                                             f"{diffs[index]}"))
    return result
