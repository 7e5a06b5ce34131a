"""Images on the wire: base64 in (with or without a data: prefix), bare base64 out with the infotext kept."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image

from sdweb.core.errors import UserError
from sdweb.outputs.save import encode_image

MAX_PIXELS = 16384 * 16384
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


def decode_image(data: str, field: str) -> Image.Image:
    """A base64 image from a request field; a UserError naming the field when it is not one."""
    if not isinstance(data, str) or not data.strip():
        raise UserError(f"{field}: empty image.", code="invalid_image", hint="Send a base64-encoded PNG or JPEG.")
    if data.startswith(("http://", "https://")):
        raise UserError(f"{field}: image URLs are not fetched (sdweb never goes online on its own).",
                        code="invalid_image", hint="Send the image itself as base64.")
    try:
        raw = base64.b64decode(_DATA_URL.sub("", data.strip()), validate=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            if image.width * image.height > MAX_PIXELS:
                raise UserError(f"{field}: the image is {image.width}x{image.height}, too large to process.",
                                code="image_too_large", hint="Send an image of at most 16384x16384 pixels.")
            image.load()
        return image
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UserError(f"{field}: the image claims more pixels than sdweb decodes ({error}).",
                        code="image_too_large", hint="Send an image of at most 16384x16384 pixels.") from error
    except (binascii.Error, OSError, ValueError, SyntaxError) as error:
        raise UserError(f"{field}: Invalid encoded image ({type(error).__name__}).", code="invalid_image",
                        hint="Send a base64-encoded PNG, JPEG or WebP, optionally with a data: prefix.") from error


def encode_for_api(image: Image.Image, fmt: str = "png", jpeg_quality: int = 80) -> str:
    """Bare base64 of the image in the samples format, with the infotext in it (PNG text / EXIF)."""
    infotext = image.info.get("parameters") if isinstance(image.info.get("parameters"), str) else None
    # other text chunks the image carries (Extras' "postprocessing" / "extras") are kept, as A1111 does
    extra = {key: value for key, value in image.info.items()
             if key in ("postprocessing", "extras") and isinstance(value, str)}
    return base64.b64encode(encode_image(image, infotext, fmt, jpeg_quality=jpeg_quality,
                                         extra_text=extra or None)).decode("ascii")
