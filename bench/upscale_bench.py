"""x4 upscale of a 512x512 image to 2048x2048 with the tiny ESRGAN on the CPU: tiled (ESRGAN_tile 192,
overlap 8, A1111's defaults) vs untiled; megapixels per second and peak resident memory.

    venv/bin/python bench/upscale_bench.py [--size 512] [--repeats 1] [--threads N] [--out FILE]

Each mode runs in its own process so that its peak RSS is its own. The model is the tiny random-weight
RRDBNet (16 features, 2 blocks) from sdweb.testing, so absolute speed is far above a real 23-block ESRGAN;
the tiled/untiled ratio and the memory difference are what carry over.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = {"tiled": {"ESRGAN_tile": 192, "ESRGAN_tile_overlap": 8}, "untiled": {"ESRGAN_tile": 0}}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(mode: str, size: int, repeats: int, threads: int | None) -> dict[str, float | str]:
    import numpy as np
    import torch
    from PIL import Image

    from sdweb.postprocess.upscalers import UpscalerFolder, UpscalerRegistry
    from sdweb.testing.tiny_postprocess import esrgan_state_dict, save_state_dict

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as folder:
        save_state_dict(esrgan_state_dict(0, layout="old"), Path(folder) / "4x-Tiny.pth")
        registry = UpscalerRegistry([UpscalerFolder(Path(folder), "ESRGAN")])
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB")
        registry.upscale_by(Image.new("RGB", (16, 16)), "4x-Tiny", 4, MODES[mode])  # load + warm up
        before = _peak_rss_mib()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = registry.upscale_by(image, "4x-Tiny", 4, MODES[mode])
            times.append(time.perf_counter() - started)
        assert result.size == (size * 4, size * 4)
    best = min(times)
    return {"mode": mode, "seconds": round(best, 3), "input_mp_per_s": round(size * size / 1e6 / best, 4),
            "output_mp_per_s": round((4 * size) ** 2 / 1e6 / best, 4), "peak_rss_mib": round(_peak_rss_mib(), 1),
            "peak_rss_before_upscale_mib": round(before, 1), "threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="bench/results/upscale_bench.json")
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.repeats, args.threads or None)))
        return 0
    rows = []
    for mode in MODES:
        command = [sys.executable, __file__, "--child", mode, "--size", str(args.size), "--repeats",
                   str(args.repeats), "--threads", str(args.threads)]
        completed = subprocess.run(command, check=True, capture_output=True, text=True)
        rows.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    print(f"x4 upscale {args.size}x{args.size} -> {4 * args.size}x{4 * args.size}, tiny ESRGAN, CPU "
          f"({rows[0]['threads']} threads), best of {args.repeats}")
    print(f"{'mode':<9} {'seconds':>8} {'in MP/s':>8} {'out MP/s':>9} {'peak RSS MiB':>13} {'(before)':>9}")
    for row in rows:
        print(f"{row['mode']:<9} {row['seconds']:>8} {row['input_mp_per_s']:>8} {row['output_mp_per_s']:>9} "
              f"{row['peak_rss_mib']:>13} {row['peak_rss_before_upscale_mib']:>9}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
