"""Shared pieces of the browser tests: a real sdweb server on a prepared data folder, headless Chromium, and
waits that fail at once with the text of an error toast.

The data folder holds tiny random-weight models in the real file formats (two SD1 checkpoints, a LoRA with a
preview and user metadata, an embedding, a VAE) and a styles.csv, so the page shows what a user's would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

from sdweb.testing.server import free_port, stop_process_group, wait_until_answers
from sdweb.testing.tiny import write_tiny

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
JOB_TIMEOUT_S = 240  # two shared CPU cores under load: a tiny 20-step job can take a minute
STYLES_CSV = 'name,prompt,negative_prompt\r\nCinematic,"cinematic, {prompt}, film grain",blurry\r\n'
LORA_METADATA = {"description": "adds detail", "activation text": "detailed", "preferred weight": 0.6}


def prepare_data_dir(data: Path) -> None:
    """Models and files a user would have: the checkpoints alpha and beta, LoRA 'detail' with preview and user
    metadata, embedding 'badhands', VAE 'tiny.vae', styles.csv with 'Cinematic'."""
    checkpoints, lora = data / "models" / "Stable-diffusion", data / "models" / "Lora"
    for folder in (checkpoints, lora, data / "embeddings", data / "models" / "VAE"):
        folder.mkdir(parents=True, exist_ok=True)
    write_tiny("sd1", checkpoints / "alpha.safetensors", seed=1)
    write_tiny("sd1", checkpoints / "beta.safetensors", seed=2)
    Image.new("RGB", (96, 144), (200, 60, 60)).save(checkpoints / "alpha.preview.png")
    write_tiny("lora", lora / "detail.safetensors", seed=3)
    Image.new("RGB", (96, 144), (60, 160, 60)).save(lora / "detail.png")
    (lora / "detail.json").write_text(json.dumps(LORA_METADATA), encoding="utf-8")
    write_tiny("embedding", data / "embeddings" / "badhands.safetensors", seed=4)
    write_tiny("vae", data / "models" / "VAE" / "tiny.vae.safetensors", seed=5)
    (data / "styles.csv").write_text(STYLES_CSV, encoding="utf-8")


@contextlib.contextmanager
def running_server(root: Path, extra_args: tuple[str, ...] = ()) -> Iterator[tuple[str, Path, Path]]:
    """(url, data dir, log file) of a server on a prepared data folder under `root`."""
    data, log = root / "data", root / "server.log"
    prepare_data_dir(data)
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(root / "gradio"),
           "TMPDIR": str(root), "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "sdweb", "--no-download-sd-model", "--data-dir", str(data),
                                    "--port", str(port), "--api", *extra_args], env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_answers(url, process, timeout=240)
        yield url, data, log
    finally:
        stop_process_group(process)
        print(f"--- server log (tail) ---\n{log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def browser_page(url: str, outside: list[str], width: int = 1400, height: int = 1000) -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("request", lambda request: None if urlparse(request.url).hostname in LOCAL_HOSTS
                else outside.append(request.url))
        page.set_default_timeout(30_000)
        page.goto(url)
        sync_api.expect(page.locator("#txt2img_prompt textarea")).to_be_visible(timeout=60_000)
        yield page
        browser.close()


def screenshot_on_failure(request) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and "page" in request.fixturenames:
        ARTIFACTS.mkdir(exist_ok=True)
        request.getfixturevalue("page").screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"),
                                                   full_page=True, timeout=120_000)


@pytest.fixture(scope="module", name="page")
def page_without_outside_requests(server):
    """`page` for a module that imports this: the page of the module's `server`; the module fails if the page
    requested anything outside this machine."""
    outside: list[str] = []
    with browser_page(server[0], outside) as opened:
        yield opened
    assert not outside, outside


@pytest.fixture(autouse=True)
def screenshot_each_failed_test(request):
    """Autouse in a module that imports it: a screenshot of `page` when a test fails."""
    yield
    screenshot_on_failure(request)


def set_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")


def fail_on_toast(page) -> None:
    toast = page.get_by_test_id("toast-body")
    if toast.count() and toast.first.is_visible():
        text = toast.first.inner_text()
        if "Error" in text or page.locator(".toast-body.error").count():
            pytest.fail(f"the page showed an error: {text}")


def close_toasts(page) -> None:
    for close in page.locator("[data-testid=toast-close]").all():
        with contextlib.suppress(Exception):
            close.click(timeout=2_000)


def wait_for_text(page, selector: str, pattern: str, timeout_s: float = JOB_TIMEOUT_S,
                  value: bool = False) -> str:
    """The element's text (or input value) once it matches `pattern`; fails early on an error toast."""
    element = page.locator(selector).first
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = element.input_value() if value else element.inner_text()
        if re.search(pattern, text, re.S):
            return text
        fail_on_toast(page)
        page.wait_for_timeout(250)
    pytest.fail(f"{selector} did not match {pattern!r} within {timeout_s} s (last: {text!r})")


def wait_for_info(page, tab: str, pattern: str, timeout_s: float = JOB_TIMEOUT_S) -> str:
    return wait_for_text(page, f"#{tab}_info textarea", pattern, timeout_s, value=True)


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a dropdown with the mouse (from its own list, which then closes)."""
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id}").get_by_role("option", name=option, exact=True).click()
    page.locator(f"#{elem_id} input").press("Escape")
    page.locator(f"#{elem_id} [role=listbox]").wait_for(state="hidden")


def generate_small(page, tab: str, steps: int = 2, size: int = 64) -> None:
    for elem_id, value in ((f"{tab}_width", str(size)), (f"{tab}_height", str(size)), (f"{tab}_steps", str(steps))):
        set_number(page, elem_id, value)
    page.locator(f"#{tab}_generate").click()
