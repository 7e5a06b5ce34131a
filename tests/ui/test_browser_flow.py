"""Flux through the page, with the mouse: choosing a Flux checkpoint in the top bar shows Distilled CFG Scale and
fills in Flux's defaults (Forge's presets), a generation's infotext carries the distilled guidance, and going
back to an SD checkpoint hides the slider again.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; never `playwright install`.
"""

import pytest
import requests
from browser_kit import (  # noqa: F401 (the page and screenshot fixtures)
    CHROMIUM,
    choose,
    generate_small,
    page_without_outside_requests,
    running_server,
    screenshot_each_failed_test,
    wait_for_info,
)

from sdweb.testing.tiny_flow import TinyFlowFiles

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # CI time: 44 s with its server; runs with -m slow
sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect
expect.set_options(timeout=60_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow-page")
    TinyFlowFiles(root / "data").paths("flux-dev")
    with running_server(root) as running:
        yield running


def _title(url: str, stem: str) -> str:
    models = requests.get(f"{url}sdapi/v1/sd-models", timeout=30).json()
    return next(model["title"] for model in models if model["model_name"] == stem)


def test_flux_in_the_browser(page, server):
    url = server[0]
    distilled = page.locator("#txt2img_distilled_cfg_scale")
    expect(distilled).to_be_hidden()
    expect(page.locator("#forge_additional_modules")).to_be_visible()  # Forge's "VAE / Text Encoder"
    choose(page, "sd_model_checkpoint", _title(url, "flux1-dev-tiny"))
    expect(distilled).to_be_visible()
    expect(page.locator("#txt2img_steps input[type=number]")).to_have_value("20")
    expect(page.locator("#txt2img_cfg_scale input[type=number]")).to_have_value("1")
    expect(page.locator("#txt2img_width input[type=number]")).to_have_value("1024")
    generate_small(page, "txt2img", steps=2, size=64)
    info = wait_for_info(page, "txt2img", r"Distilled CFG Scale: 3\.5")
    assert "Model: flux1-dev-tiny" in info and "Sampler: Euler" in info and "Schedule type: Simple" in info

    choose(page, "sd_model_checkpoint", _title(url, "alpha"))
    expect(distilled).to_be_hidden()
