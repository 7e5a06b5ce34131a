"""The real page in headless Chromium against the real server on the demo model: txt2img, PNG Info, inpaint,
Extras.

Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package; never `playwright install`.
Screenshots go to tests/ui/artifacts/ (ignored by git).
"""

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from sdweb.testing.server import free_port, stop_process_group

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
GENERATION_TIMEOUT_MS = 240_000  # two shared CPU cores under load

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect
expect.set_options(timeout=30_000)  # the page answers slowly while other jobs load the machine


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"server did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    data, log = root / "data", root / "server.log"
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(root / "gradio"),
           "TMPDIR": str(root), "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "sdweb", "--no-download-sd-model", "--data-dir", str(data), "--port", str(port),
                                    "--api"], env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(url, process, log)
        yield url, data
    finally:
        stop_process_group(process)
        print(f"--- server log (tail) ---\n{log.read_text(errors='replace')[-3000:]}")  # shown when a test fails


@pytest.fixture(scope="module")
def outside_requests() -> list[str]:
    return []


@pytest.fixture(scope="module")
def page(server, outside_requests):
    url, _ = server
    outside = outside_requests
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda request: None if urlparse(request.url).hostname in LOCAL_HOSTS
                else outside.append(request.url))
        page.set_default_timeout(60_000)
        started = time.perf_counter()
        page.goto(url)
        expect(page.locator("#txt2img_prompt textarea")).to_be_visible(timeout=30_000)  # hydrated
        expect(page.locator("#txt2img_generate")).to_be_enabled()
        print(f"page ready (form usable) {time.perf_counter() - started:.2f} s after navigation")
        yield page
        browser.close()


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request):
    """A full-page screenshot in tests/ui/artifacts/ named after the failed test."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "page" in request.fixturenames:
        ARTIFACTS.mkdir(exist_ok=True)
        request.getfixturevalue("page").screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"),
                                                   full_page=True)


def _set_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def _wait_for_info(page, tab: str, pattern: str) -> str:
    """The tab's generation info once it matches; fails at once with the message of an error toast."""
    info = page.locator(f"#{tab}_info textarea")
    toast = page.get_by_test_id("toast-body")
    deadline = time.monotonic() + GENERATION_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        value = info.input_value()
        if re.search(pattern, value, re.S):
            return value
        if toast.count() and toast.first.is_visible():
            pytest.fail(f"the page showed an error: {toast.first.inner_text()}")
        page.wait_for_timeout(250)
    pytest.fail(f"no generation info matching {pattern!r} after {GENERATION_TIMEOUT_MS} ms")


def _upload_to_editor(page, elem_id: str, path: Path) -> None:
    """Upload into an ImageEditor; retried, because the WebGL editor can drop a file sent while it starts."""
    editor = page.locator(f"#{elem_id}")
    placeholder = editor.get_by_text("Upload an image")
    expect(placeholder).to_be_visible()
    for _ in range(3):
        editor.locator("input[type=file]").set_input_files(str(path))
        try:
            expect(placeholder).to_be_hidden(timeout=5_000)
            return
        except AssertionError:
            continue
    pytest.fail(f"the image was not taken by #{elem_id}")


@pytest.fixture(scope="module")
def txt2img_png(page, server):
    """Generate once in the txt2img tab; the saved PNG is used by the later tests."""
    _, data = server
    page.locator("#txt2img_prompt textarea").fill("a (red:1.2) cat on a mat")
    page.locator("#txt2img_neg_prompt textarea").fill("blurry, lowres")
    for elem_id, value in (("txt2img_width", "64"), ("txt2img_height", "64"), ("txt2img_steps", "2")):
        _set_number(page, elem_id, value)
    page.locator("#txt2img_generate").click()
    _wait_for_info(page, "txt2img", r"Steps: 2,")
    expect(page.locator("#txt2img_gallery img").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "txt2img.png"), full_page=True)
    saved = sorted((data / "outputs" / "txt2img-images").rglob("*.png"))
    return saved


