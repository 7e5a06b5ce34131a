"""Web boundary (issue 17): DNS rebinding and cross-site requests, the page's queue under --api-auth, and the
request limits.

- Forged Host / Origin on a real server process (API, the page, Gradio's queue join and its streams) and on
  websockets in-process: refused with 403 naming the header and the flag; the same requests with the right Host
  still install an extension (a file:// git repository built here, whose install.py leaves a marker file).
- The Host rules (loopback, --server-name, --allowed-hosts, --listen, *, --cors-allow-origins[-regex]).
- --api-auth alone: the Extensions install handler is not reachable through /gradio_api/queue/join without it.
- Limits: a body over MAX_REQUEST_BYTES is refused before it is read; prompts over the length, BREAK, AND,
  [..]-group and chunk limits get a 4xx naming the limit (API and UI); each distinct chunk is encoded once; the
  queue keeps finished jobs' images within a byte budget.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
import weakref
from pathlib import Path

import gradio as gr
import httpx
import pytest
import torch
from PIL import Image
from starlette.testclient import WebSocketDenialResponse

from sdweb.cli import parse_options
from sdweb.core.errors import UserError
from sdweb.core.limits import (
    FINISHED_JOBS_KEEP_BYTES,
    MAX_JOB_PROMPT_CHUNKS,
    MAX_PROMPT_AND_PARTS,
    MAX_PROMPT_BREAKS,
    MAX_PROMPT_CHARS,
    MAX_PROMPT_CHUNKS,
    MAX_PROMPT_SCHEDULED_PARTS,
    MAX_REQUEST_BYTES,
    MiB,
)
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.conditioning_plan import PromptEncoder, ScheduleOptions, build_plan
from sdweb.generation.jobs import JobQueue
from sdweb.models.clip_slots import clip_slots
from sdweb.models.families import get_family
from sdweb.prompts.conditioning import chunk_count, encode_prompt
from sdweb.prompts.parser import prompt_schedules
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client
from sdweb.testing.server import free_port, stop_process_group, wait_until_answers
from sdweb.testing.tiny import build_tiny_pipeline
from sdweb.ui.common import make_request, submit_job, token_counter_text

EVIL = "evil.example"
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1"}
INSTALL_PY = """
    from pathlib import Path
    Path(__file__).with_name("install-ran.txt").write_text("yes", encoding="utf-8")
"""
WEBSOCKET_SCRIPT = """
    from fastapi import WebSocket

    async def echo(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("pong")
        await websocket.close()

    def setup(context):
        context.on_app_started(lambda app: app.add_api_websocket_route("/web-boundary/ws", echo))
"""
FIGURES = {"tried": 0, "refused": 0, "forged installs ran": 0, "right-host installs": 0}
TIMES: dict[str, str] = {}


def _attack(refused: bool) -> None:
    FIGURES["tried"] += 1
    FIGURES["refused"] += refused


@pytest.fixture(scope="module")
def probe_url(tmp_path_factory) -> str:
    repo = tmp_path_factory.mktemp("repo") / "boundary-probe"
    repo.mkdir()
    for relative, text in {"install.py": INSTALL_PY, "scripts/ws.py": WEBSOCKET_SCRIPT}.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text(textwrap.dedent(text), encoding="utf-8")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "probe"]):
        subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True)
    return repo.as_uri()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server (page + API) on the demo model."""
    data = tmp_path_factory.mktemp("boundary-server")
    port = free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(data / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1"}
    with (data / "server.log").open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "sdweb", "--api", "--no-download-sd-model", "--data-dir",
                                    str(data), "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/internal/ping", process, timeout=300)
        yield port, data
    finally:
        stop_process_group(process)


def _installed(data: Path, name: str) -> bool:
    return (data / "extensions" / name / "install-ran.txt").exists()


def _install_handler(client: httpx.Client, headers: dict[str, str]) -> tuple[int, int]:
    """(fn_index, trigger id) of the Extensions tab's "Install from URL" button, read from the page's config."""
    config = client.get("/config", headers=headers).json()
    ids = {component["props"].get("elem_id"): component["id"] for component in config["components"]}
    button = ids["extensions_install_button"]
    dependency = next(d for d in config["dependencies"] if d["targets"] and d["targets"][0][0] == button)
    return dependency["id"], button


def _queue_install(client: httpx.Client, handler: tuple[int, int], url: str, folder: str,
                   headers: dict[str, str]) -> tuple[int, str]:
    """Join the page's queue with the install handler, as the page does; (join status, the handler's message)."""
    session = uuid.uuid4().hex[:11]
    joined = client.post("/gradio_api/queue/join", headers=headers,
                         json={"data": [url, "", folder], "fn_index": handler[0], "trigger_id": handler[1],
                               "session_hash": session, "event_data": None})
    if joined.status_code != 200:
        return joined.status_code, joined.text
    event_id = joined.json()["event_id"]
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}, headers=headers,
                       timeout=120) as stream:
        for line in stream.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                return 200, json.dumps(message.get("output", {}), ensure_ascii=False)
    return 200, "the stream ended before the install finished"


