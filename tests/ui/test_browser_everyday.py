"""What an A1111 user reaches for every day, driven with the mouse and keyboard in headless Chromium against a
real server: styles, Extra Networks, the progress bar, gallery Save / Zip, the prompt tools, the Checkpoint
Merger, the checkpoint switch, img2img Resize by / 📐, Extras' send buttons, the Settings search.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; never `playwright install`.
"""

import csv
import io
import json
import re
import time
import zipfile

import pytest
import requests
from browser_kit import (  # noqa: F401 (the page and screenshot fixtures)
    CHROMIUM,
    JOB_TIMEOUT_S,
    choose,
    close_toasts,
    generate_small,
    page_without_outside_requests,
    running_server,
    screenshot_each_failed_test,
    set_number,
    wait_for_info,
    wait_for_text,
)
from PIL import Image

# slow: together about 5 minutes of CI's 30; ./run-tests.sh -m slow runs them
pytestmark = [pytest.mark.browser, pytest.mark.slow]
sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect
expect.set_options(timeout=30_000)  # two shared CPU cores: the page answers slowly under load


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("everyday")) as running:
        yield running


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).first.click()


def test_styles_apply_and_edit(page, server):
    _, data, _ = server
    _tab(page, "txt2img")
    page.locator("#txt2img_prompt textarea").fill("a cat")
    choose(page, "txt2img_styles", "Cinematic")
    page.keyboard.press("Escape")
    page.locator("#txt2img_style_apply").click()
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("cinematic, a cat, film grain")
    expect(page.locator("#txt2img_neg_prompt textarea")).to_have_value("blurry")
    expect(page.locator("#txt2img_styles .token")).to_have_count(0)  # applied styles leave the selection
    # the editor: a new style, saved to styles.csv (the old file kept as .bak), offered in both tabs
    page.locator("#txt2img_style_edit").click()
    name = page.locator("#txt2img_edit_style_name input")
    name.fill("Moody")
    name.press("Enter")
    page.locator("#txt2img_edit_style_prompt textarea").fill("moody lighting")
    page.locator("#txt2img_edit_style_neg_prompt textarea").fill("sunny")
    page.locator("#txt2img_edit_style_save").click()
    expect(page.locator("#txt2img_edit_style_message")).to_contain_text("Saved style Moody")
    rows = {row["name"]: row for row in csv.DictReader(io.StringIO((data / "styles.csv").read_text("utf-8-sig")))}
    assert rows["Moody"]["prompt"] == "moody lighting" and rows["Moody"]["negative_prompt"] == "sunny"
    assert rows["Cinematic"]["prompt"] == "cinematic, {prompt}, film grain"
    assert (data / "styles.csv.bak").is_file()
    # editing an existing style
    choose(page, "txt2img_edit_style_name", "Cinematic")
    expect(page.locator("#txt2img_edit_style_prompt textarea")).to_have_value("cinematic, {prompt}, film grain")
    page.locator("#txt2img_edit_style_prompt textarea").fill("cinematic, {prompt}, 35mm")
    page.locator("#txt2img_edit_style_save").click()
    expect(page.locator("#txt2img_edit_style_message")).to_contain_text("Saved style Cinematic")
    assert "35mm" in (data / "styles.csv").read_text("utf-8-sig")
    _tab(page, "img2img")
    choose(page, "img2img_styles", "Moody")  # the other tab's list has the new style
    page.keyboard.press("Escape")
    _tab(page, "txt2img")
    # deleting
    choose(page, "txt2img_edit_style_name", "Moody")
    page.locator("#txt2img_edit_style_delete").click()
    expect(page.locator("#txt2img_edit_style_message")).to_contain_text("Deleted style Moody")
    assert "Moody" not in (data / "styles.csv").read_text("utf-8-sig")
    page.locator("#txt2img_edit_style_close").click()
    expect(page.locator("#txt2img_styles_dialog")).to_be_hidden()


