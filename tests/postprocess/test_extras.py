"""The Extras service: resize modes, second upscaler, face restoration, infotext, saving, batches, folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from pydantic import ValidationError

from sdweb.cli import parse_options
from sdweb.config.paths import resolve_paths
from sdweb.core.errors import NotFoundError, UserError
from sdweb.outputs.save import read_infotext
from sdweb.postprocess.extras import ExtrasInput, ExtrasRequest, format_postprocess_info
from sdweb.postprocess.service import PostprocessService
from sdweb.testing import tiny_postprocess as tiny

SOURCE_INFOTEXT = "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler, Seed: 1, Size: 40x30"


@pytest.fixture
def service(tmp_path: Path, face_models: Path) -> PostprocessService:
    paths = resolve_paths(parse_options(["--data-dir", str(tmp_path), "--gfpgan-models-path", str(face_models / "GFPGAN")], {}))
    tiny.save_state_dict(tiny.esrgan_state_dict(1, layout="old"), paths.esrgan / "4x-Tiny.pth")
    return PostprocessService(paths, {"samples_format": "png"})


def _source(width: int = 40, height: int = 30) -> Image.Image:
    """A PNG with A1111 generation parameters, read back as a file would be."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", SOURCE_INFOTEXT)
    info.add_text("custom", "kept")
    from io import BytesIO

    buffer = BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    return Image.open(BytesIO(buffer.getvalue()))


def test_request_has_a1111_fields_and_bounds():
    assert ExtrasRequest().model_dump() == {
        "resize_mode": 0, "show_extras_results": True, "gfpgan_visibility": 0.0, "codeformer_visibility": 0.0,
        "codeformer_weight": 0.0, "upscaling_resize": 2.0, "upscaling_resize_w": 512, "upscaling_resize_h": 512,
        "upscaling_crop": True, "upscaler_1": "None", "upscaler_2": "None", "extras_upscaler_2_visibility": 0.0,
        "upscale_first": False, "max_side_length": 0}
    for bad in ({"resize_mode": 2}, {"gfpgan_visibility": 1.5}, {"upscaling_resize": 0}, {"nope": 1}):
        with pytest.raises(ValidationError):
            ExtrasRequest(**bad)


def test_scale_by_with_a_model_saves_with_the_source_infotext_kept(service: PostprocessService):
    request = ExtrasRequest(upscaler_1="4x-Tiny", upscaling_resize=2)
    result = service.run_extras(request, [ExtrasInput(_source())], save=True)
    assert result.images[0].size == (80, 60)
    assert result.infotexts == ["Postprocess upscale by: 2, Postprocess upscaler: 4x-Tiny"]
    assert result.html_info == "<p>Postprocess upscale by: 2, Postprocess upscaler: 4x-Tiny</p>"
    [path] = result.saved_paths
    assert path == service.paths.outputs / "extras-images" / "00000.png"
    saved = Image.open(path)
    assert saved.size == (80, 60)
    assert saved.info["parameters"] == SOURCE_INFOTEXT and saved.info["custom"] == "kept"
    assert saved.info["postprocessing"] == saved.info["extras"] == result.infotexts[0]
    assert read_infotext(saved)[0] == SOURCE_INFOTEXT
    second = service.run_extras(request, [ExtrasInput(_source())], save=True)
    assert second.saved_paths[0].name == "00001.png"


def test_scale_to_a_box_with_and_without_crop(service: PostprocessService):
    crop = ExtrasRequest(resize_mode=1, upscaling_resize_w=100, upscaling_resize_h=50, upscaler_1="Lanczos")
    result = service.run_extras(crop, [ExtrasInput(_source(40, 30))], save=False)
    assert result.images[0].size == (100, 50)
    assert result.infotexts[0] == ("Postprocess upscale to: 100x50, Postprocess crop to: 100x50, "
                                   "Postprocess upscaler: Lanczos")
    loose = crop.model_copy(update={"upscaling_crop": False})
    assert service.run_extras(loose, [ExtrasInput(_source(40, 30))], save=False).images[0].size == (100, 75)


