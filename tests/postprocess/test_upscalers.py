"""The upscaler registry on tiny real-format model files: names, detection, sizes, tiling, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sdweb.core.errors import InvalidModelFileError, NotFoundError, UserError
from sdweb.postprocess.spandrel_models import load_model_file, upscaler_dtype
from sdweb.postprocess.tiling import tile_starts, tiled_apply
from sdweb.postprocess.upscalers import (
    UpscaleOptions,
    UpscalerEntry,
    UpscalerFolder,
    UpscalerKind,
    UpscalerRegistry,
    scale_from_name,
    target_size,
)
from sdweb.testing import tiny_postprocess as tiny

MODEL_FILES = {
    # path under the models folder -> (listed name, spandrel architecture, native scale)
    "ESRGAN/4x-Tiny-old.pth": ("4x-Tiny-old", "ESRGAN", 4),
    "ESRGAN/4x_tiny_new.safetensors": ("4x_tiny_new", "ESRGAN", 4),
    "RealESRGAN/RealESRGAN_x4plus.pth": ("R-ESRGAN 4x+", "ESRGAN", 4),
    "RealESRGAN/RealESRGAN_x4plus_anime_6B.pth": ("R-ESRGAN 4x+ Anime6B", "ESRGAN", 4),
    "RealESRGAN/RealESRGAN_x2plus.pth": ("R-ESRGAN 2x+", "ESRGAN", 2),
    "RealESRGAN/realesr-general-x4v3.pth": ("R-ESRGAN General 4xV3", "Compact", 4),
    "SwinIR/SwinIR_tiny_x2.pth": ("SwinIR_tiny_x2", "SwinIR", 2),
    "DAT/DAT_x2.safetensors": ("DAT x2", "DAT", 2),
}


def _write_models(models: Path) -> None:
    tiny.save_state_dict(tiny.esrgan_state_dict(1, layout="old"), models / "ESRGAN/4x-Tiny-old.pth")
    tiny.save_state_dict(tiny.esrgan_state_dict(2, scale=4), models / "ESRGAN/4x_tiny_new.safetensors")
    tiny.save_state_dict(tiny.esrgan_state_dict(3, scale=4), models / "RealESRGAN/RealESRGAN_x4plus.pth",
                         wrap="params_ema")
    tiny.save_state_dict(tiny.esrgan_state_dict(4, scale=4), models / "RealESRGAN/RealESRGAN_x4plus_anime_6B.pth",
                         wrap="params_ema")
    tiny.save_state_dict(tiny.esrgan_state_dict(5, scale=2), models / "RealESRGAN/RealESRGAN_x2plus.pth",
                         wrap="params_ema")
    tiny.save_state_dict(tiny.compact_state_dict(6, scale=4), models / "RealESRGAN/realesr-general-x4v3.pth",
                         wrap="params")
    tiny.save_state_dict(tiny.swinir_state_dict(7, scale=2), models / "SwinIR/SwinIR_tiny_x2.pth", wrap="params")
    tiny.save_state_dict(tiny.dat_state_dict(8, scale=2), models / "DAT/DAT_x2.safetensors")


def _registry(models: Path) -> UpscalerRegistry:
    return UpscalerRegistry([UpscalerFolder(models / label, label)
                             for label in ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "ScuNET")])


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    _write_models(folder)
    return folder


@pytest.fixture(scope="module")
def registry(models: Path) -> UpscalerRegistry:
    return _registry(models)


def _image(width: int = 20, height: int = 14, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_list_is_builtins_then_models_sorted_as_a1111(registry: UpscalerRegistry):
    expected = sorted((name for name, _, _ in MODEL_FILES.values()), key=str.lower)
    assert registry.names() == ["None", "Lanczos", "Nearest", *expected]
    entries = {entry.name: entry for entry in registry.entries()}
    assert entries["R-ESRGAN 4x+"].model_name == "RealESRGAN_x4plus"
    assert entries["R-ESRGAN 4x+"].folder == "RealESRGAN"
    assert entries["R-ESRGAN 2x+"].scale == 2 and entries["DAT x2"].scale == 2
    assert [entry.name for entry in registry.in_folder("RealESRGAN")] == [
        "R-ESRGAN 2x+", "R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B", "R-ESRGAN General 4xV3"]


def test_list_follows_the_folder(tmp_path: Path, models: Path):
    shutil.copytree(models / "ESRGAN", tmp_path / "ESRGAN")
    registry = UpscalerRegistry([UpscalerFolder(tmp_path / "ESRGAN", "ESRGAN")])
    assert registry.names() == ["None", "Lanczos", "Nearest", "4x-Tiny-old", "4x_tiny_new"]
    (tmp_path / "ESRGAN/sub").mkdir()
    shutil.copy(tmp_path / "ESRGAN/4x-Tiny-old.pth", tmp_path / "ESRGAN/sub/2x-Extra.pth")
    (tmp_path / "ESRGAN/notes.txt").write_text("not a model")
    (tmp_path / "ESRGAN/4x_tiny_new.safetensors").unlink()
    assert registry.names() == ["None", "Lanczos", "Nearest", "2x-Extra", "4x-Tiny-old"]


@pytest.mark.parametrize("relative", list(MODEL_FILES))
def test_architecture_and_scale_are_detected(registry: UpscalerRegistry, relative: str):
    name, architecture, scale = MODEL_FILES[relative]
    model = registry.load(registry.find(name))
    assert (model.architecture, model.scale) == (architecture, scale)
    assert model.dtype == torch.float32  # CPU


@pytest.mark.parametrize("name", ["4x-Tiny-old", "4x_tiny_new", "R-ESRGAN 2x+", "R-ESRGAN General 4xV3",
                                  "SwinIR_tiny_x2", "DAT x2", "Lanczos", "Nearest", "None"])
@pytest.mark.parametrize("scale", [2, 4, 3.3])
def test_output_size_for_any_scale(registry: UpscalerRegistry, name: str, scale: float):
    image = _image(20, 14)
    result = registry.upscale_by(image, name, scale, {})
    assert result.size == target_size(20, 14, scale) == (int(20 * scale), int(14 * scale))
    assert result.mode == "RGB"


def test_upscale_to_exact_size_and_alpha_is_kept(registry: UpscalerRegistry):
    image = _image(16, 12).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((16, 12)))
    result = registry.upscale_to(image, "4x-Tiny-old", 50, 30, {})
    assert result.size == (50, 30) and result.mode == "RGBA"
    assert np.array(result.getchannel("A"))[0].max() < np.array(result.getchannel("A"))[-1].min()


def test_names_resolve_by_file_stem_and_case(registry: UpscalerRegistry):
    assert registry.find("RealESRGAN_x4plus").name == "R-ESRGAN 4x+"
    assert registry.find("r-esrgan 4x+").name == "R-ESRGAN 4x+"
    with pytest.raises(NotFoundError, match="'8x-Nope'") as error:
        registry.find("8x-Nope")
    assert "R-ESRGAN 4x+" in error.value.hint and "Lanczos" in error.value.hint


def test_native_scale_runs_as_often_as_needed():
    calls: list[tuple[int, int]] = []

    class Doubler:
        scale = 2

        def upscale_once(self, image, settings, progress):
            calls.append(image.size)
            return image.resize((image.width * 2, image.height * 2), Image.Resampling.NEAREST)

    kind = UpscalerKind("fake", lambda: [UpscalerEntry("Fake 2x", "fake", scale=2)], lambda entry: Doubler())
    registry = UpscalerRegistry([])
    registry.register_kind(kind)
    assert registry.names() == ["None", "Lanczos", "Nearest", "Fake 2x"]
    assert registry.upscale_by(_image(10, 10), "Fake 2x", 4, {}).size == (40, 40) and calls == [(10, 10), (20, 20)]
    calls.clear()
    assert registry.upscale_by(_image(10, 10), "Fake 2x", 3.3, {}).size == (33, 33) and len(calls) == 2
    calls.clear()
    assert registry.upscale_by(_image(10, 10), "Fake 2x", 1.5, {}).size == (15, 15) and len(calls) == 1
    calls.clear()
    assert registry.upscale_by(_image(10, 10), "Fake 2x", 16, {}).size == (160, 160) and len(calls) == 3
    with pytest.raises(ValueError, match="already registered"):
        registry.register_kind(kind)


def test_a_x1_restoration_model_runs_once_even_at_scale_1():
    calls: list[tuple[int, int]] = []

    class Denoiser:
        scale = 1

        def upscale_once(self, image, settings, progress):
            calls.append(image.size)
            return image.point(lambda value: 255 - value)

    registry = UpscalerRegistry([])
    registry.register_kind(UpscalerKind("denoise", lambda: [UpscalerEntry("Denoise", "denoise", scale=1)],
                                        lambda entry: Denoiser()))
    image = _image(10, 8)
    result = registry.upscale_by(image, "Denoise", 1, {})
    assert calls == [(10, 8)] and np.array_equal(np.asarray(result), 255 - np.asarray(image))
    assert registry.upscale_by(image, "Denoise", 2, {}).size == (20, 16) and len(calls) == 2


def test_an_extension_folder_is_scanned(tmp_path: Path, models: Path):
    registry = UpscalerRegistry([])
    shutil.copy(models / "ESRGAN/4x-Tiny-old.pth", tmp_path / "4x-HAT-ish.pth")
    registry.register_folder(tmp_path, "HAT")
    registry.register_folder(tmp_path, "HAT")
    assert [(e.name, e.folder) for e in registry.entries()[3:]] == [("4x-HAT-ish", "HAT")]
    assert registry.upscale_by(_image(8, 8), "4x-HAT-ish", 4, {}).size == (32, 32)


def _bad_files(folder: Path) -> dict[str, str]:
    """file name -> what its error says."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garbage.pth").write_bytes(b"this is not a pickle")
    good = tiny.save_state_dict(tiny.esrgan_state_dict(9, layout="old"), folder / "good.safetensors")
    (folder / "truncated.safetensors").write_bytes(good.read_bytes()[:1000])
    tiny.save_state_dict({"some.weight": torch.zeros(3, 3), "other.bias": torch.zeros(3)},
                         folder / "unknown.safetensors")
    broken = tiny.esrgan_state_dict(10, layout="old")
    broken["model.0.weight"] = torch.zeros(16, 3, 5, 5)
    tiny.save_state_dict(broken, folder / "mismatch.pth")
    return {"garbage.pth": "not a valid PyTorch model file", "truncated.safetensors": "not a valid safetensors",
            "unknown.safetensors": "unknown model architecture", "mismatch.pth": "do not fit"}