def test_extra_networks_card_click_inserts_the_tag_with_the_preferred_weight(page, server):
    _, data, _ = server
    _tab(page, "txt2img")
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.fill("a cat")
    page.locator("#txt2img_extra_networks").click()
    panel = page.locator("#txt2img_extra_networks_panel").first
    expect(panel).to_be_visible()
    panel.get_by_role("tab", name="Lora").click()
    cards = page.locator("#txt2img_lora_cards .thumbnail-item")
    expect(cards).to_have_count(1)
    cards.first.click()
    # detail.json says preferred weight 0.6 and activation text "detailed"; the tiny LoRA's alias is tiny-lora
    expect(prompt).to_have_value("a cat <lora:tiny-lora:0.6> detailed")
    cards.first.click()  # a second click takes it out again, as A1111
    expect(prompt).to_have_value("a cat")
    # the metadata editor: the clicked card is chosen; a new weight is saved to detail.json and used
    page.locator("#txt2img_extra_metadata").click()
    expect(page.locator("#txt2img_extra_activation_text textarea")).to_have_value("detailed")
    set_number(page, "txt2img_extra_preferred_weight", "0.8")
    page.locator("#txt2img_extra_metadata_save").click()
    expect(page.locator("#txt2img_extra_metadata_message")).to_contain_text("Saved detail.json")
    saved = json.loads((data / "models" / "Lora" / "detail.json").read_text("utf-8"))
    assert saved["preferred weight"] == 0.8 and saved["description"] == "adds detail"
    cards.first.click()
    expect(prompt).to_have_value("a cat <lora:tiny-lora:0.8> detailed")
    # search filters, a textual-inversion card inserts the embedding's name
    panel.get_by_role("tab", name="Textual Inversion").click()
    page.locator("#txt2img_extra_search textarea").fill("nothing-like-this")
    expect(page.locator("#txt2img_textual_inversion_cards .thumbnail-item")).to_have_count(0)
    page.locator("#txt2img_extra_search textarea").fill("bad")
    expect(page.locator("#txt2img_textual_inversion_cards .thumbnail-item")).to_have_count(1)
    page.locator("#txt2img_textual_inversion_cards .thumbnail-item").first.click()
    expect(prompt).to_have_value("a cat <lora:tiny-lora:0.8> detailed badhands")
    page.locator("#txt2img_extra_networks").click()
    expect(panel).to_be_hidden()


def test_progress_bar_with_eta_over_the_gallery_during_a_20_step_job(page):
    _tab(page, "txt2img")
    page.locator("#txt2img_prompt textarea").fill("a cat on a mat")
    generate_small(page, "txt2img", steps=20)
    bar = page.locator("#txt2img_progressbar .sdweb-progressbar")
    expect(bar).to_be_visible(timeout=60_000)
    seen = set()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline and not page.locator("#txt2img_progress").inner_text().startswith("Time"):
        seen.update(text.strip() for text in bar.all_inner_texts())
        page.wait_for_timeout(200)
    assert any(re.fullmatch(r"\d+% ETA \d+s", text) for text in seen), seen
    expect(bar).to_have_count(0)  # gone when the job ends
    wait_for_info(page, "txt2img", r"Steps: 20,")