def test_max_side_length_limits_the_result(service: PostprocessService):
    request = ExtrasRequest(upscaler_1="Lanczos", upscaling_resize=4, max_side_length=100)
    result = service.run_extras(request, [ExtrasInput(_source(40, 30))], save=False)
    assert result.images[0].size == (100, 75)
    assert "Max side length: 100" in result.infotexts[0]


def test_second_upscaler_is_blended_by_its_visibility(service: PostprocessService):
    source = _source(40, 30)
    request = ExtrasRequest(upscaler_1="Lanczos", upscaler_2="Nearest", extras_upscaler_2_visibility=0.25)
    result = service.run_extras(request, [ExtrasInput(source)], save=False)
    expected = Image.blend(source.convert("RGB").resize((80, 60), Image.Resampling.LANCZOS),
                           source.convert("RGB").resize((80, 60), Image.Resampling.NEAREST), 0.25)
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(expected))
    assert result.infotexts[0].endswith("Postprocess upscaler: Lanczos, Postprocess upscaler 2: Nearest")


def test_no_first_upscaler_means_no_upscaling(service: PostprocessService):
    request = ExtrasRequest(upscaler_2="Nearest", extras_upscaler_2_visibility=1)
    result = service.run_extras(request, [ExtrasInput(_source(40, 30))], save=False)
    assert result.images[0].size == (40, 30) and result.infotexts == [""]


def test_face_restoration_order_and_infotext(service: PostprocessService, monkeypatch):
    calls: list[tuple[str, tuple[int, int], float, float]] = []

    def restore(image, model, visibility=1.0, codeformer_weight=0.5):
        calls.append((model, image.size, visibility, codeformer_weight))
        return image

    monkeypatch.setattr(service.faces, "restore", restore)
    later = ExtrasRequest(upscaler_1="Lanczos", upscaling_resize=2, gfpgan_visibility=1, codeformer_visibility=0.5,
                          codeformer_weight=0.25, upscale_first=True)
    after = service.run_extras(later, [ExtrasInput(_source(40, 30))], save=False)
    assert calls == [("GFPGAN", (80, 60), 1.0, 0.5), ("CodeFormer", (80, 60), 0.5, 0.25)]
    assert after.infotexts[0] == ("Postprocess upscale by: 2, Postprocess upscaler: Lanczos, "
                                  "GFPGAN visibility: 1.0, CodeFormer visibility: 0.5, CodeFormer weight: 0.25")
    calls.clear()
    before = service.run_extras(later.model_copy(update={"upscale_first": False}), [ExtrasInput(_source(40, 30))],
                                save=False)
    assert [size for _, size, _, _ in calls] == [(40, 30), (40, 30)]
    assert before.infotexts[0].startswith("GFPGAN visibility: 1.0, CodeFormer visibility: 0.5")


def test_gfpgan_in_extras_restores_the_face(service: PostprocessService):
    scene = tiny.synthetic_face((160, 128), scale=0.5)
    request = ExtrasRequest(gfpgan_visibility=1)
    result = service.run_extras(request, [ExtrasInput(scene)], save=False)
    assert result.infotexts == ["GFPGAN visibility: 1.0"]
    assert result.images[0].size == scene.size
    assert not np.array_equal(np.asarray(result.images[0]), np.asarray(scene))


def test_batch_keeps_original_names_and_can_hide_results(service: PostprocessService):
    request = ExtrasRequest(upscaler_1="Nearest", show_extras_results=False)
    inputs = [ExtrasInput(_source(), "first.png"), ExtrasInput(_source(20, 20), "second.jpg")]
    result = service.run_extras(request, inputs, save=True)
    assert result.images == [] and len(result.infotexts) == 2
    assert [path.name for path in result.saved_paths] == ["first.png", "second.png"]
    assert Image.open(result.saved_paths[1]).size == (40, 40)


