"""Issue 9 acceptance, end to end with real git on file:// repositories and the tiny model: install an
extension from the Extensions tab's handler and from the HTTP API, restart (build_app_state again on the
same data folder), see install.py, its script (page and infotext) and its route; disable it and see all of
that go; update after a new upstream commit; remove; refusals on an exposed server and for `../` names."""

import os
import shutil
import subprocess
import textwrap

import pytest

from sdweb.cli import parse_options
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny
from sdweb.ui.tabs import extensions_handlers as handlers
from sdweb.testing.client import local_client

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")

NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
SMALL = {"width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 5, "prompt": "a dog"}
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1"}

PROBE_SCRIPT = '''
    import gradio as gr
    from fastapi import APIRouter
    from sdweb.extensions.api import AlwaysVisible, Script

    VERSION = "{version}"

    class E2EProbe(Script):
        def title(self):
            return "E2E probe"

        def show(self, is_img2img):
            return AlwaysVisible

        def ui(self, is_img2img):
            return [gr.Checkbox(label="Add the probe word", value=True)]

        def process(self, p, enabled):
            if enabled:
                p.prompt = p.prompt + ", e2e-probed"

    def setup(context):
        router = APIRouter()

        @router.get("/e2e-probe/ping")
        def ping():
            return {{"pong": True, "version": VERSION}}

        context.on_app_started(lambda app: app.include_router(router))
'''
INSTALL_PY = '''
    from pathlib import Path
    Path(__file__).with_name("install-ran.txt").write_text("yes", encoding="utf-8")
'''


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True)


def _commit_files(repo, files, message):
    for relative, text in files.items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)


def _new_repo(path, files):
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    _commit_files(path, files, "first")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    probe = _new_repo(root / "src" / "probe-ext", {"install.py": INSTALL_PY,
                                                   "scripts/probe.py": PROBE_SCRIPT.format(version="1")})
    broken = _new_repo(root / "src" / "broken-ext", {"scripts/broken.py": "raise RuntimeError('broken at import')\n"})
    return {"root": root, "data": data, "probe": probe, "probe_url": probe.as_uri(), "broken_url": broken.as_uri()}


def _start(data, *flags):
    return build_app_state(parse_options(["--data-dir", str(data), "--api", *flags], {}))


def _running(state):
    """What a user would see of the probe: (route answers, script on the page, prompt in the infotext)."""
    client = local_client(create_app(state))
    route = client.get("/e2e-probe/ping")
    from sdweb.ui.app import build_blocks

    config = build_blocks(state).get_config_file()
    elem_ids = {component["props"].get("elem_id") for component in config["components"]}
    result = state.service.txt2img(Txt2ImgRequest(**SMALL), None, NO_SAVE)
    return route, "txt2img_script_e2e_probe" in elem_ids, result.infotexts[0].split("\n")[0]


def _exhaust(stream):
    output, message = "", ""
    for output, message in stream:
        pass
    return output, message


