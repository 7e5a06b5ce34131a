"""Screenshots of every tab at 1600x1000 and 1280x800 (for docs/screenshots/), taken from a real server on the
browser tests' data folder (tiny models) after one small txt2img job, so the gallery is not empty.

    PYTHONPATH=. python tests/ui/screenshots.py docs/screenshots

The PNGs are reduced to 256 colours to stay small. Needs /usr/bin/chromium and playwright.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from browser_kit import browser_page, generate_small, running_server, wait_for_info  # noqa: E402

SIZES = ((1600, 1000), (1280, 800))
TABS = ("txt2img", "img2img", "Extras", "PNG Info", "Checkpoint Merger", "Settings", "Extensions")


def _slug(text: str) -> str:
    return text.lower().replace(" ", "-")


def _shrink(path: Path) -> None:
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def take(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as root, running_server(Path(root)) as (url, _, _):
        for width, height in SIZES:
            with browser_page(url, [], width, height) as page:
                page.locator("#txt2img_prompt textarea").fill("a red fox in the snow, <lora:tiny-lora:0.6>")
                generate_small(page, "txt2img", steps=4)
                wait_for_info(page, "txt2img", r"Steps: 4,")
                page.wait_for_timeout(1000)
                for tab in TABS:
                    page.get_by_role("tab", name=tab, exact=True).first.click()
                    page.wait_for_timeout(800)
                    path = out / f"{_slug(tab)}-{width}x{height}.png"
                    page.screenshot(path=str(path), timeout=120_000)
                    written.append(path)
                page.get_by_role("tab", name="txt2img", exact=True).first.click()
                page.locator("#txt2img_extra_networks").click()
                page.get_by_role("tab", name="Lora").first.click()
                page.wait_for_timeout(1500)
                page.locator("#txt2img_extra_networks_panel").first.scroll_into_view_if_needed()
                path = out / f"txt2img-extra-networks-{width}x{height}.png"
                page.screenshot(path=str(path), timeout=120_000)
                written.append(path)
    for path in written:
        _shrink(path)
    return written


if __name__ == "__main__":
    for written in take(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")):
        print(written, written.stat().st_size)