def test_jpeg_output_holds_source_infotext_and_postprocessing(service: PostprocessService):
    settings = {"samples_format": "jpg"}
    result = service.run_extras(ExtrasRequest(upscaler_1="Lanczos"), [ExtrasInput(_source())], save=True,
                                settings=settings)
    assert result.saved_paths[0].suffix == ".jpg"
    text, _ = read_infotext(Image.open(result.saved_paths[0]))
    assert text == f"{SOURCE_INFOTEXT}, Postprocess upscale by: 2, Postprocess upscaler: Lanczos"


def test_folder_in_and_out(service: PostprocessService, tmp_path: Path):
    source_dir, out_dir = tmp_path / "in", tmp_path / "out"
    source_dir.mkdir()
    _source().save(source_dir / "b.png", pnginfo=_pnginfo())
    _source(30, 30).save(source_dir / "a.webp")
    (source_dir / "broken.png").write_bytes(b"not an image")
    (source_dir / "notes.txt").write_text("skip me")
    result = service.run_extras_folder(ExtrasRequest(upscaler_1="Lanczos"), source_dir, out_dir)
    assert sorted(path.name for path in out_dir.iterdir()) == ["a.png", "b.png"]
    assert Image.open(out_dir / "b.png").info["parameters"] == SOURCE_INFOTEXT
    assert [image.size for image in result.images] == [(60, 60), (80, 60)]
    assert any("broken.png" in note for note in result.notes)
    with pytest.raises(UserError, match="does not exist"):
        service.run_extras_folder(ExtrasRequest(), tmp_path / "missing", None)


def _pnginfo() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", SOURCE_INFOTEXT)
    return info


def test_unknown_upscaler_fails_before_any_work(service: PostprocessService):
    with pytest.raises(NotFoundError, match="'8x-Nope'") as error:
        service.run_extras(ExtrasRequest(upscaler_1="Lanczos", upscaler_2="8x-Nope"), [ExtrasInput(_source())],
                           save=True)
    assert "4x-Tiny" in error.value.hint
    assert not (service.paths.outputs / "extras-images").exists()
    with pytest.raises(UserError, match="No image"):
        service.run_extras(ExtrasRequest(), [], save=False)


def test_listings_for_the_api(service: PostprocessService):
    assert [entry.name for entry in service.upscaler_entries()] == ["None", "Lanczos", "Nearest", "4x-Tiny"]
    assert service.realesrgan_entries() == []
    assert [(info.name, info.model_path is not None) for info in service.face_restorers()] == [
        ("CodeFormer", False), ("GFPGAN", True)]


def test_format_postprocess_info_quotes_like_infotext():
    assert format_postprocess_info({"a": 1, "b": None, "c": "x, y", "Same": "Same"}) == 'a: 1, c: "x, y", Same'


def test_api_adapter_speaks_a1111(service: PostprocessService):
    from sdweb.postprocess.api_adapter import PostprocessApiAdapter

    adapter = PostprocessApiAdapter(service)
    images, html_info = adapter.extras([_source()], {"upscaler_1": "4x-Tiny", "upscaling_resize": 4,
                                                     "resize_mode": 0, "image": "ignored"})
    assert images[0].size == (160, 120) and "Postprocess upscaler: 4x-Tiny" in html_info
    assert not (service.paths.outputs / "extras-images").exists()  # the API does not save
    listed = adapter.upscalers()
    assert listed[0] == {"name": "None", "model_name": None, "model_path": None, "model_url": None, "scale": 4.0}
    assert listed[3]["name"] == "4x-Tiny" and listed[3]["model_name"] == "4x-Tiny" and listed[3]["scale"] == 4.0
    assert [item["name"] for item in adapter.face_restorers()] == ["CodeFormer", "GFPGAN"]
    assert adapter.realesrgan_models() == []
    with pytest.raises(UserError, match="upscaling_resize"):
        adapter.extras([_source()], {"upscaling_resize": -1})