def test_forged_host_and_origin_are_refused_on_a_real_server(server, probe_url):
    port, data = server
    local = f"127.0.0.1:{port}"
    forged = {"Host": f"{EVIL}:{port}", "Origin": f"http://{EVIL}:{port}"}
    cross_site = {"Host": local, "Origin": f"http://{EVIL}:{port}"}
    right = {"Host": local, "Origin": f"http://{local}"}
    with httpx.Client(base_url=f"http://{local}", timeout=120) as client:
        handler = _install_handler(client, {"Host": local})
        answers: list[tuple[str, int, str]] = []  # (request, status, body), checked once all were sent
        for method, path, body in (("POST", "/sdweb/v1/extensions/install", {"url": probe_url, "name": "forged"}),
                                   ("POST", "/sdapi/v1/options", {"samples_format": "jpg"}),
                                   ("GET", "/", None), ("GET", "/config", None), ("GET", "/sdapi/v1/options", None),
                                   ("GET", "/gradio_api/queue/data?session_hash=abc", None),
                                   ("GET", "/gradio_api/heartbeat/abc", None)):
            with client.stream(method, path, json=body, headers=forged) as answer:  # some are endless streams
                text = answer.read().decode() if answer.status_code != 200 else ""
                answers.append((f"forged Host: {method} {path}", answer.status_code, text))
        answers.append(("forged Host: queue join", *_queue_install(client, handler, probe_url, "forged_queue",
                                                                   forged)))
        # a page on another site sending to the real address (plain CSRF, no rebinding)
        answer = client.post("/sdweb/v1/extensions/install", json={"url": probe_url, "name": "csrf"},
                             headers=cross_site)
        answers.append(("cross-site Origin: install", answer.status_code, answer.text))
        answers.append(("cross-site Origin: queue join", *_queue_install(client, handler, probe_url, "csrf_queue",
                                                                         cross_site)))
        forged_runs = sum(_installed(data, name) for name in ("forged", "forged_queue", "csrf", "csrf_queue"))
        FIGURES["forged installs ran"] += forged_runs
        for label, status, text in answers:
            _attack(status == 403)
            assert status == 403, (label, status, text[:300])
            code, header, flag = (("host_not_allowed", "Host header", f"--allowed-hosts {EVIL}") if "Host" in label
                                  else ("origin_not_allowed", "Origin header", "--cors-allow-origins"))
            assert code in text and header in text and flag in text, (label, text)
        assert forged_runs == 0
        # the same requests with the right Host (and the page's own Origin, or none) still install
        status, text = _queue_install(client, handler, probe_url, "queue_ok", right)
        assert status == 200 and "Installed **queue_ok**" in text and _installed(data, "queue_ok"), text
        client.post("/sdweb/v1/extensions/remove", json={"name": "queue_ok"}, headers=right)  # one copy per URL
        installed = client.post("/sdweb/v1/extensions/install", json={"url": probe_url, "name": "api_ok"},
                                headers=right)
        assert installed.status_code == 200, installed.text
        no_origin = client.post("/sdapi/v1/options", json={"samples_format": "png"})  # curl, webuiapi
        assert no_origin.status_code == 200, no_origin.text
    assert _installed(data, "api_ok")
    FIGURES["right-host installs"] += 2


def _state(root: Path, *argv: str):
    return build_app_state(parse_options(["--data-dir", str(root), *argv], {}))


WS_URL = "ws://127.0.0.1:7860/web-boundary/ws"  # TestClient's websockets ignore base_url