def test_gallery_save_and_zip_write_log_images(page, server):
    _, data, _ = server
    page.locator("#txt2img_save").click()
    expect(page.locator("#txt2img_progress")).to_contain_text("Saved: ")
    folder = data / "log" / "images"
    saved = sorted(folder.glob("*.png"))
    assert len(saved) == 1 and re.fullmatch(r"00000-\d+\.png", saved[0].name)
    with Image.open(saved[0]) as image:
        assert "Steps: 20," in image.info["parameters"]
    rows = list(csv.reader((folder / "log.csv").open(encoding="utf-8")))
    assert rows[0] == ["prompt", "seed", "width", "height", "sampler", "cfgs", "steps", "filename",
                       "negative_prompt", "sd_model_name", "sd_model_hash"]
    assert rows[1][0] == "a cat on a mat" and rows[1][6] == "20" and rows[1][7] == saved[0].name
    page.locator("#txt2img_save_zip").click()
    expect(page.locator("#txt2img_progress")).to_contain_text(".zip")
    [archive] = folder.glob("*.zip")
    with zipfile.ZipFile(archive) as opened:
        assert len(opened.namelist()) == 1
    expect(page.locator("#txt2img_download_files")).to_be_visible()
    expect(page.locator("#txt2img_open_folder")).to_be_visible()  # a local server shows 📂


def test_paste_from_the_prompt_box_or_the_last_job_and_clear(page):
    _tab(page, "txt2img")
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.fill("a dog\nNegative prompt: ugly\nSteps: 7, Sampler: Euler a, CFG scale: 5, Seed: 99, Size: 128x64")
    page.locator("#paste_txt2img").click()
    expect(prompt).to_have_value("a dog")
    expect(page.locator("#txt2img_neg_prompt textarea")).to_have_value("ugly")
    expect(page.locator("#txt2img_steps input[type=number]")).to_have_value("7")
    expect(page.locator("#txt2img_width input[type=number]")).to_have_value("128")
    page.locator("#txt2img_clear_prompt").click()
    expect(prompt).to_have_value("")
    expect(page.locator("#txt2img_neg_prompt textarea")).to_have_value("")
    page.locator("#paste_txt2img").click()  # empty box: the last job's parameters (params.txt)
    expect(prompt).to_have_value("a cat on a mat")
    expect(page.locator("#txt2img_steps input[type=number]")).to_have_value("20")


def test_checkpoint_merger_result_loads_and_generates(page, server):
    url, data, _ = server
    _tab(page, "Checkpoint Merger")
    choose(page, "modelmerger_primary_model_name", next(t for t in _titles(url) if t.startswith("alpha")))
    choose(page, "modelmerger_secondary_model_name", next(t for t in _titles(url) if t.startswith("beta")))
    page.locator("#modelmerger_custom_name textarea").fill("merged")
    set_number(page, "modelmerger_interp_amount", "0.5")
    page.locator("#modelmerger_save_as_half label").click()
    choose(page, "modelmerger_bake_in_vae", "tiny.vae.safetensors")
    page.locator("#modelmerger_merge").click()
    wait_for_text(page, "#modelmerger_status", r"Checkpoint saved to .*merged\.safetensors")
    merged = data / "models" / "Stable-diffusion" / "merged.safetensors"
    header_length = int.from_bytes(merged.read_bytes()[:8], "little")
    header = json.loads(merged.read_bytes()[8:8 + header_length])
    recipe = json.loads(header["__metadata__"]["sd_merge_recipe"])
    assert recipe["interp_method"] == "Weighted sum" and recipe["multiplier"] == 0.5
    assert recipe["bake_in_vae"] == "tiny.vae.safetensors" and recipe["save_as_half"] is True
    assert {entry["dtype"] for key, entry in header.items() if key != "__metadata__"} == {"F16"}
    # the result is in the top bar's list; choosing it loads it at once, with a message
    _tab(page, "txt2img")
    page.locator("#sd_model_checkpoint input").click()
    page.get_by_role("option", name=re.compile(r"^merged\.safetensors")).click()
    wait_for_text(page, "#sd_checkpoint_status", r"Loaded merged\.safetensors")
    expect(page.locator("#sd_model_checkpoint input")).to_have_value(re.compile(r"^merged\.safetensors \["))
    assert requests.get(f"{url}sdapi/v1/options", timeout=30).json()["sd_model_checkpoint"].startswith("merged")
    page.locator("#txt2img_prompt textarea").fill("a merged cat")
    generate_small(page, "txt2img", steps=2)
    wait_for_info(page, "txt2img", r"Model: merged,")