def test_txt2img_generates_saves_and_shows_infotext(page, txt2img_png, outside_requests):
    info = page.locator("#txt2img_info textarea").input_value()
    assert info.startswith("a (red:1.2) cat on a mat\nNegative prompt: blurry, lowres\n")
    assert "Steps: 2," in info and "Size: 64x64" in info
    assert len(txt2img_png) == 1
    with Image.open(txt2img_png[0]) as image:
        assert image.size == (64, 64) and image.info["parameters"] == info
    assert page.locator("#txt2img_token_counter").inner_text().strip() == "6/75"
    assert page.locator("#txt2img_progress").inner_text().startswith("Time taken")
    assert outside_requests == [], "the page must not reach outside 127.0.0.1"


def test_png_info_reads_the_saved_png_and_sends_it_to_txt2img(page, txt2img_png):
    _set_number(page, "txt2img_steps", "30")  # the paste must overwrite it
    page.get_by_role("tab", name="PNG Info").click()
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(txt2img_png[0]))
    expect(page.locator("#pnginfo_generation_info textarea")).to_have_value(re.compile(r"Steps: 2,"))
    assert "Negative prompt: blurry, lowres" in page.locator("#pnginfo_generation_info textarea").input_value()
    page.locator("#pnginfo_send_txt2img").click()
    expect(page.locator("#txt2img_steps input[type=number]")).to_have_value("2")
    expect(page.locator("#txt2img_prompt textarea")).to_have_value("a (red:1.2) cat on a mat")


@pytest.mark.slow  # CI time: runs with ./run-tests.sh -m slow
def test_inpaint_with_a_painted_mask(page, server, tmp_path):
    _, data = server
    source = tmp_path / "source.png"
    gradient = Image.linear_gradient("L").resize((256, 256))
    Image.merge("RGB", (gradient, gradient.rotate(90), Image.new("L", (256, 256), 40))).save(source)
    page.get_by_role("tab", name="img2img").first.click()
    page.get_by_role("tab", name="Inpaint", exact=True).click()
    _upload_to_editor(page, "img2maskimg", source)
    page.wait_for_timeout(1000)  # the WebGL editor needs a moment before it takes strokes
    box = page.locator("#img2maskimg canvas").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2  # the image is centred in the canvas
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 30, y + 10)
    page.mouse.move(x + 50, y + 30)
    page.mouse.up()
    for elem_id, value in (("img2img_width", "64"), ("img2img_height", "64"), ("img2img_steps", "2")):
        _set_number(page, elem_id, value)
    page.screenshot(path=str(ARTIFACTS / "inpaint_mask.png"), full_page=True)
    page.locator("#img2img_generate").click()
    _wait_for_info(page, "img2img", r"Steps: 2,.*Mask blur: 4")
    expect(page.locator("#img2img_gallery img").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "inpaint.png"), full_page=True)
    saved = sorted((data / "outputs" / "img2img-images").rglob("*.png"))
    assert saved
    with Image.open(saved[-1]) as output, Image.open(source) as original:
        result = np.asarray(output.convert("RGB"), dtype=np.int16)
        expected = np.asarray(original.convert("RGB").resize(output.size, Image.Resampling.LANCZOS), dtype=np.int16)
    changed = np.abs(result - expected).max(axis=2) > 8
    assert changed.any(), "the painted area must change"
    assert not changed[:20, :20].any(), "the corner far from the stroke must stay as it was"
    assert changed.mean() < 0.5, "only the area around the stroke may change"


@pytest.mark.slow  # CI time: runs with ./run-tests.sh -m slow
def test_send_to_img2img_carries_image_and_prompt(page, txt2img_png):
    page.get_by_role("tab", name="txt2img").first.click()
    page.locator("#txt2img_prompt textarea").fill("a (red:1.2) cat on a mat")
    page.locator("#txt2img_send_to_img2img").click()
    expect(page.locator("#img2img_prompt textarea")).to_have_value("a (red:1.2) cat on a mat")
    expect(page.locator("#img2img_image img")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "img2img.png"), full_page=True)


