"""Saving images with infotext (PNG chunk / EXIF UserComment), reading it back, atomic writes, grids."""

import io
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin, features

import sdweb.core.atomic as atomic
from sdweb.core.errors import UserError
from sdweb.infotext import parse_infotext
from sdweb.outputs.grid import grid_size, make_grid
from sdweb.outputs.save import (
    encode_image,
    exif_user_comment,
    read_infotext,
    save_image,
    write_params_txt,
    write_sidecar_txt,
)

INFOTEXT = (
    "a cat, (best quality:1.2), <lora:add_detail:0.5>\nsecond line\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567890, Size: 64x48, "
    'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1'
)
UNICODE_INFOTEXT = INFOTEXT.replace("a cat", "猫 ✓ ünïcode")
FORMATS = ["png", "jpg", "jpeg", "webp"] + (["avif"] if features.check("avif") else [])


def _image(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    color = (200, 100, 50, 128) if mode == "RGBA" else (200, 100, 50)
    return Image.new(mode, size, color)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("text", [INFOTEXT, UNICODE_INFOTEXT])
def test_round_trip(tmp_path, fmt, text):
    path = save_image(_image(), tmp_path / f"00000-1.{fmt}", text, fmt)
    assert path == tmp_path / f"00000-1.{fmt}"
    with Image.open(path) as reopened:
        infotext, items = read_infotext(reopened)
    assert infotext == text
    assert "parameters" not in items and "exif" not in items
    assert parse_infotext(infotext)["Seed"] == "1234567890"


def test_png_chunks_text_and_itxt_and_extras(tmp_path):
    latin = save_image(_image(), tmp_path / "a.png", INFOTEXT, "png", extra_text={"extras": "Postprocess upscale by: 4"})
    assert b"tEXtparameters\x00" in latin.read_bytes()
    other = save_image(_image(), tmp_path / "b.png", UNICODE_INFOTEXT, "png")
    assert b"iTXtparameters\x00" in other.read_bytes()
    with Image.open(latin) as reopened:
        infotext, items = read_infotext(reopened)
        assert list(reopened.info)[:2] == ["extras", "parameters"]
    assert infotext == INFOTEXT and items == {"extras": "Postprocess upscale by: 4"}
    with Image.open(other) as reopened:
        assert reopened.getexif() == {}  # no EXIF on PNGs at all


def test_png_without_infotext(tmp_path):
    path = save_image(_image(), tmp_path / "n.png", None, "png")
    with Image.open(path) as reopened:
        assert read_infotext(reopened) == (None, {})


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_exif_has_only_user_comment_and_alpha_is_dropped(tmp_path, fmt):
    path = save_image(_image("RGBA"), tmp_path / f"x.{fmt}", INFOTEXT, fmt)
    with Image.open(path) as reopened:
        assert reopened.mode == "RGB"
        exif = reopened.getexif()
        assert dict(exif) == {0x8769: exif[0x8769]}  # no Model (0x0110) or any other IFD0 tag
        assert list(exif.get_ifd(0x8769)) == [0x9286]
        assert exif.get_ifd(0x8769)[0x9286] == b"UNICODE\x00" + INFOTEXT.encode("utf-16-be")


def test_exif_block_layout_is_what_piexif_readers_expect():
    block = exif_user_comment("hi")
    assert block.startswith(b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08")
    tiff = block[6:]
    (count,) = struct.unpack(">H", tiff[8:10])
    tag, kind, n, offset = struct.unpack(">HHII", tiff[10:22])
    assert (count, tag, kind, n) == (1, 0x8769, 4, 1)
    tag, kind, n, value_offset = struct.unpack(">HHII", tiff[offset + 2:offset + 14])
    assert (tag, kind) == (0x9286, 7)  # UNDEFINED, as piexif writes it (Pillow would pick BYTE)
    assert tiff[value_offset:value_offset + n] == b"UNICODE\x00\x00h\x00i"


def test_jpeg_quality_and_webp_lossless_are_used(tmp_path):
    low = encode_image(_image(size=(256, 256)).effect_spread(20), None, "jpg", jpeg_quality=10)
    high = encode_image(_image(size=(256, 256)).effect_spread(20), None, "jpg", jpeg_quality=95)
    assert len(low) < len(high)
    lossless = save_image(_image(), tmp_path / "l.webp", INFOTEXT, "webp", webp_lossless=True)
    with Image.open(lossless) as reopened:
        assert reopened.getpixel((0, 0)) == (200, 100, 50)


@pytest.mark.parametrize(("fmt", "size"), [("jpg", (65536, 1)), ("jpeg", (1, 65536)), ("webp", (16384, 1))])
def test_large_images_fall_back_to_png(tmp_path, fmt, size):
    path = save_image(Image.new("L", size), tmp_path / f"big.{fmt}", INFOTEXT, fmt)
    assert path == tmp_path / "big.png"
    assert not (tmp_path / f"big.{fmt}").exists()
    with Image.open(path) as reopened:
        assert reopened.format == "PNG" and read_infotext(reopened)[0] == INFOTEXT


def test_webp_at_the_limit_stays_webp(tmp_path):
    assert save_image(Image.new("RGB", (16383, 1)), tmp_path / "w.webp", "x", "webp").suffix == ".webp"


def test_jpeg_with_infotext_too_long_for_exif_becomes_png(tmp_path):
    text = "x" * 40000 + "\nSteps: 1, Seed: 1, Size: 8x8"
    path = save_image(_image(), tmp_path / "long.jpg", text, "jpg")
    assert path.suffix == ".png"
    with Image.open(path) as reopened:
        assert read_infotext(reopened)[0] == text


def test_gif_comment_and_unknown_format(tmp_path):
    path = save_image(_image().convert("P"), tmp_path / "g.gif", INFOTEXT, "gif")
    with Image.open(path) as reopened:
        assert read_infotext(reopened)[0] == INFOTEXT
    with pytest.raises(UserError):
        save_image(_image(), tmp_path / "x.nope", INFOTEXT, "nope")
    assert not list(tmp_path.glob("x.*"))


# ---------------------------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------------------------

def test_encoder_failure_leaves_no_file_and_keeps_existing(tmp_path, monkeypatch):
    existing = tmp_path / "00001-1.png"
    existing.write_bytes(b"precious")

    def failing_save(self, fp, format=None, **params):
        fp.write(b"\x89PNG partial")
        raise OSError("disk on fire")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    for name in ("00001-1.png", "00002-1.png"):
        with pytest.raises(OSError, match="disk on fire"):
            save_image(_image(), tmp_path / name, INFOTEXT, "png")
    assert existing.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["00001-1.png"]


def test_failure_during_rename_leaves_no_partial_file(tmp_path, monkeypatch):
    existing = tmp_path / "keep.jpg"
    existing.write_bytes(b"old")

    def failing_replace(source, target):
        raise OSError("rename failed")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        save_image(_image(), existing, INFOTEXT, "jpg")
    assert existing.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.jpg"]


def test_params_and_sidecar_txt(tmp_path):
    params = write_params_txt(tmp_path / "params.txt", INFOTEXT)
    assert params.read_text(encoding="utf-8") == INFOTEXT
    write_params_txt(tmp_path / "params.txt", UNICODE_INFOTEXT)
    assert params.read_text(encoding="utf-8") == UNICODE_INFOTEXT
    sidecar = write_sidecar_txt(tmp_path / "00001-5.png", INFOTEXT)
    assert sidecar == tmp_path / "00001-5.txt" and sidecar.read_text(encoding="utf-8") == INFOTEXT + "\n"
    assert sorted(os.listdir(tmp_path)) == ["00001-5.txt", "params.txt"]


# ---------------------------------------------------------------------------------------------
# reading odd images
# ---------------------------------------------------------------------------------------------

def _jpeg_with_comment(raw_comment: bytes) -> Image.Image:
    block = exif_user_comment("")
    block = block[: block.index(b"UNICODE")]
    tiff = bytearray(block[6:])
    struct.pack_into(">I", tiff, 26 + 2 + 4, len(raw_comment))  # UserComment count
    buffer = io.BytesIO()
    _image().save(buffer, "JPEG", exif=b"Exif\x00\x00" + bytes(tiff) + raw_comment)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize(("raw", "expected"), [
    (b"UNICODE\x00" + "hé ✓".encode("utf-16-be"), "hé ✓"),
    (b"ASCII\x00\x00\x00plain text", "plain text"),
    (b"\x00" * 8 + b"undefined", "undefined"),
    (b"short", "short"),
])
def test_user_comment_prefixes(raw, expected):
    assert read_infotext(_jpeg_with_comment(raw))[0] == expected


def test_exif_wins_over_parameters_and_items_are_filtered():
    image = _image()
    image.info = {"parameters": "from png", "exif": exif_user_comment("from exif"), "dpi": (72, 72),
                  "icc_profile": b"x", "Software": "Thing"}
    assert read_infotext(image) == ("from exif", {"Software": "Thing"})


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("info", [
    {"exif": b"garbage"},
    {"exif": b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff"},
    {"exif": 12345},
    {"parameters": b"bytes \xff value"},
    {"comment": b"\xff\xfegif"},
    {"Software": "NovelAI", "Comment": "{bad json", "Description": "x"},
])
def test_odd_metadata_never_raises(info):
    image = _image()
    image.info = dict(info)
    infotext, items = read_infotext(image)
    assert infotext is None or isinstance(infotext, str)
    assert "exif" not in items


def test_not_an_image_never_raises():
    assert read_infotext(object()) == (None, {})  # type: ignore[arg-type]


def test_novelai_png_is_converted():
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "AI generated image")
    info.add_text("Description", "1girl, solo")
    info.add_text("Software", "NovelAI")
    info.add_text("Comment", json.dumps({"uc": "lowres", "steps": 28, "sampler": "k_euler", "scale": 11,
                                         "seed": 5}))
    buffer = io.BytesIO()
    _image().save(buffer, "PNG", pnginfo=info)
    infotext, items = read_infotext(Image.open(io.BytesIO(buffer.getvalue())))
    assert infotext == ("1girl, solo\nNegative prompt: lowres\nSteps: 28, Sampler: Euler, CFG scale: 11, Seed: 5, "
                        "Size: 64x48, Clip skip: 2, ENSD: 31337")
    assert items["Software"] == "NovelAI"


def test_parameters_chunk_after_image_data_is_found():
    buffer = io.BytesIO()
    _image().save(buffer, "PNG")
    data = buffer.getvalue()
    body = b"parameters\x00" + INFOTEXT.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    iend = data.rindex(b"IEND") - 4
    with Image.open(io.BytesIO(data[:iend] + chunk + data[iend:])) as image:
        assert read_infotext(image)[0] == INFOTEXT


# ---------------------------------------------------------------------------------------------
# readers in the wild
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_sd_parsers_reads_our_files(tmp_path, fmt):
    sd_parsers = pytest.importorskip("sd_parsers")
    path = save_image(_image(), tmp_path / f"x.{fmt}", INFOTEXT, fmt)
    info = sd_parsers.ParserManager().parse(path)
    assert info is not None and info.generator == sd_parsers.data.Generators.AUTOMATIC1111
    assert info.full_prompt == "a cat, (best quality:1.2), <lora:add_detail:0.5>\nsecond line"
    assert info.full_negative_prompt == "blurry, lowres"
    (sampler,) = info.samplers
    assert sampler.name == "DPM++ 2M"
    assert sampler.parameters["steps"] == "20" and sampler.parameters["seed"] == "1234567890"
    assert sampler.parameters["scheduler"] == "Karras" and sampler.parameters["cfg_scale"] == "7"


# ---------------------------------------------------------------------------------------------
# grids
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "rows", "n_rows", "batch_size", "prevent", "expected"), [
    (1, None, -1, 1, False, (1, 1)),
    (2, None, -1, 2, False, (1, 2)),
    (3, None, -1, 3, False, (2, 2)),
    (4, None, -1, 4, False, (2, 2)),
    (5, None, -1, 5, False, (2, 3)),
    (6, None, -1, 6, False, (2, 3)),
    (7, None, -1, 1, False, (3, 3)),
    (9, None, -1, 1, False, (3, 3)),
    (12, None, -1, 1, False, (3, 4)),
    (7, None, -1, 1, True, (1, 7)),
    (8, None, -1, 1, True, (2, 4)),
    (12, None, -1, 1, True, (3, 4)),
    (6, None, 0, 3, False, (3, 2)),
    (6, None, 4, 1, False, (4, 2)),
    (3, None, 5, 1, False, (3, 1)),
    (6, 1, -1, 1, False, (1, 6)),
    (0, None, -1, 1, False, (0, 0)),
])
def test_grid_size(count, rows, n_rows, batch_size, prevent, expected):
    assert grid_size(count, rows, n_rows=n_rows, batch_size=batch_size, prevent_empty_spots=prevent) == expected


