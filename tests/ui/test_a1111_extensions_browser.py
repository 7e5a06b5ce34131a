"""Issue 21 in a real page: an A1111 extension's javascript (the tagcomplete-like fixture) runs on A1111's page
helpers and shows its tag list while the user types, and the Extensions tab says which extensions are A1111
ones and which are incompatible (the controlnet-like fixture), while the app serves.

Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package; never `playwright install`.
"""

import shutil
from pathlib import Path

import pytest
import requests
from browser_kit import (  # noqa: F401 (the page and screenshot fixtures)
    CHROMIUM,
    JOB_TIMEOUT_S,
    page_without_outside_requests,
    running_server,
    screenshot_each_failed_test,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # CI time (30 min for everything); ./run-tests.sh -m slow runs it
sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "a1111_extensions"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("a1111-browser")
    for name in ("tagcomplete-like", "controlnet-like", "images-browser-like"):
        shutil.copytree(FIXTURES / name, root / "data" / "extensions" / name)
    with running_server(root) as running:
        yield running


def test_tag_list_appears_while_typing(page):
    """The fixture reads its tags through A1111's file= route and finds the prompts with Gradio 3's selector
    ("#txt2img_prompt > label > textarea")."""
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.click()
    prompt.press_sequentially("a photo, lo")
    results = page.locator("#txt2img_prompt .autocompleteResults li")
    expect(results).to_have_text(["long_hair", "looking_at_viewer"])
    prompt.press_sequentially("n")
    expect(results).to_have_text(["long_hair"])


def test_img2img_prompt_was_in_the_page_for_on_ui_loaded(page):
    """onUiLoaded callbacks run after img2img's tab was built (A1111's page has every tab from the start)."""
    page.get_by_role("tab", name="img2img", exact=True).first.click()
    prompt = page.locator("#img2img_prompt textarea")
    prompt.click()
    prompt.press_sequentially("1g")
    expect(page.locator("#img2img_prompt .autocompleteResults li")).to_have_text(["1girl"])
    page.get_by_role("tab", name="txt2img", exact=True).first.click()


def test_a1111_ids_and_titles(page):
    assert page.evaluate("() => window.tacModelSelect && window.tacModelSelect.id") == "sd_model_checkpoint"
    expect(page.locator("#txt2img_generate")).to_have_attribute("title", "Tag autocomplete is active")


def test_extensions_tab_shows_api_and_incompatible_reason(page):
    page.get_by_role("tab", name="Extensions", exact=True).first.click()
    table = page.locator("#extensions_table")
    tagcomplete = table.locator("tr[data-extension='tagcomplete-like']")
    expect(tagcomplete).to_contain_text("A1111")
    expect(tagcomplete).to_contain_text("loaded")
    controlnet = table.locator("tr[data-extension='controlnet-like']")
    expect(controlnet).to_contain_text("incompatible: it patches A1111's model internals (ldm")
    expect(table.locator("tr[data-extension='controlnet']")).to_contain_text("sdweb")


def test_images_browser_tab_lists_the_outputs(page, server):
    url, data, _log = server
    response = requests.post(f"{url}sdapi/v1/txt2img", json={"prompt": "a listed tree", "steps": 1, "width": 64,
                                                              "height": 64, "save_images": True},
                             timeout=JOB_TIMEOUT_S)
    assert response.status_code == 200, response.text
    (saved,) = sorted((data / "outputs").rglob("*.png"))
    page.get_by_role("tab", name="Image Browser", exact=True).first.click()
    page.locator("#image_browser_refresh").click()
    expect(page.locator("#image_browser_list textarea")).to_have_value(str(saved))
