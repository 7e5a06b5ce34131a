"""Poor man's outpainting canvas and mask (A1111's rounding to 64 and seam reach of 2 x mask blur)."""

import numpy as np
import pytest
from PIL import Image

from sdweb.generation.outpaint import outpaint_canvas


def _image(width=64, height=64):
    return Image.new("RGB", (width, height), (10, 200, 30))


def test_all_sides_grow_and_round_to_64():
    canvas = outpaint_canvas(_image(), 32, ["left", "right", "up", "down"], mask_blur=4)
    assert canvas.image.size == (128, 128)
    assert canvas.offset == (32, 32)
    mask = np.asarray(canvas.mask)
    assert mask[0, 0] == 255 and mask[64, 64] == 0
    assert mask[64, 32 + 7] == 255 and mask[64, 32 + 8] == 0  # reaches 2 * blur into the original
    assert canvas.image.getpixel((64, 64)) == (10, 200, 30)


def test_one_side_keeps_the_original_where_it_was():
    canvas = outpaint_canvas(_image(64, 64), 64, ["right"], mask_blur=0)
    assert canvas.image.size == (128, 64) and canvas.offset == (0, 0)
    mask = np.asarray(canvas.mask)
    assert mask[:, :64].max() == 0 and mask[:, 64:].min() == 255


def test_a_side_that_does_not_grow_is_still_rounded_to_64():
    canvas = outpaint_canvas(_image(64, 40), 64, ["left"], mask_blur=0)
    assert canvas.image.size == (128, 64) and canvas.offset == (64, 0)
    mask = np.asarray(canvas.mask)
    assert mask[40:, 64:].min() == 255  # the rounding rows below are painted too
    assert mask[:40, 64:].max() == 0


@pytest.mark.parametrize(("pixels", "directions", "words"), [
    (4, ["left"], "at least 8"), (64, [], "at least one direction"), (64, ["sideways"], "sideways")])
def test_bad_settings_name_the_problem(pixels, directions, words):
    with pytest.raises(ValueError, match=words):
        outpaint_canvas(_image(), pixels, directions, 4)