def test_a_bad_file_is_a_user_error_naming_it_and_the_others_still_work(tmp_path: Path):
    errors = _bad_files(tmp_path / "ESRGAN")
    registry = UpscalerRegistry([UpscalerFolder(tmp_path / "ESRGAN", "ESRGAN")])
    assert registry.names()[3:] == ["garbage", "good", "mismatch", "truncated", "unknown"]
    for file_name, text in errors.items():
        with pytest.raises(InvalidModelFileError, match=text) as error:
            registry.upscale_by(_image(), Path(file_name).stem, 2, {})
        assert file_name in error.value.message and error.value.hint
        assert error.value.status_code == 422
    assert registry.upscale_by(_image(), "good", 4, {}).size == (80, 56)
    assert registry.names()[3:] == ["garbage", "good", "mismatch", "truncated", "unknown"]


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))  # type: ignore[attr-defined]


def test_pickles_load_weights_only_and_never_run_code(tmp_path: Path):
    marker = tmp_path / "ran"
    boom = _Boom()
    boom.marker = str(marker)  # type: ignore[attr-defined]
    torch.save({"params": {"conv.weight": torch.zeros(1)}, "evil": boom}, tmp_path / "evil.pth")
    with pytest.raises(InvalidModelFileError, match="evil.pth holds Python objects"):
        load_model_file(tmp_path / "evil.pth")
    assert not marker.exists()


