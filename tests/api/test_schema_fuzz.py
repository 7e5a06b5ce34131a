"""schemathesis against /openapi.json, in process, with the real tiny demo model: no 5xx, and every
response fits its documented status codes, content type and schema. Bounded for CI: a few examples per
route (schema-valid and schema-violating), small images and steps, and a time budget."""

import base64
import contextlib
import io
import time
from dataclasses import dataclass, field

import pytest
from PIL import Image

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup  # noqa: E402

from sdweb.cli import parse_options  # noqa: E402
from sdweb.server import create_app  # noqa: E402
from sdweb.state import build_app_state  # noqa: E402

# Generation is real, so sizes and step counts are clamped (also when absent, so neither the API's
# defaults nor an `infotext` can ask for more) to what a CPU does in a blink.
CLAMP = {"width": 64, "height": 64, "steps": 2, "batch_size": 1, "n_iter": 1, "hr_second_pass_steps": 1,
         "firstphase_width": 0, "firstphase_height": 0, "hr_resize_x": 64, "hr_resize_y": 64, "hr_scale": 1.0}
BUDGET_S = 75.0
EXAMPLES = 30
# Routes whose valid requests have effects outside the process: starting a download would reach the network.
# routes that reach the network (git, downloads) on a URL that passes validation
NOT_FUZZED = {("POST", "/sdapi/v1/model-downloader/downloads"), ("POST", "/sdweb/v1/extensions/install"),
              ("POST", "/sdweb/v1/extensions/update"), ("POST", "/sdweb/v1/extensions/check-updates")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 200)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PNG = _png()


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    cases: int = 0
    server_errors: int = 0
    not_built: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def spent(self) -> bool:
        return time.monotonic() - self.started > BUDGET_S


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz")
    # schemathesis's ASGI client calls the server "testserver" in its Host header: allow that name
    state = build_app_state(parse_options(["--data-dir", str(data), "--nowebui", "--allowed-hosts", "testserver"],
                                          {}))
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(state))
    state.queue.shutdown()


def _bounded(path: str, body: object, positive: bool) -> object:
    """Small generation, and a real image in image fields (so img2img and png-info really run)."""
    if not isinstance(body, dict):
        return body
    if path.endswith(("/txt2img", "/img2img")):
        for key, small in CLAMP.items():
            value = body.get(key, small)
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= small:
                body[key] = small
    if path.endswith("/img2img") and positive or isinstance(body.get("init_images"), list) and body["init_images"]:
        body["init_images"] = [PNG]
    for key in ("image", "mask"):
        if isinstance(body.get(key), str) and len(body[key]) % 3 == 0:
            body[key] = PNG
    return body


def _fuzz(operation, mode: GenerationMode, tally: Tally) -> None:
    documented = set(operation.definition.raw.get("responses", {}))
    answered = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case):
        if tally.spent:
            return
        case.body = _bounded(operation.path, case.body, mode is GenerationMode.POSITIVE)
        answered.append((case, case.call(timeout=120)))

    with contextlib.suppress(Unsatisfiable):  # nothing to violate: a route without parameters or body
        run()
    # Checked outside hypothesis, so every failure is collected rather than the first one raised.
    for case, response in answered:
        tally.cases += 1
        key = f"{operation.label} {response.status_code}"
        tally.statuses[key] = tally.statuses.get(key, 0) + 1
        checks = CHECKS
        if response.status_code == 501 and "501" in documented:
            tally.not_built += 1  # a feature not built yet, documented as such: checked, but not a fault
            checks = CHECKS[1:]
        elif response.status_code >= 500:
            tally.server_errors += 1
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as error:  # every failed check of this response
            tally.failures.append(f"{operation.label} [{mode.value}] {response.status_code}: {str(error)[:800]}")


@pytest.mark.slow
def test_openapi_schema_fuzz(api_schema):
    tally = Tally()
    operations = [op for op in (result.ok() for result in api_schema.get_all_operations())
                  if (op.method.upper(), op.path) not in NOT_FUZZED]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if not tally.spent:
                _fuzz(operation, mode, tally)
    print(f"\nschemathesis: {len(operations)} operations, {tally.cases} cases, {tally.server_errors} 5xx, "
          f"{tally.not_built} documented 501, {len(tally.failures)} failures in "
          f"{time.monotonic() - tally.started:.1f} s")
    print("\n".join(f"  {key}: {count}" for key, count in sorted(tally.statuses.items())))
    assert len(operations) > 30 and tally.cases > 150
    by_route: dict[str, int] = {}
    for failure in tally.failures:
        route = failure.split(":", 1)[0]
        by_route[route] = by_route.get(route, 0) + 1
    summary = "\n".join(f"{count} x {route}" for route, count in sorted(by_route.items()))
    assert tally.server_errors == 0 and not tally.failures, summary + "\n\n" + "\n".join(tally.failures[:5])


def test_too_few_denoising_steps_still_run_one_step(api_schema):
    from starlette.testclient import TestClient

    client = TestClient(api_schema.app, raise_server_exceptions=False)
    response = client.post("/sdapi/v1/txt2img", json={"width": 64, "height": 64, "steps": 2, "enable_hr": True,
                                                      "hr_second_pass_steps": 1})
    assert response.status_code == 200, response.text
    init = client.post("/sdapi/v1/txt2img", json={"width": 64, "height": 64, "steps": 2}).json()["images"][0]
    for strength in (0.0, 0.2):  # int(2 * strength) == 0 steps in diffusers' arithmetic
        response = client.post("/sdapi/v1/img2img", json={"init_images": [init], "width": 64, "height": 64,
                                                          "steps": 2, "denoising_strength": strength})
        assert response.status_code == 200, response.text