def test_websockets_check_host_and_origin(tmp_path, probe_url):
    state = _state(tmp_path, "--api")
    try:
        installed = local_client(create_app(state)).post("/sdweb/v1/extensions/install", json={"url": probe_url})
        assert installed.status_code == 200, installed.text
    finally:
        state.queue.shutdown()
    state = _state(tmp_path, "--api")  # restart: the extension's websocket route is loaded
    try:
        client = local_client(create_app(state))
        for headers, code in (({"Host": EVIL, "Origin": f"http://{EVIL}"}, "host_not_allowed"),
                              ({"Origin": f"http://{EVIL}"}, "origin_not_allowed"), ({"Origin": "null"},
                                                                                     "origin_not_allowed")):
            with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(WS_URL, headers=headers):
                pass  # the denial is the 403 response itself
            _attack(refused.value.status_code == 403)
            assert refused.value.status_code == 403 and refused.value.json()["code"] == code
        for headers in ({"Origin": "http://127.0.0.1:7860"}, {}):
            with client.websocket_connect(WS_URL, headers=headers) as socket_:
                assert socket_.receive_text() == "pong"
    finally:
        state.queue.shutdown()


HOSTNAME = socket.gethostname().lower()
# (flags, Host, Origin or None, allowed) for a POST (Origin checked) to a route that changes nothing
HOST_RULES = [
    ([], "localhost:7860", None, True), ([], "127.0.0.5", None, True), ([], "[::1]:7860", None, True),
    ([], "LOCALHOST.:7860", None, True), ([], f"{EVIL}:7860", None, False), ([], "192.168.1.5:7860", None, False),
    ([], "127.0.0.1.nip.io", None, False), ([], "127.0.0.1:7860", "http://localhost:3000", True),
    ([], "127.0.0.1:7860", "null", False), ([], "127.0.0.1:7860", f"https://{EVIL}", False),
    (["--listen"], "192.168.1.5:7860", None, True), (["--listen"], "[fe80::1]:7860", None, True),
    (["--listen"], f"{HOSTNAME}:7860", None, True), (["--listen"], f"{EVIL}:7860", None, False),
    (["--listen"], "192.168.1.5:7860", "http://192.168.1.5:7860", True),
    (["--listen"], "192.168.1.5:7860", "http://6.6.6.6", False),
    (["--server-name", "mybox.lan"], "mybox.lan:7860", None, True),
    (["--allowed-hosts", "sd.example, other.example"], "sd.example", "https://sd.example", True),
    (["--allowed-hosts", "sd.example"], f"{EVIL}", None, False),
    (["--allowed-hosts", "*"], f"{EVIL}:7860", f"http://{EVIL}:7860", True),
    (["--cors-allow-origins", "http://tool.example:8080"], "127.0.0.1:7860", "http://tool.example:8080", True),
    (["--cors-allow-origins-regex", r"https://.*\.tool\.example"], "127.0.0.1", "https://a.tool.example", True),
    (["--cors-allow-origins-regex", r"https://.*\.tool\.example"], "127.0.0.1", f"https://{EVIL}", False),
]


@pytest.mark.parametrize(("flags", "host", "origin", "allowed"), HOST_RULES)
def test_host_rules(tmp_path, flags, host, origin, allowed):
    state = _state(tmp_path, "--nowebui", *flags)
    try:
        client = local_client(create_app(state))
        headers = {"Host": host, **({"Origin": origin} if origin else {})}
        answer = client.post("/sdapi/v1/interrupt", headers=headers)
        if not allowed:
            _attack(answer.status_code == 403)
        assert (answer.status_code == 200) == allowed, (answer.status_code, answer.text[:300])
        host_ok = client.get("/internal/ping", headers={"Host": host}).status_code == 200
        # reading is CORS's business: a GET passes the Origin check whatever its Origin
        assert (client.get("/internal/ping", headers=headers).status_code == 200) == host_ok
    finally:
        state.queue.shutdown()


def test_allowed_hosts_star_is_stated_at_start(tmp_path, caplog):
    state = _state(tmp_path, "--nowebui", "--allowed-hosts", "*")
    try:
        with caplog.at_level(logging.INFO, logger="sdweb.api.hosts"):
            create_app(state)
        assert any("--allowed-hosts *" in r.message and "off" in r.message for r in caplog.records)
    finally:
        state.queue.shutdown()


def test_api_auth_alone_closes_the_page_queue(tmp_path, probe_url):
    data = tmp_path / "data"
    state = _state(data, "--api-auth", "bob:s3cret")
    try:
        app = create_app(state)
        with local_client(app) as stranger, local_client(app) as user:
            assert user.post("/login", data={"username": "bob", "password": "s3cret"}).status_code == 200
            handler = _install_handler(user, {})
            status, _ = _queue_install(stranger, handler, probe_url, "no_login", {})
            _attack(status in (401, 403))
            FIGURES["forged installs ran"] += _installed(data, "no_login")
            assert status in (401, 403), "the page's queue ran the install handler without credentials"
            assert stranger.get("/config").status_code == 401
            assert not _installed(data, "no_login")
            status, text = _queue_install(user, handler, probe_url, "logged_in", {})
            assert status == 200 and "Installed" in text, text
            assert _installed(data, "logged_in")
            FIGURES["right-host installs"] += 1
    finally:
        state.queue.shutdown()