def test_make_grid_layout_and_centering():
    images = [Image.new("RGB", (10, 8), (255, 0, 0)), Image.new("RGB", (10, 8), (0, 255, 0)),
              Image.new("RGBA", (6, 4), (0, 0, 255, 255))]
    grid = make_grid(images)
    assert grid.size == (20, 16) and grid.mode == "RGB"
    assert grid.getpixel((0, 0)) == (255, 0, 0) and grid.getpixel((10, 0)) == (0, 255, 0)
    assert grid.getpixel((2 + 2, 8 + 2)) == (0, 0, 255)  # third image centred in its cell
    assert grid.getpixel((0, 8)) == (255, 255, 255)  # background
    assert grid.getpixel((15, 12)) == (255, 255, 255)  # empty cell
    assert make_grid(images, 1).size == (30, 8)
    with pytest.raises(ValueError, match="at least one image"):
        make_grid([])


def test_saved_grid_round_trip(tmp_path):
    grid = make_grid([_image(), _image()], background="#000000")
    path = save_image(grid, Path(tmp_path) / "grid-0000.png", INFOTEXT, "png")
    with Image.open(path) as reopened:
        assert reopened.size == (128, 48) and read_infotext(reopened)[0] == INFOTEXT


def test_stale_temp_files_of_killed_writers_are_removed(tmp_path):
    import os
    import time

    from sdweb.core.atomic import remove_stale_temp_files

    folder = tmp_path / "txt2img-images" / "2026-12-03"
    folder.mkdir(parents=True)
    stale = folder / ".00001-5.png.k3j_9xq2.tmp"
    fresh = folder / ".00002-6.png.ab12cd34.tmp"
    users = folder / ".notes.tmp"  # not the writer's pattern: never touched
    for path in (stale, fresh, users):
        path.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(users, (old, old))
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert not stale.exists() and fresh.exists() and users.exists()
