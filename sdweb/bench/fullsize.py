"""Full-size random-weight checkpoints (SD 1.5, SDXL) in the A1111 single-file format, built from the bundled
real-size configs and cached on disk between benchmark runs (about 2 GB for SD 1.5, 7 GB for SDXL, fp16).

    python -m sdweb.bench.fullsize {sd1,sdxl} [--cache-dir DIR]

The weights are the libraries' own random initialisation under a fixed seed: the images are noise, but every
layer has its real size, so the timings are those of the real model.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parents[1] / "models" / "configs"
KINDS = {"sd1": "sd15-random-fullsize.safetensors", "sdxl": "sdxl-random-fullsize.safetensors"}
INIT_DTYPES = {"sdxl": "float16"}  # the dtype the random weights are made in (default fp32)


def default_cache_dir() -> Path:
    return Path(os.environ.get("SDWEB_BENCH_CACHE") or Path(tempfile.gettempdir()) / "sdweb-bench-cache")


def _config(kind: str, component: str) -> dict[str, Any]:
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    data = json.loads((CONFIGS / kind / component / name).read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if not key.startswith("_") and key != "architectures"}


def build_fullsize_pipeline(kind: str, seed: int = 0, device: str = "cpu") -> Any:
    """The diffusers pipeline at real size with random weights, built on `device` (a GPU initialises SDXL in
    seconds, a CPU in minutes), in fp32 (SDXL in fp16: in fp32 its weights alone take 14 GB)."""
    import torch

    index = json.loads((CONFIGS / kind / "model_index.json").read_text(encoding="utf-8"))
    torch.manual_seed(seed)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, INIT_DTYPES.get(kind, "float32")))
    try:
        with torch.device(device):
            return _build(kind, index)
    finally:
        torch.set_default_dtype(default_dtype)


def _build(kind: str, index: dict[str, Any]) -> Any:
    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from sdweb.testing.tiny import load_tiny_tokenizer

    components: dict[str, Any] = {
        "unet": diffusers.UNet2DConditionModel(**_config(kind, "unet")),
        "vae": diffusers.AutoencoderKL(**_config(kind, "vae")),
        "scheduler": getattr(diffusers, index["scheduler"][1]).from_config(_config(kind, "scheduler")),
        "text_encoder": CLIPTextModel(CLIPTextConfig(**_config(kind, "text_encoder"))),
        "tokenizer": load_tiny_tokenizer(),
    }
    if "text_encoder_2" in index:
        components["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig(**_config(kind, "text_encoder_2")))
        components["tokenizer_2"] = load_tiny_tokenizer()
    flags = {key: value for key, value in index.items() if not key.startswith("_") and not isinstance(value, list)}
    absent = {key: None for key, value in index.items()
              if isinstance(value, list) and value[0] is None}
    return getattr(diffusers, index["_class_name"])(**components, **absent, **flags)


def write_fullsize(kind: str, out_path: Path, seed: int = 0) -> Path:
    """Build and write one full-size random checkpoint (fp16, LDM keys) atomically."""
    import torch

    from sdweb.core.atomic import atomic_stream
    from sdweb.models.ldm_convert import pipeline_to_ldm
    from sdweb.models.merge import safetensors_header, write_tensor
    from sdweb.runtime.policy import probe_hardware

    pipe = build_fullsize_pipeline(kind, seed, "cuda" if probe_hardware().cuda_devices else "cpu")
    tensors = {key: value.detach().to(torch.float16).cpu().contiguous()
               for key, value in sorted(pipeline_to_ldm(pipe, kind).items())}
    del pipe
    gc.collect()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    entries = [(key, value.dtype, tuple(value.shape)) for key, value in tensors.items()]
    with atomic_stream(out_path) as handle:  # tensor by tensor: save_file would copy them all into one buffer
        handle.write(safetensors_header(entries, {"format": "pt", "sdweb.bench": f"{kind} random"}))
        for key in list(tensors):
            write_tensor(handle, tensors.pop(key))
    return out_path


def ensure_fullsize(kind: str, cache_dir: Path | None = None) -> tuple[Path, float]:
    """The cached file (built in a child process the first time, so this process's RSS stays clean) and the
    seconds spent building it (0 when cached)."""
    import subprocess
    import sys

    path = (cache_dir or default_cache_dir()) / KINDS[kind]
    if path.is_file():
        return path, 0.0
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sdweb.bench.fullsize", kind, "--cache-dir", str(path.parent)],
                   check=True)
    return path, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdweb.bench.fullsize", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    path = (args.cache_dir or default_cache_dir()) / KINDS[args.kind]
    started = time.perf_counter()
    write_fullsize(args.kind, path)
    print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
