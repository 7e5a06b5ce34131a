"""Interrogate CLIP with tiny BLIP and CLIP folders in transformers' save_pretrained format."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from sdweb.cli import parse_options
from sdweb.config.paths import resolve_paths
from sdweb.core.errors import InvalidModelFileError, NotFoundError
from sdweb.postprocess.interrogate import CATEGORIES, Interrogator, find_model_folder
from sdweb.postprocess.service import PostprocessService
from sdweb.testing import tiny_postprocess as tiny

QUICK = {"interrogate_clip_min_length": 2, "interrogate_clip_max_length": 6}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interrogate-models")
    tiny.write_tiny_blip(root / "BLIP" / "tiny-blip")
    tiny.write_tiny_clip(root / "CLIP" / "tiny-clip")
    return root


def _image() -> Image.Image:
    return tiny.synthetic_face((64, 64), scale=0.3)


def test_missing_models_say_where_to_put_them(tmp_path: Path):
    interrogator = Interrogator([tmp_path / "BLIP", tmp_path / "CLIP"])
    with pytest.raises(NotFoundError, match="No BLIP and no CLIP model") as error:
        interrogator.interrogate(_image(), {})
    assert error.value.status_code == 404
    assert str(tmp_path / "BLIP") in error.value.hint and str(tmp_path / "CLIP") in error.value.hint
    assert "blip-image-captioning-base" in error.value.hint and "interrogate_clip_model_path" in error.value.hint


def test_caption_then_ranked_terms(models: Path):
    interrogator = Interrogator([models / "BLIP", models / "CLIP"])
    text = interrogator.interrogate(_image(), QUICK)
    parts = text.split(", ")
    words = set(tiny.BLIP_WORDS)
    assert parts[0] and set(parts[0].split()) <= words  # the caption, in the tiny vocabulary
    mediums, movements, flavours = (terms for _, _, terms in CATEGORIES)
    assert parts[1] in mediums and parts[2] in movements and set(parts[3:6]) <= set(flavours)
    assert len(parts) == 6
    assert interrogator.interrogate(_image(), QUICK) == text  # deterministic (beam search, no sampling)


def test_ranks_and_skipped_categories(models: Path):
    interrogator = Interrogator([models / "BLIP", models / "CLIP"])
    settings = {**QUICK, "interrogate_return_ranks": True, "interrogate_clip_skip_categories": ["movements"]}
    parts = interrogator.interrogate(_image(), settings).split(", ")
    assert len(parts) == 1 + 1 + 3
    for part in parts[1:]:
        assert part.startswith("(") and part.endswith(")") and 0 <= float(part[:-1].rsplit(":", 1)[1]) <= 1
    ranked = interrogator.rank(_image(), ["a photo", "a drawing", "a painting"], 2, {})
    assert len(ranked) == 2 and ranked[0][1] >= ranked[1][1]


def test_setting_paths_override_and_bad_ones_are_named(models: Path, tmp_path: Path):
    interrogator = Interrogator([tmp_path])
    settings = {**QUICK, "interrogate_blip_model_path": str(models / "BLIP" / "tiny-blip"),
                "interrogate_clip_model_path": str(models / "CLIP" / "tiny-clip")}
    assert interrogator.interrogate(_image(), settings)
    with pytest.raises(NotFoundError, match="nowhere is not a BLIP model folder"):
        interrogator.interrogate(_image(), {**settings, "interrogate_blip_model_path": str(tmp_path / "nowhere")})


def test_model_folders_are_found_by_model_type(models: Path):
    roots = [models / "BLIP", models / "CLIP"]
    assert find_model_folder(roots, "blip") == models / "BLIP" / "tiny-blip"
    assert find_model_folder(roots, "clip") == models / "CLIP" / "tiny-clip"
    assert find_model_folder([models / "CLIP"], "blip") is None


def test_a_folder_without_weights_is_a_user_error(models: Path, tmp_path: Path):
    broken = tmp_path / "BLIP" / "broken"
    shutil.copytree(models / "BLIP" / "tiny-blip", broken)
    (broken / "model.safetensors").unlink()
    interrogator = Interrogator([tmp_path / "BLIP", models / "CLIP"])
    with pytest.raises(InvalidModelFileError, match="BLIP model in .*broken could not be loaded"):
        interrogator.interrogate(_image(), QUICK)


def test_service_interrogate_models(models: Path, tmp_path: Path):
    options = parse_options(["--data-dir", str(tmp_path), "--clip-models-path", str(models / "BLIP")], {})
    service = PostprocessService(resolve_paths(options), {**QUICK})
    service.interrogator.roots.append(models / "CLIP")
    assert service.interrogate(_image(), "clip")
    with pytest.raises(NotFoundError, match="DeepDanbooru"):
        service.interrogate(_image(), "deepdanbooru")
    with pytest.raises(NotFoundError, match="'wd14'"):
        service.interrogate(_image(), "wd14")
