"""What the API test modules share: the API app over a data folder (for the flow families, over tiny random-weight
files), choosing a checkpoint, images in and out of responses, and the check every flow family passes (same seed
same image, another seed another, the infotext pasted back giving the image again)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from sdweb.api.a1111.app import mount_api
from sdweb.cli import parse_options
from sdweb.state import build_app_state
from sdweb.testing.tiny_flow import TinyFlowFiles


@contextlib.contextmanager
def api_app(data: Path, *flags: str) -> Iterator[tuple[TestClient, Any]]:
    """/sdapi/v1 over the data folder `data` (started with --api and `flags`), and its app state."""
    state = build_app_state(parse_options(["--data-dir", str(data), "--api", *flags], {}))
    app = FastAPI()
    mount_api(app, state)
    try:
        with TestClient(app) as client:
            yield client, state
    finally:
        state.queue.shutdown()


@contextlib.contextmanager
def flow_api(root: Path, kinds: Sequence[str], write_more: Callable[[Path], None] = lambda root: None,
             options: dict[str, Any] | None = None) -> Iterator[tuple[TestClient, Any, TinyFlowFiles]]:
    """The API over a data folder holding the tiny files `kinds` (and what `write_more` adds), with `options`
    set first."""
    files = TinyFlowFiles(root)
    files.paths(*kinds)
    write_more(files.root)
    with api_app(files.root) as (client, state):
        if options:
            assert client.post("/sdapi/v1/options", json=options).status_code == 200
        yield client, state, files


def image_of(b64: str) -> Image.Image:
    """An image the API returned: plain base64 (A1111 sends no data: prefix)."""
    assert not b64.startswith("data:")
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def generated(response) -> Image.Image:
    assert response.status_code == 200, response.text
    return image_of(response.json()["images"][0])


def png_b64(image: Image.Image, prefix: bool = False) -> str:
    """`image` as a request sends it: base64 PNG, with the data: URL prefix browsers send if `prefix`."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    text = base64.b64encode(buffer.getvalue()).decode()
    return "data:image/png;base64," + text if prefix else text


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def select(client, stem: str, modules: list[str] | None = None) -> str:
    """Choose the checkpoint named `stem` (and Forge's modules) through /options; its title."""
    titles = {item["model_name"]: item["title"] for item in client.get("/sdapi/v1/sd-models").json()}
    assert stem in titles, f"{stem} not listed: {sorted(titles)}"
    response = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": titles[stem],
                                                      "forge_additional_modules": modules or []})
    assert response.status_code == 200, response.text
    return titles[stem]


def check_reproducible_and_pasted_back(client, stem: str, modules: Sequence[str], txt2img: Callable[..., Any],
                                       also_in_infotext: Sequence[str] = ()) -> None:
    """`txt2img(client, **fields)` on checkpoint `stem` gives a 96x64 image whose infotext names the model and
    the modules Automatic added; the same seed gives it again, seed 12 another; its infotext pasted back gives
    the same infotext and image."""
    select(client, stem)
    image = generated(txt2img(client))
    assert image.size == (96, 64)
    infotext = image.info["parameters"]
    for part in (f"Model: {stem}", *also_in_infotext):
        assert part in infotext
    for number, module in enumerate(modules, start=1):
        assert f"Module {number}: {module}" in infotext
    assert np.array_equal(pixels(generated(txt2img(client))), pixels(image))
    assert not np.array_equal(pixels(generated(txt2img(client, seed=12))), pixels(image))
    pasted = client.post("/sdapi/v1/txt2img", json={"infotext": infotext})
    assert json.loads(pasted.json()["info"])["infotexts"][0] == infotext
    assert np.array_equal(pixels(generated(pasted)), pixels(image))
