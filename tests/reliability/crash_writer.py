"""Helper for test_crash_writes.py: saves images (PNG, JPEG, WebP, with infotext and .txt sidecars) and
rewrites config.json through the real sdweb functions in a loop until it is killed with SIGKILL.
Prints "ready" once the first round is on disk."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sdweb.config.settings import Settings
from sdweb.outputs.save import save_image, write_params_txt, write_sidecar_txt


def main(data_dir: str) -> int:
    root = Path(data_dir)
    outputs = root / "outputs" / "txt2img-images"
    settings = Settings.load(root / "config.json")
    rng = np.random.default_rng(len(list(outputs.glob("*"))) if outputs.is_dir() else 0)
    start = len(list(outputs.glob("*.*"))) if outputs.is_dir() else 0
    for round_no in range(start, start + 100000):
        pixels = rng.integers(0, 256, size=(384, 384, 3), dtype=np.uint8)  # noise: slow to encode, big files
        infotext = f"crash test {round_no}\nSteps: 2, Sampler: Euler, Seed: {round_no}, Size: 384x384"
        fmt = ("png", "jpg", "webp")[round_no % 3]
        path = save_image(Image.fromarray(pixels), outputs / f"{round_no:05d}-{round_no}.{fmt}", infotext, fmt)
        write_sidecar_txt(path, infotext)
        write_params_txt(root / "params.txt", infotext)
        # a big value makes each config.json write take a while, so kills land inside it too
        settings.update({"jpeg_quality": 50 + round_no % 50, "sd_model_checkpoint": f"model-{round_no}",
                         "outdir_extras_samples": "outputs/extras-images/" + "x" * (round_no % 7) * 20000})
        if round_no == start:
            print("ready", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
