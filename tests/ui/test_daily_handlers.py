"""The everyday UI's pure pieces without a browser: override chips, size checks, Resize by, settings search,
pasted settings."""

from pathlib import Path

import pytest
from PIL import Image

from sdweb.config.options import OPTIONS
from sdweb.config.settings import Settings
from sdweb.ui.controls import snapped_size
from sdweb.ui.overrides import override_chips, overrides_from_chips
from sdweb.ui.send import pasted_values
from sdweb.ui.tabs.img2img_size import detected_size, requested_size, scale_text, scaled_size
from sdweb.ui.tabs.settings import options_by_section, search_visibility

INFOTEXT = ("a cat\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 11, Size: 64x64, Model hash: abcdef1234, "
            "Model: beta, Clip skip: 2, ENSD: 31337")


def test_override_chips_round_trip():
    overrides = {"CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": 31337, "sd_model_checkpoint": "abc",
                 "not_in_infotext": 1}
    chips = override_chips(overrides)
    assert chips == ["Clip skip: 2", "ENSD: 31337", "Model hash: abc"]
    assert overrides_from_chips(chips) == {"CLIP_stop_at_last_layers": 2, "eta_noise_seed_delta": 31337,
                                           "sd_model_checkpoint": "abc"}
    assert overrides_from_chips(["Clip skip: two", "nonsense", "Tiling: False"]) == {"tiling": False}


def test_pasted_settings_become_overrides_as_a1111(tmp_path):
    """Bug 2: Clip skip (and the model, when disable_weights_auto_swap is off) were read, then dropped."""
    settings = Settings(tmp_path / "config.json")
    fields, overrides = pasted_values(INFOTEXT, "txt2img", settings=settings)
    assert fields["steps"] == 3 and fields["prompt"] == "a cat"
    assert overrides["CLIP_stop_at_last_layers"] == 2 and overrides["eta_noise_seed_delta"] == 31337
    assert "sd_model_checkpoint" not in overrides
    settings.update({"disable_weights_auto_swap": False, "CLIP_stop_at_last_layers": 2})
    _, overrides = pasted_values(INFOTEXT, "txt2img", settings=settings)
    assert overrides["sd_model_checkpoint"] == "abcdef1234"
    assert "CLIP_stop_at_last_layers" not in overrides  # already the current value


@pytest.mark.parametrize(("value", "expected"), [
    (512, None), (64, None), (2048, None), (7, 64), (100, 104), (99, 96), (63.5, 64), (5000, 2048), ("x", None),
    (float("nan"), 64),
])
def test_snapped_size(value, expected):
    assert snapped_size(value) == expected


def test_resize_by_and_auto_size():
    assert scaled_size((200, 96), 1.5) == (296, 144)
    assert scaled_size((200, 96), 0.1) == (64, 64)  # never below the smallest size
    assert scaled_size((3000, 100), 1.0) == (2048, 96)
    assert detected_size(Image.new("RGB", (203, 99))) == (200, 96) and detected_size(None) is None
    values = {"width": 512, "height": 512, "steps": 2}
    image = Image.new("RGB", (100, 60))
    assert requested_size(values, "resize_by", 2.0, image) == {"width": 200, "height": 120, "steps": 2}
    assert requested_size(values, "resize_to", 2.0, image) == values
    assert scale_text(image, 2.0) == "Resize: from 100x60 to 200x120"


def test_settings_search_shows_matching_settings_across_sections():
    sections = options_by_section([option for option in OPTIONS if option.kind != "list"])
    shown_sections, shown = search_visibility(sections, "", "Live previews")
    assert [name for name, visible in shown_sections.items() if visible] == ["Live previews"]
    assert all(shown.values())
    shown_sections, shown = search_visibility(sections, "JPEG quality", "Live previews")
    assert shown["jpeg_quality"] and not shown["live_previews_enable"]
    assert shown_sections["Saving images/grids"] and not shown_sections["Live previews"]
    shown_sections, shown = search_visibility(sections, "clip_stop", None)  # by key too
    assert shown["CLIP_stop_at_last_layers"] and sum(shown.values()) == 1


def test_restart_hint_names_the_button_the_tab_shows(monkeypatch):
    """Bug 13: the message said "Apply and restart UI" where the button says "Apply"."""
    from sdweb.ui.tabs import extensions_handlers

    monkeypatch.delenv("SD_WEBUI_RESTART", raising=False)
    assert "**Apply**" in extensions_handlers.restart_hint()
    assert "Apply and restart UI" not in extensions_handlers.restart_hint()
    monkeypatch.setenv("SD_WEBUI_RESTART", str(Path("tmp") / "restart"))
    assert "**Apply and restart UI**" in extensions_handlers.restart_hint()


def test_open_folder_only_where_browser_and_server_are_one_machine():
    from sdweb.cli import parse_options
    from sdweb.ui.gallery_tools import folder_setting, open_folder_allowed

    assert open_folder_allowed(parse_options([], {}))
    assert not open_folder_allowed(parse_options(["--listen"], {}))
    assert not open_folder_allowed(parse_options(["--hide-ui-dir-config"], {}))
    assert folder_setting({"outdir_txt2img_samples": "outputs/txt2img-images"}, "txt2img") == "outputs/txt2img-images"
    assert folder_setting({"outdir_samples": "/pictures"}, "img2img") == "/pictures"
