"""The Queue panel and Settings' Workers panel on a real page with two local workers (--device-ids 0,1): a
batch from the txt2img tab runs split over both workers, the Queue shows it running on them, then done.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; never `playwright install`.
"""

import pytest
from browser_kit import (  # noqa: F401 (the page and screenshot fixtures)
    CHROMIUM,
    page_without_outside_requests,
    running_server,
    screenshot_each_failed_test,
    set_number,
    wait_for_info,
    wait_for_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("workers"), ("--device-ids", "0,1")) as running:
        yield running


def test_queue_shows_a_split_batch_running_on_both_workers_then_done(page):
    page.locator("#sdweb_queue").get_by_text("Queue", exact=True).click()
    wait_for_text(page, "#sdweb_queue_html", "Nothing running")
    page.locator("#txt2img_prompt textarea").fill("a lighthouse")
    for elem_id, value in (("txt2img_width", "64"), ("txt2img_height", "64"), ("txt2img_steps", "40"),
                           ("txt2img_batch_size", "2")):
        set_number(page, elem_id, value)
    page.locator("#txt2img_generate").click()
    wait_for_text(page, "#sdweb_queue_html", r"Running \(1\).*txt2img.*local-\d.*\(2 images\).*Done")
    wait_for_info(page, "txt2img", r"Seed: \d+")
    wait_for_text(page, "#sdweb_queue_html", r"Running \(0\).*Done.*txt2img\s+done\s+local-")


def test_settings_workers_panel_lists_each_worker(page):
    page.get_by_role("tab", name="Settings", exact=True).first.click()
    page.locator("#sdweb_workers").get_by_text("Workers", exact=True).click()
    table = wait_for_text(page, "#sdweb_workers_html", r"local-0.*local-1")
    assert table.count("cpu") >= 2 and "alpha" in table and "idle" in table