def test_gradio_auth_path_alone_protects_the_api(tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("carl:pw-from-file\n", encoding="utf-8")
    state = _state(tmp_path / "data", "--api", "--gradio-auth-path", str(users))
    try:
        client = local_client(create_app(state))
        answer = client.post("/sdapi/v1/options", json={"samples_format": "jpg"})
        _attack(answer.status_code == 401)
        assert answer.status_code == 401 and state.settings.get("samples_format") != "jpg"
        assert client.get("/sdapi/v1/options", auth=("carl", "pw-from-file")).status_code == 200
    finally:
        state.queue.shutdown()


# -- limits ------------------------------------------------------------------------------------------------


def test_body_over_the_limit_is_refused_before_it_is_read(server):
    port, _ = server
    head = (f"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_REQUEST_BYTES + MiB}\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(head + b'{"prompt": "' + b"a" * 1024)  # the rest never comes
        answer = b""
        while chunk := connection.recv(65536):  # the server answers and closes
            answer += chunk
        answer = answer.decode("latin-1")
    _attack(answer.startswith("HTTP/1.1 413"))
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert "MAX_REQUEST_BYTES" in answer and f"{MAX_REQUEST_BYTES // MiB} MiB" in answer
    TIMES["body over the limit: 413 after"] = f"{time.monotonic() - started:.1f} s"
    assert httpx.get(f"http://127.0.0.1:{port}/sdapi/v1/options", timeout=60).status_code == 200


def test_chunked_body_over_the_limit_is_cut_off(tmp_path):
    state = _state(tmp_path, "--nowebui")
    try:
        def body():
            for _ in range(MAX_REQUEST_BYTES // MiB + 2):
                yield b" " * MiB

        answer = local_client(create_app(state)).post("/sdapi/v1/txt2img", content=body(),
                                                      headers={"Content-Type": "application/json"})
        _attack(answer.status_code == 413)
        assert answer.status_code == 413 and answer.json()["code"] == "request_too_large"
    finally:
        state.queue.shutdown()


def _timed_txt2img(port: int, prompt: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = httpx.post(f"http://127.0.0.1:{port}/sdapi/v1/txt2img", timeout=600,
                        json={"prompt": prompt, "steps": 2, "width": 64, "height": 64, "sampler_name": "Euler"})
    return answer, time.monotonic() - started


TAGS = "masterpiece, best quality, (ultra-detailed:1.2), 1girl, solo, long hair, looking at viewer, smile, sky, "


def test_prompt_limits_are_refused_naming_the_limit(server):
    port, _ = server
    attacks = {
        "100 000-character prompt": ("a cat " * 17_000, "prompt", str(MAX_PROMPT_CHARS)),
        "1000 BREAKs": ("cat BREAK " * 1000, "BREAK", str(MAX_PROMPT_BREAKS)),
        f"{MAX_PROMPT_AND_PARTS * 3} ANDs": (" AND ".join(["cat"] * MAX_PROMPT_AND_PARTS * 3), "AND",
                                              str(MAX_PROMPT_AND_PARTS)),
        "300 alternations": (" ".join(["[cat|dog]"] * 300), "[a|b]", str(MAX_PROMPT_SCHEDULED_PARTS)),
        "one token per character": ("a," * (MAX_PROMPT_CHARS // 2), "chunks", str(MAX_PROMPT_CHUNKS)),
    }
    for label, (prompt, names, limit) in attacks.items():
        answer, seconds = _timed_txt2img(port, prompt)
        _attack(answer.status_code == 422)
        assert answer.status_code == 422, (label, answer.status_code, answer.text[:300])
        assert names in answer.text and (limit in answer.text or f"{int(limit):,}" in answer.text), answer.text
        TIMES[f"{label}: 422 in"] = f"{seconds:.1f} s"
    long_prompt = (TAGS * (20_000 // len(TAGS) + 1))[:20_000]
    answer, seconds = _timed_txt2img(port, long_prompt)
    assert answer.status_code == 200, answer.text[:300]
    TIMES["20 000-character prompt: 200 in"] = f"{seconds:.1f} s"


def test_ui_refuses_over_limit_prompts_with_a_message(tmp_path):
    with pytest.raises(gr.Error) as too_long:
        make_request(Txt2ImgRequest, {"prompt": "a" * (MAX_PROMPT_CHARS + 1)})
    assert "prompt" in str(too_long.value.message) and str(MAX_PROMPT_CHARS) in str(too_long.value.message)
    assert token_counter_text("a" * (MAX_PROMPT_CHARS + 1)) == f"over {MAX_PROMPT_CHARS:,} characters"
    state = _state(tmp_path, "--nowebui")
    try:
        with pytest.raises(gr.Error) as breaks:
            submit_job(state, "txt2img", Txt2ImgRequest(prompt="cat BREAK " * (MAX_PROMPT_BREAKS + 1)))
        assert "BREAK" in str(breaks.value.message) and str(MAX_PROMPT_BREAKS) in str(breaks.value.message)
        assert not state.queue.pending() and state.queue.current() is None  # refused before the queue
    finally:
        state.queue.shutdown()


@pytest.fixture(scope="module")
def sd1_slots():
    return clip_slots(build_tiny_pipeline("sd1", seed=3), get_family("sd1"))


def test_each_distinct_chunk_is_encoded_once(sd1_slots):
    """Alternation in a long prompt made main encode every chunk of it again for each distinct step text."""
    words = " ".join(str(number) for number in range(700))  # every chunk different
    prompt = f"{words} [red|green|blue] bird"
    chunks = chunk_count(sd1_slots, f"{words} red bird", 20, "Original")
    calls: list[int] = []
    hook = sd1_slots[0].encoder.register_forward_hook(lambda module, inputs, output: calls.append(1))
    try:
        plan = build_plan(PromptEncoder(sd1_slots, {}), prompt, "", ScheduleOptions(steps=30))
    finally:
        hook.remove()
    assert len(plan.steps) - 1 == 29 and chunks > 20  # the first step's texts, then 29 changes
    distinct, passes = chunks + 2 + 1, len(calls)  # the last chunk in three versions, the empty negative
    assert passes <= distinct, f"{passes} encoder passes for {distinct} distinct chunks"
    TIMES[f"encoder passes for a {chunks}-chunk prompt with [a|b|c] over 30 steps:"] = str(passes)
    first_text = prompt_schedules(prompt, 30)[0][1]
    assert torch.equal(plan.first.conds[0].embeds, encode_prompt(sd1_slots, first_text).embeds)  # same numbers


def test_job_prompt_chunks_are_capped(sd1_slots):
    chunks = MAX_PROMPT_CHUNKS - 10
    assert chunks * 30 > MAX_JOB_PROMPT_CHUNKS
    prompt = " ".join(["cat"] * 75 * chunks) + " [a|b] [c|d|e] [f|g|h|i|j]"  # 30 different texts in 30 steps
    with pytest.raises(UserError) as refused:
        build_plan(PromptEncoder(sd1_slots, {}), prompt, "", ScheduleOptions(steps=30))
    assert str(MAX_JOB_PROMPT_CHUNKS) in refused.value.message and refused.value.status_code == 422


def test_finished_jobs_keep_images_within_a_byte_budget():
    def big_result(job, context):
        return [Image.new("RGB", (4000, 4000))]

    queue = JobQueue(big_result)
    try:
        first = queue.submit("extras", None)
        first_image = weakref.ref(first.wait(60)[0])
        first_id = first.id
        del first
        for _ in range(FINISHED_JOBS_KEEP_BYTES // (4000 * 4000 * 4) + 2):
            queue.submit("extras", None).wait(60)
        gc.collect()
        assert queue.get(first_id) is None and first_image() is None, "the oldest finished job kept its image"
        held = sum(image.width * image.height * 4 for job in queue.finished() for image in job.result)
        assert held <= FINISHED_JOBS_KEEP_BYTES
        # a job larger than the whole budget is forgotten by the queue, never by the client that waits for it
        huge = queue.submit("extras", None)
        assert huge.wait(60)[0].size == (4000, 4000)
        FIGURES["finished-job images kept"] = f"{held // MiB} MiB (budget {FINISHED_JOBS_KEEP_BYTES // MiB} MiB)"
    finally:
        queue.shutdown()


def test_web_boundary_summary(summary):
    summary("web boundary",
            f"{FIGURES['tried']} attacks tried, {FIGURES['refused']} refused, install.py runs from forged or "
            f"unauthenticated requests: {FIGURES['forged installs ran']}, installs with the right Host / login: "
            f"{FIGURES['right-host installs']}; "
            + "; ".join(f"{key} {value}" for key, value in TIMES.items())
            + (f"; finished-job images kept: {FIGURES['finished-job images kept']}"
               if "finished-job images kept" in FIGURES else ""))
