"""The Script dropdown in a real page (headless Chromium, real server on the demo model): a script's controls
appear under the dropdown when chosen and go away with None, and an X/Y/Z plot 2x2 with a legend is generated
with the mouse and keyboard and checked from the saved grid file.

Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package; never `playwright install`.
"""

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdweb.testing.server import free_port, stop_process_group

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]
GENERATION_TIMEOUT_S = 120

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # CI time (30 min for everything); ./run-tests.sh -m slow runs it
sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except OSError:  # refused while starting, or a read timeout on a busy machine
            time.sleep(0.5)
    raise TimeoutError(f"server did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("scripts-browser")
    data, log = root / "data", root / "server.log"
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(root / "gradio"),
           "TMPDIR": str(root), "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "sdweb", "--no-download-sd-model", "--data-dir", str(data),
                                    "--port", str(port)], env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(url, process, log)
        yield url, data, log
    finally:
        stop_process_group(process)
        print(f"--- server log (tail) ---\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def page(server):
    url = server[0]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(20_000)
        page.goto(url)
        expect(page.locator("#txt2img_prompt textarea")).to_be_visible(timeout=60_000)
        yield page
        browser.close()


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "page" in request.fixturenames:
        ARTIFACTS.mkdir(exist_ok=True)
        request.getfixturevalue("page").screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"),
                                                   full_page=True)


def _choose(page, elem_id: str, option: str) -> None:
    """Pick `option` in a Gradio dropdown with the mouse."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.locator(f"#{elem_id} input")).to_have_value(option)


def _set_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def _no_error_toast(page) -> None:
    toast = page.get_by_test_id("toast-body")
    if toast.count() and toast.first.is_visible():
        pytest.fail(f"the page showed an error: {toast.first.inner_text()}")


def test_choosing_a_script_shows_its_controls_and_none_hides_them(page, server):
    """Bug 1: with one selectable script (img2img had only Poor man's outpainting) choosing it answered 500."""
    page.get_by_role("tab", name="img2img", exact=True).first.click()
    controls = page.locator("#script_outpainting_pixels")
    expect(controls).to_be_hidden()
    _choose(page, "img2img_script", "Poor man's outpainting")
    expect(controls).to_be_visible()
    _no_error_toast(page)
    _choose(page, "img2img_script", "None")
    expect(controls).to_be_hidden()
    _no_error_toast(page)
    log = server[2].read_text(errors="replace")
    assert "InvalidComponentError" not in log and "not a valid output component" not in log


def test_script_controls_sit_right_under_the_dropdown(page):
    """Bug 12: the chosen script's controls were placed at the bottom, below ControlNet, far from the dropdown."""
    page.get_by_role("tab", name="txt2img", exact=True).first.click()
    _choose(page, "txt2img_script", "X/Y/Z plot")
    x_type = page.locator("#script_txt2img_xyz_plot_x_type")
    expect(x_type).to_be_visible()
    page.wait_for_timeout(300)  # the dropdown's list has closed; measure in one scroll position
    dropdown = page.locator("#txt2img_script").bounding_box()
    controlnet = page.locator("#txt2img_script_controlnet").bounding_box()
    controls = x_type.bounding_box()
    assert controlnet["y"] + controlnet["height"] <= dropdown["y"], "ControlNet comes before the Script dropdown"
    assert 0 <= controls["y"] - (dropdown["y"] + dropdown["height"]) < 80, (dropdown, controls)


def test_xyz_plot_2x2_with_legend(page, server):
    _, data, _ = server
    page.get_by_role("tab", name="txt2img", exact=True).first.click()
    page.locator("#txt2img_prompt textarea").fill("a red cube")
    for elem_id, value in (("txt2img_width", "64"), ("txt2img_height", "64"), ("txt2img_steps", "1")):
        _set_number(page, elem_id, value)
    _choose(page, "txt2img_script", "X/Y/Z plot")
    prefix = "script_txt2img_xyz_plot"
    _choose(page, f"{prefix}_x_type", "Steps")
    page.locator(f"#{prefix}_x_values textarea, #{prefix}_x_values input").first.fill("1-2")
    _choose(page, f"{prefix}_y_type", "CFG Scale")
    values = page.locator(f"#{prefix}_y_values textarea, #{prefix}_y_values input").first
    values.fill("3, 7")
    values.press("Tab")
    expect(page.locator(f"#{prefix}_cost")).to_contain_text("4 images")
    expect(page.locator(f"#{prefix}_draw_legend input")).to_be_checked()
    page.locator("#txt2img_generate").click()
    info = page.locator("#txt2img_info textarea")
    deadline = time.monotonic() + GENERATION_TIMEOUT_S
    while "X Type: Steps" not in info.input_value() and time.monotonic() < deadline:
        _no_error_toast(page)
        page.wait_for_timeout(250)
    assert re.search(r'X Type: Steps, X Values: 1-2, Y Type: CFG Scale, Y Values: "3, 7"', info.input_value())
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "xyz_plot.png"), full_page=True)
    grids = sorted((data / "outputs" / "txt2img-grids").rglob("xyz_grid-*.png"))
    cells = sorted((data / "outputs" / "txt2img-images").rglob("*.png"))[-4:]
    assert len(grids) == 1 and len(cells) == 4
    with Image.open(grids[0]) as grid:
        grid.load()
    pad_left, pad_top = 64 * 3 // 4, grid.height - 2 * 64
    assert grid.width == pad_left + 2 * 64 and pad_top > 0, grid.size
    assert grid.info["parameters"] == info.input_value()
    for index, path in enumerate(cells):  # saved in the order they ran: X fastest
        ix, iy = index % 2, index // 2
        with Image.open(path) as cell:
            box = (pad_left + ix * 64, pad_top + iy * 64, pad_left + (ix + 1) * 64, pad_top + (iy + 1) * 64)
            assert grid.crop(box).tobytes() == cell.convert("RGB").tobytes()
            assert f"Steps: {ix + 1}," in cell.info["parameters"]
            assert f"CFG scale: {(3.0, 7.0)[iy]}," in cell.info["parameters"]
    pixels = np.asarray(grid.convert("L"))
    for ix in range(2):  # the legend: a label over each column and left of each row
        assert (pixels[:pad_top, pad_left + ix * 64:pad_left + (ix + 1) * 64] < 128).any()
        assert (pixels[pad_top + ix * 64:pad_top + (ix + 1) * 64, :pad_left] < 128).any()
    expect(page.locator("#txt2img_gallery img").first).to_be_visible()
