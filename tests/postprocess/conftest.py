"""Shared fixtures: folders of tiny real-format upscaler and face models (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdweb.testing import tiny_postprocess as tiny


@pytest.fixture(scope="session")
def face_models(tmp_path_factory) -> Path:
    """models/GFPGAN/GFPGANv1.4.safetensors and models/Codeformer/codeformer-v0.1.0.pth (random, full-size)."""
    root = tmp_path_factory.mktemp("face-models")
    tiny.save_state_dict(tiny.gfpgan_state_dict(), root / "GFPGAN" / "GFPGANv1.4.safetensors")
    tiny.save_state_dict(tiny.codeformer_state_dict(), root / "Codeformer" / "codeformer-v0.1.0.pth",
                         wrap="params_ema")
    return root
