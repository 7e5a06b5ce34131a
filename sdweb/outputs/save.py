"""Writing images with their infotext, and reading it back, the way A1111 stores it.

- PNG: text chunk ``parameters`` (tEXt, or iTXt when not Latin-1), plus any extra text chunks.
- JPEG / WebP / AVIF: EXIF UserComment (tag 0x9286 in the Exif IFD) = ``b"UNICODE\\0"`` + UTF-16BE text,
  typed UNDEFINED as piexif writes it. Nothing else goes into the EXIF (no Model tag: sd-prompt-reader
  treats a Model tag as JSON and fails).

Every file is encoded in memory first and then written with ``atomic_write_bytes``: a failure leaves
no partial file and never touches an existing one.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from pathlib import Path

from PIL import Image, PngImagePlugin

from sdweb.core.atomic import atomic_write_bytes, atomic_write_text
from sdweb.core.errors import UserError
from sdweb.infotext import novelai_infotext
from sdweb.outputs.filenames import effective_extension

__all__ = [
    "encode_image",
    "exif_user_comment",
    "read_infotext",
    "save_image",
    "write_params_txt",
    "write_sidecar_txt",
]

EXIF_IFD_POINTER = 0x8769
USER_COMMENT = 0x9286
_UNDEFINED = 7
_LONG = 4
_JPEG_MAX_EXIF = 65533  # Pillow's limit for the APP1 payload, "Exif\0\0" included

# Pillow image.info keys A1111 leaves out of the /png-info items.
IGNORED_INFO_KEYS = frozenset({
    "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif", "loop", "background", "timestamp",
    "duration", "progressive", "progression", "icc_profile", "chromaticity", "photoshop",
})
_COMMENT_PREFIXES = {
    b"UNICODE\x00": "utf_16_be",
    b"ASCII\x00\x00\x00": "ascii",
    b"JIS\x00\x00\x00\x00\x00": "shift_jis",
}


def exif_user_comment(text: str) -> bytes:
    """EXIF block (``Exif\\0\\0`` + big-endian TIFF) holding only the Exif IFD with UserComment.

    Built by hand because Pillow's ``Image.Exif`` types an unknown bytes tag as BYTE, and piexif-based
    readers (A1111 itself, sd-prompt-reader) need UNDEFINED there.
    """
    payload = b"UNICODE\x00" + text.encode("utf-16-be")
    exif_ifd_offset = 8 + 2 + 12 + 4
    payload_offset = exif_ifd_offset + 2 + 12 + 4
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">HHHII", 1, EXIF_IFD_POINTER, _LONG, 1, exif_ifd_offset) + struct.pack(">I", 0)
    tiff += struct.pack(">HHHII", 1, USER_COMMENT, _UNDEFINED, len(payload), payload_offset)
    tiff += struct.pack(">I", 0) + payload
    return b"Exif\x00\x00" + tiff


def encode_image(image: Image.Image, infotext: str | None, fmt: str, *, jpeg_quality: int = 80,
                 webp_lossless: bool = False, extra_text: Mapping[str, str] | None = None) -> bytes:
    """The file's bytes, with the infotext stored as A1111 stores it for ``fmt``."""
    fmt = fmt.lower().lstrip(".")
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", pnginfo=_png_info(infotext, extra_text))
    elif fmt in ("jpg", "jpeg"):
        exif = exif_user_comment(infotext) if infotext is not None else b""
        _without_alpha(image, fmt).save(buffer, format="JPEG", quality=jpeg_quality, exif=exif)
    elif fmt == "webp":
        exif = exif_user_comment(infotext) if infotext is not None else b""
        _without_alpha(image, fmt).save(buffer, format="WEBP", quality=jpeg_quality, lossless=webp_lossless,
                                        exif=exif)
    elif fmt == "avif":
        exif = exif_user_comment(infotext) if infotext is not None else b""
        image.save(buffer, format="AVIF", quality=jpeg_quality, exif=exif)
    elif fmt == "gif":
        if infotext is None:
            image.save(buffer, format="GIF")
        else:
            image.save(buffer, format="GIF", comment=infotext)
    else:
        image.save(buffer, format=_pil_format(fmt))
    return buffer.getvalue()


