"""The browser bugs of issue 20 (numbers as filed), each reproduced with the mouse and keyboard in headless
Chromium against a real server; every test here failed on the code before the fix.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; never `playwright install`.
"""

import os
import shutil
import subprocess
import time

import pytest
import requests
from browser_kit import (  # noqa: F401 (the page and screenshot fixtures)
    CHROMIUM,
    JOB_TIMEOUT_S,
    close_toasts,
    generate_small,
    page_without_outside_requests,
    running_server,
    screenshot_each_failed_test,
    set_number,
    wait_for_info,
    wait_for_text,
)
from PIL import Image, PngImagePlugin

# slow: together about 5 minutes of CI's 30; ./run-tests.sh -m slow runs them
pytestmark = [pytest.mark.browser, pytest.mark.slow]
sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect
expect.set_options(timeout=30_000)  # two shared CPU cores: the page answers slowly under load


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("bugs")) as running:
        yield running


def _tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).first.click()


def _model(url: str, stem: str) -> dict:
    models = requests.get(f"{url}sdapi/v1/sd-models", timeout=30).json()
    return next(model for model in models if model["model_name"] == stem)


def _png_with(path, infotext: str) -> str:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", infotext)
    Image.new("RGB", (64, 64), (120, 80, 40)).save(path, pnginfo=info)
    return str(path)


def _toast_texts(page) -> list[str]:
    return [text for text in page.get_by_test_id("toast-body").all_inner_texts() if text.strip()]


def _log_tracebacks(log) -> int:
    return log.read_text(errors="replace").count("Traceback")


def test_bug11_options_name_the_checkpoint_in_use(server):
    url, _, _ = server
    alpha = _model(url, "alpha")
    requests.post(f"{url}sdapi/v1/txt2img", json={"prompt": "a cat", "steps": 1, "width": 64, "height": 64},
                  timeout=JOB_TIMEOUT_S).raise_for_status()
    options = requests.get(f"{url}sdapi/v1/options", timeout=30).json()
    assert options["sd_model_checkpoint"] == alpha["title"]  # was "" with a model loaded
    assert options["sd_checkpoint_hash"] == alpha["sha256"]


def test_bug2_png_info_send_to_txt2img_keeps_clip_skip_and_the_model(page, server, tmp_path):
    url, _, _ = server
    beta = _model(url, "beta")
    text = (f"a pasted cat\nNegative prompt: ugly\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 11, Size: 64x64, "
            f"Model hash: {beta['hash']}, Model: beta, Clip skip: 2")
    _tab(page, "PNG Info")
    page.locator("#pnginfo_image input[type=file]").set_input_files(_png_with(tmp_path / "pasted.png", text))
    expect(page.locator("#pnginfo_generation_info textarea")).to_have_value(text)
    page.locator("#pnginfo_send_txt2img").click()
    override = page.locator("#txt2img_override_settings")
    expect(override).to_be_visible()  # A1111's Override settings box, with the pasted settings as chips
    expect(override).to_contain_text("Clip skip: 2")
    expect(override).not_to_contain_text("Model hash")  # disable_weights_auto_swap is on by default
    page.locator("#txt2img_generate").click()
    wait_for_info(page, "txt2img", r"Clip skip: 2")
    # with the setting off, the model comes along too (and is used for that job only)
    requests.post(f"{url}sdapi/v1/options", json={"disable_weights_auto_swap": False}, timeout=30)
    _tab(page, "PNG Info")
    page.locator("#pnginfo_send_txt2img").click()
    expect(override).to_contain_text(f"Model hash: {beta['hash']}")
    page.locator("#txt2img_generate").click()
    info = wait_for_info(page, "txt2img", r"Model: beta")
    assert "Clip skip: 2" in info
    assert requests.get(f"{url}sdapi/v1/options", timeout=30).json()["CLIP_stop_at_last_layers"] == 1
    requests.post(f"{url}sdapi/v1/options", json={"disable_weights_auto_swap": True}, timeout=30)