def test_a_checkpoint_card_selects_and_loads_that_checkpoint(page):
    _tab(page, "txt2img")
    page.locator("#txt2img_extra_networks").click()
    panel = page.locator("#txt2img_extra_networks_panel").first
    page.locator("#txt2img_extra_search textarea").fill("")
    panel.get_by_role("tab", name="Checkpoints").click()
    page.locator("#txt2img_checkpoints_cards .thumbnail-item").filter(has_text="beta").click()
    wait_for_text(page, "#sd_checkpoint_status", r"Loaded beta\.safetensors")
    expect(page.locator("#sd_model_checkpoint input")).to_have_value(re.compile(r"^beta\.safetensors"))
    page.locator("#txt2img_extra_networks").click()
    expect(panel).to_be_hidden()


def _titles(url: str) -> list[str]:
    return [item["title"] for item in requests.get(f"{url}sdapi/v1/sd-models", timeout=30).json()]


def test_img2img_resize_by_and_auto_size(page, tmp_path):
    source = tmp_path / "wide.png"
    Image.new("RGB", (200, 96), (90, 120, 200)).save(source)
    _tab(page, "img2img")
    page.locator("#img2img_image input[type=file]").set_input_files(str(source))
    expect(page.locator("#img2img_image img")).to_be_visible()
    page.locator("#img2img_detect_image_size_btn").click()  # 📐: 200x96 -> nearest multiples of 8
    expect(page.locator("#img2img_width input[type=number]")).to_have_value("200")
    expect(page.locator("#img2img_height input[type=number]")).to_have_value("96")
    page.get_by_role("tab", name="Resize by").click()
    set_number(page, "img2img_scale", "1.5")  # 300x144, the width down to a multiple of 8
    expect(page.locator("#img2img_scale_resolution_preview")).to_contain_text("from 200x96 to 296x144")
    set_number(page, "img2img_steps", "2")
    page.locator("#img2img_prompt textarea").fill("a blue field")
    page.locator("#img2img_generate").click()
    wait_for_info(page, "img2img", r"Size: 296x144")
    page.get_by_role("tab", name="Resize to").click()


def test_extras_send_buttons_carry_the_result(page, tmp_path):
    source = tmp_path / "small.png"
    Image.new("RGB", (64, 64), (10, 200, 10)).save(source)
    _tab(page, "Extras")
    page.locator("#extras_image input[type=file]").set_input_files(str(source))
    choose(page, "extras_upscaler_1", "Lanczos")
    set_number(page, "extras_upscaling_resize", "2")
    page.locator("#extras_generate").click()
    wait_for_text(page, "#extras_progress", r"^Time taken")
    page.locator("#extras_send_to_img2img").click()
    expect(page.locator("#img2img_image img")).to_be_visible()
    page.get_by_role("tab", name="Resize to").click()
    page.locator("#img2img_detect_image_size_btn").click()
    expect(page.locator("#img2img_width input[type=number]")).to_have_value("128")


def test_settings_search_and_every_section_in_view(page):
    _tab(page, "Settings")
    sections = page.locator("#settings_sections label")
    assert sections.count() >= 15
    for index in range(sections.count()):  # no section hides behind an overflow menu
        assert sections.nth(index).is_visible()
    sections.filter(has_text="Live previews").click()
    expect(page.locator("#setting_live_previews_enable")).to_be_visible()
    expect(page.locator("#setting_jpeg_quality")).to_be_hidden()
    page.locator("#settings_search textarea, #settings_search input").first.fill("jpeg quality")
    expect(page.locator("#setting_jpeg_quality")).to_be_visible()
    expect(page.locator("#setting_live_previews_enable")).to_be_hidden()
    page.locator("#settings_search textarea, #settings_search input").first.fill("")
    close_toasts(page)