def save_image(image: Image.Image, path: Path, infotext: str | None, fmt: str, *, jpeg_quality: int = 80,
               webp_lossless: bool = False, extra_text: Mapping[str, str] | None = None) -> Path:
    """Encode and write atomically; returns the path written.

    Too large for JPEG (65535 px) or WebP (16383 px) -> PNG, as A1111 does; also PNG when the infotext
    does not fit a JPEG's 64 KB EXIF segment (A1111 would fail). The suffix then becomes ``.png``.
    """
    path = Path(path)
    target_fmt = effective_extension(fmt, image.width, image.height)
    if target_fmt in ("jpg", "jpeg") and infotext is not None and len(exif_user_comment(infotext)) > _JPEG_MAX_EXIF:
        target_fmt = "png"
    if target_fmt != fmt.lower().lstrip("."):
        path = path.with_suffix(".png")
    try:
        data = encode_image(image, infotext, target_fmt, jpeg_quality=jpeg_quality, webp_lossless=webp_lossless,
                            extra_text=extra_text)
    except KeyError as error:
        raise UserError(f"Cannot save images as {fmt!r}: no encoder for it is installed.",
                        code="unsupported_image_format", hint="Pick png, jpg or webp as the file format.") from error
    return atomic_write_bytes(path, data)


def write_params_txt(path: Path, infotext: str) -> Path:
    """``params.txt``: the infotext of the last job's first image (rewritten every job: not fsynced)."""
    return atomic_write_text(path, infotext, durable=False)


def write_sidecar_txt(image_path: Path, infotext: str) -> Path:
    """``<image>.txt`` next to the image (setting ``save_txt``), with a trailing newline like A1111."""
    return atomic_write_text(Path(image_path).with_suffix(".txt"), f"{infotext}\n")


def read_infotext(image: Image.Image) -> tuple[str | None, dict[str, object]]:
    """(infotext or None, other metadata items) as A1111's ``read_info_from_image``; never raises.

    Order of precedence: EXIF UserComment, else GIF ``comment``, else PNG ``parameters``; a NovelAI PNG
    is converted into an A1111-style infotext.
    """
    try:
        items: dict[str, object] = dict(image.info or {})
    except (AttributeError, TypeError):
        return None, {}
    infotext = _text(items.pop("parameters", None))
    if infotext is None:
        infotext = _late_png_parameters(image)
    if "exif" in items:
        comment = _exif_comment(items.pop("exif"))
        if comment:
            infotext = comment
    elif "comment" in items:
        infotext = _text(items["comment"])
    for key in IGNORED_INFO_KEYS:
        items.pop(key, None)
    novelai = novelai_infotext(items, *_size(image))
    if novelai is not None:
        infotext = novelai
    return infotext, items


def _png_info(infotext: str | None, extra_text: Mapping[str, str] | None) -> PngImagePlugin.PngInfo:
    chunks: dict[str, str] = dict(extra_text or {})
    if infotext is not None:
        chunks["parameters"] = infotext
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, str(value))  # tEXt when Latin-1 encodable, else iTXt
    return info


def _without_alpha(image: Image.Image, fmt: str) -> Image.Image:
    if image.mode == "RGBA":
        return image.convert("RGB")
    if image.mode == "I;16":
        return image.point(lambda p: p * 0.0038910505836576).convert("RGB" if fmt == "webp" else "L")
    if fmt != "webp" and image.mode not in ("RGB", "L", "CMYK"):
        return image.convert("RGB")
    return image


def _pil_format(fmt: str) -> str:
    return Image.registered_extensions()[f".{fmt}"]


def _exif_comment(data: object) -> str | None:
    if isinstance(data, Image.Exif):
        exif = data
    else:
        exif = Image.Exif()
        try:
            exif.load(data)  # type: ignore[arg-type]
        except Exception:  # Pillow raises many kinds of errors on malformed EXIF
            return None
    try:
        value = exif.get_ifd(EXIF_IFD_POINTER).get(USER_COMMENT)
    except Exception:  # same: a broken Exif IFD pointer
        return None
    return _decode_user_comment(value)


def _decode_user_comment(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        value = bytes(v for v in value if isinstance(v, int) and 0 <= v < 256)
    if not isinstance(value, bytes):
        return None
    codec = _COMMENT_PREFIXES.get(value[:8])
    if codec is not None:
        return value[8:].decode(codec, errors="replace")
    # A1111 falls back to UTF-8 of the whole value; an all-zero "undefined" prefix is dropped here.
    return value.decode("utf-8", errors="ignore").lstrip("\x00")


def _late_png_parameters(image: Image.Image) -> str | None:
    """A ``parameters`` chunk after the image data (``image.text`` has it, ``image.info`` may not)."""
    if getattr(image, "format", None) != "PNG":
        return None
    try:
        return _text(image.text.get("parameters"))  # type: ignore[attr-defined]
    except Exception:  # loading a damaged PNG can fail in many ways; then there is no late chunk
        return None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="ignore")
    return str(value)


def _size(image: Image.Image) -> tuple[int, int]:
    try:
        return int(image.width), int(image.height)
    except (AttributeError, TypeError, ValueError):
        return 0, 0