def _shown_image_box(page, gallery: str) -> dict:
    """The box of the image the gallery shows: the preview's, else the largest thumbnail's."""
    return page.evaluate("""(selector) => {
        const preview = [...document.querySelectorAll(selector + ' .media-button img')];
        const images = (preview.length ? preview : [...document.querySelectorAll(selector + ' img')])
            .filter((img) => img.offsetParent);
        const img = images.sort((a, b) => b.width * b.height - a.width * a.height)[0];
        const box = img.getBoundingClientRect(), frame = document.querySelector(selector).getBoundingClientRect();
        return {left: box.left, right: box.right, top: box.top, bottom: box.bottom, fit: getComputedStyle(img).objectFit,
                frameLeft: frame.left, frameRight: frame.right, frameTop: frame.top, frameBottom: frame.bottom};
    }""", f"#{gallery}")


@pytest.mark.parametrize("size", [(64, 64), (256, 64)])
def test_bug3_the_result_is_shown_whole(page, size):
    _tab(page, "txt2img")
    page.locator("#txt2img_prompt textarea").fill(f"a {size[0]}x{size[1]} picture")
    set_number(page, "txt2img_width", str(size[0]))
    set_number(page, "txt2img_height", str(size[1]))
    set_number(page, "txt2img_steps", "2")
    page.locator("#txt2img_generate").click()
    wait_for_info(page, "txt2img", rf"Size: {size[0]}x{size[1]}")
    page.wait_for_timeout(1000)
    box = _shown_image_box(page, "txt2img_gallery")
    assert box["fit"] != "cover", box
    assert box["top"] >= box["frameTop"] - 1 and box["bottom"] <= box["frameBottom"] + 1, box  # not cut off
    assert box["left"] >= box["frameLeft"] - 1 and box["right"] <= box["frameRight"] + 1, box


def test_bug5_a_size_the_model_cannot_take_is_put_right_at_once_with_a_message(page):
    _tab(page, "txt2img")
    close_toasts(page)
    width = page.locator("#txt2img_width input[type=number]")
    width.fill("7")
    width.press("Tab")
    expect(width).to_have_value("64")
    expect(page.get_by_test_id("toast-body").filter(has_text="Width 7")).to_be_visible()
    assert "smallest size, 64" in " ".join(_toast_texts(page))
    close_toasts(page)
    width.fill("100")
    width.press("Tab")
    expect(width).to_have_value("104")
    expect(page.get_by_test_id("toast-body").filter(has_text="Width 100")).to_be_visible()
    assert "not a multiple of 8" in " ".join(_toast_texts(page))
    close_toasts(page)
    set_number(page, "txt2img_width", "64")


def test_bug6_hires_progress_of_one_image_names_the_hires_pass(page):
    _tab(page, "txt2img")
    page.locator("#txt2img_hr").get_by_text("Hires. fix").first.click()
    page.locator("#txt2img_enable_hr label").click()
    set_number(page, "txt2img_hires_steps", "8")
    page.locator("#txt2img_prompt textarea").fill("a hires cat")
    generate_small(page, "txt2img", steps=12)
    texts = set()
    status = page.locator("#txt2img_progress")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        shown = status.all_inner_texts()
        texts.update(shown)
        if any(text.startswith("Time taken") for text in shown):
            break
        page.wait_for_timeout(150)
    assert not [text for text in texts if "Batch" in text], texts  # was "Batch 1/2", "Batch 2/2"
    assert any("Hires fix" in text for text in texts), texts
    page.locator("#txt2img_enable_hr label").click()


def test_bug7_the_inpaint_brush_shows_the_picture_beneath(page, tmp_path):
    source = tmp_path / "dark.png"
    Image.new("RGB", (256, 256), (20, 40, 160)).save(source)
    _tab(page, "img2img")
    page.get_by_role("tab", name="Inpaint", exact=True).click()
    editor = page.locator("#img2maskimg")
    editor.locator("input[type=file]").set_input_files(str(source))
    expect(editor.get_by_text("Upload an image")).to_be_hidden()
    page.wait_for_timeout(1500)  # the WebGL editor needs a moment before it takes strokes
    box = page.locator("#img2maskimg canvas").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 40, y)
    page.mouse.down()
    for step in range(9):
        page.mouse.move(x - 40 + step * 10, y)
    page.mouse.up()
    page.mouse.move(x, y + 120)  # the brush cursor away from the stroke
    page.wait_for_timeout(500)
    shot = tmp_path / "stroke.png"
    page.screenshot(path=str(shot), clip={"x": x - 5, "y": y - 3, "width": 10, "height": 6})
    with Image.open(shot) as image:
        red, green, blue = image.convert("RGB").getpixel((5, 3))
    assert blue > 170 and red < 235, (red, green, blue)  # white paint over blue, the blue still showing
    assert (red, green, blue) != (255, 255, 255)
    page.get_by_role("tab", name="img2img", exact=True).nth(1).click()