def test_extras_upscales_2x_size_checked(page, server, txt2img_png):
    _, data = server
    page.get_by_role("tab", name="Extras", exact=True).first.click()
    page.locator("#extras_image input[type=file]").set_input_files(str(txt2img_png[0]))
    expect(page.locator("#extras_image img")).to_be_visible()
    _set_number(page, "extras_upscaling_resize", "2")
    page.locator("#extras_upscaler_1 input").click()
    page.get_by_role("option", name="Lanczos", exact=True).click()
    expect(page.locator("#extras_upscaler_1 input")).to_have_value("Lanczos")
    page.locator("#extras_generate").click()
    status, toast = page.locator("#extras_progress"), page.get_by_test_id("toast-body")
    deadline = time.monotonic() + GENERATION_TIMEOUT_MS / 1000
    while not status.inner_text().startswith("Time taken") and time.monotonic() < deadline:
        if toast.count() and toast.first.is_visible():
            pytest.fail(f"the page showed an error: {toast.first.inner_text()}")
        page.wait_for_timeout(250)
    expect(page.locator("#extras_gallery img").first).to_be_visible()
    expect(page.locator("#html_info_extras")).to_contain_text("Postprocess upscaler: Lanczos")
    expect(page.locator("#html_info_extras")).to_contain_text("Negative prompt: blurry, lowres")
    page.screenshot(path=str(ARTIFACTS / "extras.png"), full_page=True)
    saved = sorted((data / "outputs" / "extras-images").glob("*.png"))
    assert len(saved) == 1
    with Image.open(saved[0]) as result, Image.open(txt2img_png[0]) as source:
        assert result.size == (source.width * 2, source.height * 2) == (128, 128)
        assert result.info["parameters"] == source.info["parameters"], "the source infotext is kept"
        assert "Postprocess upscale by: 2" in result.info["postprocessing"]


@pytest.mark.slow  # CI time: runs with ./run-tests.sh -m slow
def test_bad_width_is_put_right_with_a_readable_message_and_generate_works(page):
    page.get_by_role("tab", name="txt2img").first.click()
    _set_number(page, "txt2img_width", "70")
    toast = page.get_by_test_id("toast-body").filter(has_text="Width 70")
    expect(toast).to_be_visible()
    assert "not a multiple of 8" in toast.inner_text() and "set to 72" in toast.inner_text()
    expect(page.locator("#txt2img_width input[type=number]")).to_have_value("72")
    page.screenshot(path=str(ARTIFACTS / "bad_width.png"), full_page=True)
    for close in page.locator("[data-testid=toast-close]").all():
        close.click()
    _set_number(page, "txt2img_width", "64")
    _set_number(page, "txt2img_steps", "3")
    page.locator("#txt2img_generate").click()
    _wait_for_info(page, "txt2img", r"Steps: 3,")


@pytest.mark.slow  # CI time: runs with ./run-tests.sh -m slow
def test_interrupt_stops_a_long_job(page):
    page.get_by_role("tab", name="txt2img").first.click()
    for elem_id, value in (("txt2img_width", "64"), ("txt2img_height", "64"), ("txt2img_steps", "150"),
                           ("txt2img_batch_count", "40")):
        _set_number(page, elem_id, value)
    page.locator("#txt2img_generate").click()
    expect(page.locator("#txt2img_progress")).to_contain_text("Step", timeout=30_000)
    started = time.monotonic()
    page.locator("#txt2img_interrupt").click()
    expect(page.locator("#txt2img_progress")).to_contain_text("Interrupted", timeout=30_000)
    assert time.monotonic() - started < 30  # 40 x 150 steps would take minutes
    _set_number(page, "txt2img_batch_count", "1")
    _set_number(page, "txt2img_steps", "2")


@pytest.mark.parametrize("tab", ["img2img", "PNG Info", "Settings", "Extensions", "Extras"])
def test_tab_screenshots(page, tab):
    """Each tab renders (screenshots to look at in tests/ui/artifacts/)."""
    page.get_by_role("tab", name=tab, exact=True).first.click()
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"tab-{tab.replace(' ', '_')}.png"), full_page=True)
