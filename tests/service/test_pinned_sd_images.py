"""The family-engines refactor changed no pixel of the SD families: same-seed images of the tiny sd1, sd2-v,
sdxl and sd1-inpaint models (prompt editing, AND, negative prompt, batch of 2, inpaint) match the fingerprints
pinned on the commit before it (tests/data/pinned_sd_images.json, made by pinned_sd_images.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pinned_sd_images import CASES, generate

PINNED = json.loads((Path(__file__).parents[1] / "data" / "pinned_sd_images.json").read_text())


@pytest.mark.parametrize("family", list(CASES))
def test_same_pixels_as_before_the_engines(family, tmp_path):
    images = generate(family, tmp_path)
    assert len(images) == len(PINNED[family])
    for got, pinned in zip(images, PINNED[family], strict=True):
        assert np.abs(np.array(got) - np.array(pinned)).max() <= 1.0, f"{family}: the image changed"