def test_bug8_interrogate_error_keeps_the_prompt_box_stays_and_logs_no_traceback(page, server, tmp_path):
    _, _, log = server
    source = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), (30, 60, 90)).save(source)
    _tab(page, "img2img")
    page.get_by_role("tab", name="img2img", exact=True).nth(1).click()
    page.locator("#img2img_image input[type=file]").set_input_files(str(source))
    expect(page.locator("#img2img_image img")).to_be_visible()
    close_toasts(page)
    prompt = page.locator("#img2img_prompt textarea")
    prompt.fill("my own prompt")
    before = _log_tracebacks(log)
    page.locator("#interrogate").click()
    toast = page.get_by_test_id("toast-body").first
    expect(toast).to_be_visible(timeout=JOB_TIMEOUT_S * 1000)
    message = toast.inner_text()
    assert "BLIP" in message or "CLIP" in message, message
    expect(prompt).to_be_visible()
    expect(prompt).to_have_value("my own prompt")
    assert page.locator("#img2img_prompt").get_by_text("Error", exact=True).count() == 0  # no badge over it
    page.wait_for_timeout(13_000)  # Gradio's default toast lasts 10 s
    expect(toast).to_be_visible()
    assert _log_tracebacks(log) == before, "a user error must not log a traceback"
    close_toasts(page)


def test_bug10_img2img_batch_names_results_after_inputs_and_reports_unreadable_files(page, tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for name, colour in (("first.png", (200, 30, 30)), ("second.jpg", (30, 200, 30))):
        Image.new("RGB", (64, 64), colour).save(source / name)
    (source / "broken.png").write_bytes(b"this is not a png")
    _tab(page, "img2img")
    page.get_by_role("tab", name="Batch", exact=True).click()
    page.locator("#img2img_batch_input_dir textarea").fill(str(source))
    page.locator("#img2img_batch_output_dir textarea").fill(str(out))
    for elem_id, value in (("img2img_width", "64"), ("img2img_height", "64"), ("img2img_steps", "2")):
        set_number(page, elem_id, value)
    page.locator("#img2img_prompt textarea").fill("batch")
    page.locator("#img2img_generate").click()
    status = wait_for_text(page, "#img2img_progress", r"^Time taken")
    assert "broken.png" in status, status
    assert sorted(path.name for path in out.iterdir()) == ["first.png", "second.png"]
    assert (source / "broken.png").read_bytes() == b"this is not a png"
    page.get_by_role("tab", name="img2img", exact=True).nth(1).click()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")
def test_bug13_the_install_message_names_the_button_on_the_page(page, tmp_path):
    repository = tmp_path / "sdweb-hello"
    (repository / "scripts").mkdir(parents=True)
    (repository / "scripts" / "hello.py").write_text("# an extension with nothing in it\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1"}
    for command in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "hello"]):
        subprocess.run(["git", *command], cwd=repository, env=env, check=True)
    _tab(page, "Extensions")
    button = page.locator("#extensions_apply").inner_text().strip()
    page.get_by_role("tab", name="Install from URL").click()
    page.locator("#extensions_install_url textarea, #extensions_install_url input").first.fill(
        f"file://{repository}")
    page.locator("#extensions_install_button").click()
    message = wait_for_text(page, "#extensions_install_result", r"Installed", timeout_s=120)
    assert f"› {button}" in message, (button, message)  # the message said "Apply and restart UI" beside "Apply"
    if button == "Apply":
        assert "Apply and restart UI" not in message
