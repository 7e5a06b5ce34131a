"""img2img sub-tab inputs without a browser: inpaint sketch, uploaded masks, outpainting, batch folders."""

from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from sdweb.ui.tabs.img2img_inputs import batch_items, images_for_mode, upload_mask


def _editor(colour=(255, 0, 0, 255)):
    background = Image.new("RGBA", (64, 64), (0, 0, 255, 255))
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste(Image.new("RGBA", (16, 16), colour), (8, 8))
    composite = background.copy()
    composite.alpha_composite(layer)
    return {"background": background, "layers": [layer], "composite": composite}


def test_inpaint_sketch_paints_the_strokes_and_masks_them():
    init, mask = images_for_mode("inpaint_sketch", {"inpaint_sketch": _editor()})
    assert init.getpixel((10, 10)) == (255, 0, 0) and init.getpixel((40, 40)) == (0, 0, 255)
    assert mask.getpixel((10, 10)) == 255 and mask.getpixel((40, 40)) == 0


def test_inpaint_keeps_the_background_under_the_mask():
    init, mask = images_for_mode("inpaint", {"inpaint": _editor()})
    assert init.getpixel((10, 10)) == (0, 0, 255) and mask.getpixel((10, 10)) == 255


def test_inpaint_sketch_without_strokes_is_a_clear_error():
    editor = _editor()
    editor["layers"] = []
    with pytest.raises(gr.Error, match="mask is empty"):
        images_for_mode("inpaint_sketch", {"inpaint_sketch": editor})


def test_uploaded_mask_by_alpha_or_brightness():
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    transparent.putpixel((1, 1), (0, 0, 0, 255))
    assert upload_mask(transparent).getpixel((1, 1)) == 255 and upload_mask(transparent).getpixel((0, 0)) == 0
    grey = Image.new("RGB", (8, 8), (255, 255, 255))
    assert upload_mask(grey).mode == "L" and upload_mask(grey).getpixel((0, 0)) == 255


def test_batch_items_pair_masks_by_name_and_skip_unreadable_files(tmp_path):
    source, masks = tmp_path / "in", tmp_path / "masks"
    source.mkdir()
    masks.mkdir()
    Image.new("RGB", (64, 64), "red").save(source / "b.png")
    Image.new("RGB", (64, 64), "blue").save(source / "a.jpg")
    (source / "broken.png").write_bytes(b"not a png")
    (source / "notes.txt").write_text("ignored")
    Image.new("L", (64, 64), 255).save(masks / "b.png")
    folder = batch_items(str(source), str(masks))
    items = folder.items
    assert [item.source.name for item in items] == ["a.jpg", "b.png"]
    assert items[0].mask is None and items[1].mask.getpixel((0, 0)) == 255
    assert (source / "broken.png").read_bytes() == b"not a png"  # never touched
    assert len(folder.skipped) == 1 and folder.skipped[0].startswith("broken.png (")  # bug 10: said, not silent
    assert "broken.png" in folder.skipped_note()


def test_batch_output_names_follow_the_input_names():
    """Bug 10: A1111 names batch results after their inputs: out/<name>.png, <name>-<n> when several."""
    from sdweb.ui.tabs.img2img_inputs import batch_output_settings

    single = batch_output_settings("/out", Path("/in/cat [1].png"), several=False)
    assert single == {"outdir_samples": "/out", "save_to_dirs": False, "save_images_add_number": False,
                      "samples_filename_pattern": "cat (1)"}
    assert batch_output_settings("/out", Path("/in/dog.jpg"), several=True)["samples_filename_pattern"] == \
        "dog-[generation_number]"


def test_batch_items_missing_folder_names_it(tmp_path):
    with pytest.raises(gr.Error, match="does not exist"):
        batch_items(str(tmp_path / "nope"))
