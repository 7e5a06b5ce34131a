"""What the A1111 extension tests read through the API of their `world` (an app state and its client, after
the extensions were installed and the app restarted): the extensions listing and a small txt2img's infotext."""

from __future__ import annotations

import json

SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 11, "negative_prompt": ""}


def listing(world) -> dict[str, dict]:
    return {item["name"]: item for item in world["api"].get("/sdweb/v1/extensions").json()}


def txt2img(world, prompt: str, **fields) -> dict:
    response = world["api"].post("/sdapi/v1/txt2img", json={**SMALL, "prompt": prompt, **fields})
    assert response.status_code == 200, response.text
    return json.loads(response.json()["info"])
