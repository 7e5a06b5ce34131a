"""The page's per-family presets: an editing model's img2img denoising says "edit" and starts at 1.0; back on
another family it is A1111's 0.75 again; txt2img's hires denoising is never touched."""

from __future__ import annotations

from sdweb.models.families import FAMILIES
from sdweb.ui.family_presets import EDIT_LABEL, IMG2IMG_DENOISING, PRESET_FIELDS, preset_updates

DENOISING = PRESET_FIELDS.index("denoising_strength")


def test_edit_model_presets_img2img_denoising():
    update = preset_updates(FAMILIES["flux-kontext"], apply_defaults=True, is_img2img=True)[DENOISING]
    assert update["label"] == EDIT_LABEL and update["value"] == 1.0


def test_other_families_restore_a1111_default():
    update = preset_updates(FAMILIES["sd1"], apply_defaults=True, is_img2img=True)[DENOISING]
    assert update["label"] == "Denoising strength" and update["value"] == IMG2IMG_DENOISING


def test_label_only_when_the_kind_did_not_change():
    update = preset_updates(FAMILIES["flux-kontext"], apply_defaults=False, is_img2img=True)[DENOISING]
    assert update["label"] == EDIT_LABEL and "value" not in update


def test_txt2img_hires_denoising_untouched():
    txt2img = preset_updates(FAMILIES["flux-kontext"], apply_defaults=True, is_img2img=False)
    assert len(txt2img) == len(PRESET_FIELDS)
    assert not isinstance(txt2img[DENOISING], dict) or "value" not in txt2img[DENOISING]


def test_qwen_image_edit_is_an_edit_model_and_qwen_image_has_its_presets():
    update = preset_updates(FAMILIES["qwen-image-edit"], apply_defaults=True, is_img2img=True)[DENOISING]
    assert update["label"] == EDIT_LABEL and update["value"] == 1.0
    distilled, width, _, steps, cfg, sampler, schedule, _ = preset_updates(FAMILIES["qwen-image"], apply_defaults=True)
    assert distilled["visible"] is False and width["step"] == 16 and width["value"] == 1024
    assert (steps, cfg, sampler, schedule) == (50, 4.0, "Euler", "Simple")


def test_flux2_klein_distilled_and_base_have_their_presets():
    for name, expected in (("flux2-klein", (4, 1.0)), ("flux2-klein-base", (50, 4.0))):
        distilled, width, _, steps, cfg, sampler, schedule, _ = preset_updates(FAMILIES[name], apply_defaults=True)
        assert distilled["visible"] is False and width["step"] == 16 and width["value"] == 1024
        assert (steps, cfg, sampler, schedule) == (*expected, "Euler", "Simple")