@pytest.mark.slow
def test_install_restart_disable_update_remove(world):
    data, extensions = world["data"], world["data"] / "extensions"
    state = _start(data)
    try:
        output, message = _exhaust(handlers.install_from_url(state, world["probe_url"], "", "probe_ui"))
        assert "Installed **probe_ui**" in message, message
        assert "Cloning" in output and "Running install.py of probe_ui" in output
        assert (extensions / "probe_ui" / "install-ran.txt").read_text() == "yes"  # install.py ran
        assert "installed: restart to load" in handlers_table(state)
    finally:
        state.queue.shutdown()

    state = _start(data)  # "restart"
    try:
        assert state.extensions.find("probe_ui").loaded
        route, on_page, prompt = _running(state)
        assert route.status_code == 200 and route.json() == {"pong": True, "version": "1"}
        assert on_page and prompt == "a dog, e2e-probed"
        api = local_client(create_app(state))
        removed = api.post("/sdweb/v1/extensions/remove", json={"name": "probe_ui"})
        assert removed.status_code == 200, removed.text
        assert not (extensions / "probe_ui").exists()
        installed = api.post("/sdweb/v1/extensions/install", json={"url": world["probe_url"], "name": "probe_api"})
        assert installed.status_code == 200, installed.text
        body = installed.json()
        assert body["name"] == "probe_api" and body["install_script_rc"] == 0 and body["restart_required"]
        assert (extensions / "probe_api" / "install-ran.txt").exists()
        listing = {item["name"]: item for item in api.get("/sdweb/v1/extensions").json()}
        assert listing["probe_api"]["loaded"] is False and listing["probe_api"]["commit_hash"] == body["commit_hash"]
        assert listing["controlnet"]["builtin"] is True
        old_commit = body["commit_hash"]
    finally:
        state.queue.shutdown()

    state = _start(data)
    try:
        route, on_page, prompt = _running(state)
        assert route.status_code == 200 and on_page and prompt == "a dog, e2e-probed"
        a1111 = local_client(create_app(state)).get("/sdapi/v1/extensions").json()  # A1111's shape, unchanged
        assert [item["name"] for item in a1111] == ["probe_api"]
        assert set(a1111[0]) == {"name", "remote", "branch", "commit_hash", "version", "commit_date", "enabled"}
        # an upstream commit: check, update, restart runs the new code
        _commit_files(world["probe"], {"scripts/probe.py": PROBE_SCRIPT.format(version="2")}, "second")
        api = local_client(create_app(state))
        checked = api.post("/sdweb/v1/extensions/check-updates", json={"names": ["probe_api"]}).json()
        assert checked[0]["status"] == "new commits" and checked[0]["can_update"] and checked[0]["behind"] == 1
        updated = api.post("/sdweb/v1/extensions/update", json={"name": "probe_api"}).json()
        assert updated["old_commit"] == old_commit and updated["changed"] and updated["new_commit"] != old_commit
        assert api.post("/sdweb/v1/extensions/check-updates", json={}).json()[0]["status"] == "latest"
        # disabling from the tab (Apply) takes effect at the next start
        enabled = [name for name in handlers.enabled_names(state) if name != "probe_api"]
        message, restarting = handlers.apply_and_restart(state, enabled, "none", restart=None)
        assert message.startswith("Saved.") and not restarting
    finally:
        state.queue.shutdown()

    state = _start(data)
    try:
        assert not state.extensions.find("probe_api").loaded
        route, on_page, prompt = _running(state)
        assert route.status_code == 404 and not on_page and prompt == "a dog"
        state.settings.update({"disabled_extensions": []})
    finally:
        state.queue.shutdown()

    state = _start(data)
    try:
        route, _on_page, _prompt = _running(state)
        assert route.json()["version"] == "2"  # the update moved the extension forward
        assert handlers.remove_extension(state, "probe_api", confirmed=False).startswith("**Remove:** tick")
        assert (extensions / "probe_api").exists()
        assert handlers.remove_extension(state, "probe_api", confirmed=True).startswith("Removed **probe_api**")
        assert not (extensions / "probe_api").exists()
    finally:
        state.queue.shutdown()


def handlers_table(state):
    from sdweb.ui.tabs.extensions import installed_table

    return installed_table(state)


def test_broken_extension_is_reported_and_the_app_starts(world, tmp_path):
    data = tmp_path / "data"
    state = _start(data)
    try:
        response = local_client(create_app(state)).post("/sdweb/v1/extensions/install",
                                                      json={"url": world["broken_url"]})
        assert response.status_code == 200 and response.json()["name"] == "broken-ext"
    finally:
        state.queue.shutdown()
    state = _start(data)
    try:
        broken = state.extensions.find("broken-ext")
        assert not broken.loaded and "broken at import" in broken.error
        client = local_client(create_app(state))
        assert client.get("/internal/ping").status_code == 200
        listed = {item["name"]: item for item in client.get("/sdweb/v1/extensions").json()}
        assert "broken at import" in listed["broken-ext"]["error"]
        assert "broken at import" in handlers_table(state)
    finally:
        state.queue.shutdown()


@pytest.mark.parametrize("flags", [("--listen",), ("--server-name", "0.0.0.0")])
def test_exposed_server_refuses_changes(world, tmp_path, flags):
    data = tmp_path / "data"
    state = _start(data, *flags)
    try:
        _output, message = _exhaust(handlers.install_from_url(state, world["probe_url"]))
        assert message.startswith("**Refused.**") and "--enable-insecure-extension-access" in message
        assert handlers.remove_extension(state, "x", True).startswith("**Extension access is disabled")
        assert handlers.check_updates(state)[2].startswith("**Extension access is disabled")
        assert handlers.apply_and_restart(state, [], "none", restart=None)[0].startswith("**Refused.**")
        client = local_client(create_app(state))
        for route, body in (("install", {"url": world["probe_url"]}), ("update", {"name": "x"}),
                            ("remove", {"name": "x"}), ("check-updates", {})):
            response = client.post(f"/sdweb/v1/extensions/{route}", json=body)
            assert response.status_code == 403, (route, response.text)
            assert "--enable-insecure-extension-access" in response.json()["errors"]
        assert not (data / "extensions").exists() or not any((data / "extensions").iterdir())
    finally:
        state.queue.shutdown()