def test_a_face_model_in_an_upscaler_folder_is_rejected(face_models: Path):
    registry = UpscalerRegistry([UpscalerFolder(face_models / "GFPGAN", "GFPGAN")])
    with pytest.raises(InvalidModelFileError, match="face restoration model"):
        registry.upscale_by(_image(), "GFPGANv1.4", 2, {})


# --------------------------------------------------------------------------------------------------- tiling

@pytest.mark.parametrize(("size", "tile", "overlap", "starts"), [
    (100, 192, 8, [0]), (192, 192, 8, [0]), (200, 192, 8, [0, 8]), (88, 32, 8, [0, 24, 48, 56]),
    (56, 32, 8, [0, 24]), (10, 4, 4, [0, 2, 4, 6]), (9, 4, 0, [0, 4, 5]),
])
def test_tile_starts(size: int, tile: int, overlap: int, starts: list[int]):
    assert tile_starts(size, tile, overlap) == starts


def _far_from_seams(size: int, tile: int, overlap: int, radius: int) -> np.ndarray:
    """Per input pixel along one axis: True where every tile covering it is more than ``radius`` from that
    tile's inner edges (edges that are not the image's own)."""
    ok = np.ones(size, dtype=bool)
    for start in tile_starts(size, tile, overlap):
        end = start + min(tile, size)
        for position in range(start, end):
            near_start = start > 0 and position - start < radius
            near_end = end < size and end - 1 - position < radius
            if near_start or near_end:
                ok[position] = False
    return ok


def test_tiled_equals_untiled_away_from_seams_and_is_close_at_them(registry: UpscalerRegistry):
    model = registry.load(registry.find("R-ESRGAN General 4xV3"))  # compact: 4 convs at input resolution
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 88, 72, generator=torch.Generator().manual_seed(3)),
                                           3, 1, 1)
    full = model.run_tensor(image, UpscaleOptions(tile=0, overlap=0))
    tiles: list[int] = []
    tiled = model.run_tensor(image, UpscaleOptions(tile=32, overlap=8), lambda done, total: tiles.append(total))
    assert tiles[-1] == 4 * 3 and full.shape == tiled.shape == (1, 3, 352, 288)
    difference = (full - tiled).abs()[0].amax(0).numpy()
    rows = np.repeat(_far_from_seams(88, 32, 8, radius=5), 4)
    cols = np.repeat(_far_from_seams(72, 32, 8, radius=5), 4)
    far = rows[:, None] & cols[None, :]
    assert far.mean() > 0.2 and (~far).mean() > 0.2
    assert difference[far].max() < 1e-5
    assert 0 < difference[~far].max() < 0.05


