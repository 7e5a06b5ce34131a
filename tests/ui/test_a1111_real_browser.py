"""Issue 21 in a real page with the real tagcomplete (the pinned copy in tests/data/a1111_real): its javascript,
unchanged, finds the prompt box, reads the tag file through A1111's file= route and lists the matching tags while
the user types; the pinned controlnet is listed as incompatible in the Extensions tab while the page works.

The pinned copy keeps none of tagcomplete's large tag files; as a user who downloads one, the test puts a small
danbooru.csv of its own (tagcomplete's default tag file, same columns) in the installed copy's tags folder.
Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package; never `playwright install`.
"""

import re
import shutil
from pathlib import Path

import pytest
from browser_kit import (  # noqa: F401 (the page and screenshot fixtures)
    CHROMIUM,
    page_without_outside_requests,
    running_server,
    screenshot_each_failed_test,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect

PINNED = Path(__file__).resolve().parents[1] / "data" / "a1111_real"
TAGS = 'long_hair,0,4350743,"longhair"\nlooking_at_viewer,0,3315722,""\nsmile,0,2873890,"smiling"\n'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("a1111-real-browser")
    extensions = root / "data" / "extensions"
    for name in ("a1111-sd-webui-tagcomplete", "sd-webui-controlnet"):
        shutil.copytree(PINNED / name, extensions / name)
    (extensions / "a1111-sd-webui-tagcomplete" / "tags" / "danbooru.csv").write_text(TAGS, encoding="utf-8")
    with running_server(root, ("--skip-install",)) as running:
        yield running


def test_real_tagcomplete_lists_tags_while_typing(page):
    """Its quality tags (tags/extra-quality-tags.csv, inserted before) and the tag file's, by count; one more
    letter narrows the list."""
    prompt = page.locator("#txt2img_prompt textarea")
    expect(prompt).to_have_class(re.compile(r"\bautocomplete\b"), timeout=60_000)  # its setup read the tag files
    prompt.click()
    prompt.press_sequentially("a photo, lo")
    results = page.locator("#txt2img_prompt .autocompleteResults li")
    expect(results).to_have_count(3)
    for index, tag in enumerate(("low_quality", "long_hair", "looking_at_viewer")):
        expect(results.nth(index).locator(".acListItem")).to_have_text(tag)
    prompt.press_sequentially("n")
    expect(results).to_have_count(1)
    expect(results.nth(0).locator(".acListItem")).to_have_text("long_hair")
    results.nth(0).click()
    expect(prompt).to_have_value("a photo, long hair, ")


def test_extensions_tab_lists_the_real_controlnet_as_incompatible(page):
    page.get_by_role("tab", name="Extensions", exact=True).first.click()
    table = page.locator("#extensions_table")
    expect(table.locator("tr[data-extension='a1111-sd-webui-tagcomplete']")).to_contain_text("loaded")
    expect(table.locator("tr[data-extension='sd-webui-controlnet']")).to_contain_text(
        "incompatible: it patches A1111's model internals (sgm, ldm, modules.lowvram in scripts/cldm.py")