def test_exposed_server_with_insecure_flag_allows_install(world, tmp_path):
    data = tmp_path / "data"
    state = _start(data, "--listen", "--enable-insecure-extension-access")
    try:
        _output, message = _exhaust(handlers.install_from_url(state, world["probe_url"], "", "ui_copy"))
        assert "Installed **ui_copy**" in message
        response = local_client(create_app(state)).post("/sdweb/v1/extensions/install",
                                                      json={"url": world["broken_url"]})
        assert response.status_code == 200, response.text
    finally:
        state.queue.shutdown()


@pytest.mark.parametrize("name", ["../escape", pytest.param("..", marks=pytest.mark.slow),
                                  pytest.param("a/../../escape", marks=pytest.mark.slow),
                                  pytest.param("..\\escape", marks=pytest.mark.slow)])
def test_traversal_names_are_refused(world, tmp_path, name):
    data = tmp_path / "data"
    state = _start(data)
    try:
        _output, message = _exhaust(handlers.install_from_url(state, world["probe_url"], "", name))
        assert "Installed" not in message and "folder name" in message.lower(), message
        response = local_client(create_app(state)).post("/sdweb/v1/extensions/install",
                                                      json={"url": world["probe_url"], "name": name})
        assert response.status_code == 400, response.text
        for path in ("remove", "update"):
            assert local_client(create_app(state)).post(f"/sdweb/v1/extensions/{path}",
                                                      json={"name": name}).status_code == 400
    finally:
        state.queue.shutdown()
    assert not (tmp_path / "escape").exists() and not (data / "escape").exists()
    assert not (data / "extensions").exists() or not any((data / "extensions").iterdir())


def test_traversal_url_is_refused(world, tmp_path):
    data = tmp_path / "data"
    state = _start(data)
    try:
        client = local_client(create_app(state))
        response = client.post("/sdweb/v1/extensions/install", json={"url": world["probe_url"] + "/.."})
        assert response.status_code == 400 and "folder" in response.text.lower()
        _output, message = _exhaust(handlers.install_from_url(state, "https://example.invalid/x/.."))
        assert "Installed" not in message
    finally:
        state.queue.shutdown()
    assert not (data / "extensions").exists() or not any((data / "extensions").iterdir())


def test_bad_api_bodies_name_the_field(tmp_path):
    state = _start(tmp_path / "data")
    try:
        client = local_client(create_app(state))
        missing = client.post("/sdweb/v1/extensions/install", json={"branch": "main"})
        assert missing.status_code == 422 and "url" in missing.text
        wrong = client.post("/sdweb/v1/extensions/remove", json={"name": 3})
        assert wrong.status_code == 422 and "name" in wrong.text
        unknown = client.post("/sdweb/v1/extensions/update", json={"name": "nope"})
        assert unknown.status_code == 404 and "nope" in unknown.text
    finally:
        state.queue.shutdown()


def test_extension_routes_need_api_credentials(world, tmp_path):
    state = _start(tmp_path / "data", "--api-auth", "bob:s3cret")
    try:
        client = local_client(create_app(state))
        assert client.get("/sdweb/v1/extensions").status_code == 401
        assert client.post("/sdweb/v1/extensions/install", json={"url": world["probe_url"]}).status_code == 401
        assert not (tmp_path / "data" / "extensions").exists() or \
            not any((tmp_path / "data" / "extensions").iterdir())
        assert client.get("/sdweb/v1/extensions", auth=("bob", "s3cret")).status_code == 200
    finally:
        state.queue.shutdown()


def test_changes_never_overlap_in_one_extensions_folder(tmp_path):
    import threading

    from sdweb.core.errors import UserError
    from sdweb.extensions import actions

    folder = tmp_path / "extensions"
    folder.mkdir()
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with actions._one_change_at_a_time(folder):
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    try:
        with pytest.raises(UserError, match="Another extension install"), actions._one_change_at_a_time(folder):
            pass
    finally:
        release.set()
        holder.join(10)
    with actions._one_change_at_a_time(folder):  # free again
        pass