def test_tiled_esrgan_stays_close_at_tile_borders(registry: UpscalerRegistry):
    model = registry.load(registry.find("4x-Tiny-old"))
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 56, 48, generator=torch.Generator().manual_seed(4)),
                                           3, 1, 1)
    full = model.run_tensor(image, UpscaleOptions(tile=0, overlap=0))
    tiled = model.run_tensor(image, UpscaleOptions(tile=32, overlap=8))
    assert full.shape == tiled.shape == (1, 3, 224, 192)
    assert (full - tiled).abs().max() < 0.02


def test_tiled_apply_blends_with_weights_that_sum_to_one():
    image = torch.rand(1, 3, 50, 70, generator=torch.Generator().manual_seed(5))
    same = tiled_apply(lambda tile: tile.repeat_interleave(2, 2).repeat_interleave(2, 3), image, 2, 16, 6)
    assert torch.allclose(same, image.repeat_interleave(2, 2).repeat_interleave(2, 3), atol=1e-6)


def test_tile_settings_follow_a1111_keys():
    assert UpscaleOptions.from_settings({}) == UpscaleOptions(192, 8)
    assert UpscaleOptions.from_settings({"ESRGAN_tile": 0, "ESRGAN_tile_overlap": 4}) == UpscaleOptions(0, 4)
    assert UpscaleOptions.from_settings({"ESRGAN_tile": 64}, "SwinIR") == UpscaleOptions(64, 8)
    assert UpscaleOptions.from_settings({"SWIN_tile": 96, "ESRGAN_tile": 64}, "SwinIR") == UpscaleOptions(96, 8)
    assert UpscaleOptions.from_settings({}, "SCUNet") == UpscaleOptions(192, 8)
    assert UpscaleOptions.from_settings({"DAT_tile": 128, "DAT_tile_overlap": 16}, "DAT") == UpscaleOptions(128, 16)


@pytest.mark.parametrize(("name", "scale"), [
    ("4x-UltraSharp", 4), ("RealESRGAN_x2plus", 2), ("DAT x3", 3), ("R-ESRGAN 4x+", 4), ("ESRGAN_4x", 4),
    ("realesr-general-x4v3", 4), ("2x_NMKD-Siax", 2), ("SwinIR_tiny_x2", 2), ("Remacri", None), ("x", None),
])
def test_scale_from_name(name: str, scale: int | None):
    assert scale_from_name(name) == scale


def test_half_precision_only_off_the_cpu_and_where_the_architecture_allows(registry: UpscalerRegistry):
    esrgan = load_model_file(registry.find("4x-Tiny-old").path)
    swinir = load_model_file(registry.find("SwinIR_tiny_x2").path)
    assert upscaler_dtype(esrgan, "cpu", torch.float16) == torch.float32
    assert upscaler_dtype(esrgan, "cuda:0", torch.float16) == torch.float16
    assert upscaler_dtype(esrgan, "cuda:0", torch.float32) == torch.float32  # --no-half
    assert upscaler_dtype(swinir, "cuda:0", torch.float16) == torch.float32  # spandrel: no fp16 SwinIR


def test_out_of_memory_is_a_clear_error(registry: UpscalerRegistry, monkeypatch):
    model = registry.load(registry.find("4x-Tiny-old"))

    class Exhausted:
        tiling, scale = model.descriptor.tiling, 4

        def __call__(self, image):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(model, "descriptor", Exhausted())
    with pytest.raises(UserError, match="Out of memory upscaling") as error:
        model.run_tensor(torch.rand(1, 3, 8, 8), UpscaleOptions())
    assert "ESRGAN_tile" in error.value.hint


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_fp16_upscale_matches_cpu(models: Path):
    cpu = _registry(models)
    gpu = UpscalerRegistry(cpu.folders, device="cuda:0", half_dtype=torch.float16)
    image = _image(64, 48)
    for name, dtype in (("4x-Tiny-old", torch.float16), ("SwinIR_tiny_x2", torch.float32)):
        assert gpu.load(gpu.find(name)).dtype == dtype
        a = np.asarray(cpu.upscale_by(image, name, 4, {}), dtype=np.int16)
        b = np.asarray(gpu.upscale_by(image, name, 4, {}), dtype=np.int16)
        assert np.abs(a - b).max() <= 3
