"""Fingerprints of same-seed images of the tiny SD families (sd1, sd2-v, sdxl, sd1-inpaint), pinned before the
family-engines refactor: `python tests/service/pinned_sd_images.py > tests/data/pinned_sd_images.json` on the
commit to pin. A fingerprint is the mean of each 8 x 8 pixel block per channel (CPU float results may differ in
the last bit between machines; a changed computation moves these by far more than one level)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CASES = {
    "sd1": ("txt2img", "Euler a", "Automatic"),
    "sd2-v": ("txt2img", "DPM++ 2M", "Karras"),
    "sdxl": ("txt2img", "Euler", "Automatic"),
    "sd1-inpaint": ("img2img", "DPM++ 2M", "Automatic"),
}


def fingerprint(image: Image.Image) -> list[float]:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    height, width = (pixels.shape[0] // 8) * 8, (pixels.shape[1] // 8) * 8
    blocks = pixels[:height, :width].reshape(height // 8, 8, width // 8, 8, 3).mean(axis=(1, 3))
    return [round(float(v), 3) for v in blocks.reshape(-1)]


def generate(family: str, data: Path) -> list[list[float]]:
    from sdweb.cli import parse_options
    from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
    from sdweb.generation.service import SaveOptions
    from sdweb.state import build_app_state
    from sdweb.testing.tiny import write_tiny

    write_tiny(family, data / "models" / "Stable-diffusion" / f"tiny-{family}.safetensors", seed=1)
    state = build_app_state(parse_options(["--data-dir", str(data)], {}))
    try:
        mode, sampler, schedule = CASES[family]
        common = {"prompt": "a [red:blue:2] (cat:1.2) AND a sofa", "negative_prompt": "blurry", "seed": 42,
                  "batch_size": 2, "steps": 4, "width": 64, "height": 64, "sampler_name": sampler,
                  "scheduler": schedule, "cfg_scale": 6.0}
        no_save = SaveOptions(save_samples=False, save_grid=False)
        if mode == "txt2img":
            result = state.service.txt2img(Txt2ImgRequest(**common), None, no_save)
        else:
            init = Image.linear_gradient("L").resize((64, 64)).convert("RGB")
            mask = Image.new("L", (64, 64), 0)
            mask.paste(255, (16, 16, 48, 48))
            result = state.service.img2img(Img2ImgRequest(**common, init_images=[init], mask=mask,
                                                          denoising_strength=0.75), None, no_save)
        return [fingerprint(image) for image in result.images]
    finally:
        state.queue.shutdown()


def main() -> None:
    found = {}
    for family in CASES:
        with tempfile.TemporaryDirectory() as data:
            found[family] = generate(family, Path(data))
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main()
