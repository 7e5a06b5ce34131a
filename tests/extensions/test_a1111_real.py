"""Issue 21 with the real extensions: pinned copies of tagcomplete, sd-dynamic-prompts, sd-webui-controlnet and
regional-prompter (tests/data/a1111_real, trimmed by deleting files; see the README there) are each made a git
repository, installed from its file:// URL through sdweb's install route, and checked after a restart through
what a user sees: routes, the page, the infotext, the Extensions tab.

pip never reaches the network (PIP_NO_INDEX, an empty find-links folder): the pip runs of controlnet's
requirements.txt / install.py fail as they would offline. sd-dynamic-prompts needs the `dynamicprompts` package
(sdweb's dev extra); without it its tests skip.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from extension_world import listing, txt2img

from sdweb.cli import parse_options
from sdweb.extensions.actions import ExtensionActions
from sdweb.extensions.pip_guard import protected_versions
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client
from sdweb.testing.git_repo import git_repo_from
from sdweb.testing.tiny import write_tiny
from sdweb.ui.tabs.extensions_tables import installed_html

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")

PINNED = Path(__file__).resolve().parents[1] / "data" / "a1111_real"
TAGCOMPLETE, DYNAMIC, CONTROLNET, REGIONAL = ("a1111-sd-webui-tagcomplete", "sd-dynamic-prompts",
                                              "sd-webui-controlnet", "sd-webui-regional-prompter")
EXTENSIONS = (TAGCOMPLETE, DYNAMIC, CONTROLNET, REGIONAL)
HAS_DYNAMICPROMPTS = importlib.util.find_spec("dynamicprompts") is not None
needs_dynamicprompts = pytest.mark.skipif(
    not HAS_DYNAMICPROMPTS, reason="sd-dynamic-prompts needs the dynamicprompts package (pip install -e '.[dev]'; "
                                   "offline, its install.py cannot install it)")


def pip_freeze() -> list[str]:
    done = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], capture_output=True, text=True,
                          check=True, timeout=120)
    return sorted(done.stdout.splitlines())


def start(data: Path, *flags: str):
    return build_app_state(parse_options(["--data-dir", str(data), "--api", *flags], {}))


def install(state, urls: dict[str, str]) -> dict:
    """Each URL through the install route of the app of `state` (then stopped), as a user pastes it."""
    try:
        api = local_client(create_app(state))
        return {name: api.post("/sdweb/v1/extensions/install", json={"url": url}) for name, url in urls.items()}
    finally:
        state.queue.shutdown()


@pytest.fixture
def offline_pip(tmp_path, monkeypatch):
    (tmp_path / "no-wheels").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    monkeypatch.delenv("PIP_CONSTRAINT", raising=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Installs the four, then restarts. controlnet's requirements.txt and install.py (a dozen pip runs that
    fail offline, a minute) are skipped here with A1111's --skip-install; the slow test below runs them."""
    root = tmp_path_factory.mktemp("a1111-real")
    data = root / "data"
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    (data / "embeddings").mkdir(parents=True)
    (data / "embeddings" / "shiny-style.safetensors").write_bytes(b"not read by the listing")
    urls = {name: git_repo_from(PINNED / name, root / "src" / name) for name in EXTENSIONS}
    (root / "no-wheels").mkdir()
    before = {"protected": protected_versions(), "freeze": pip_freeze()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_NO_INDEX", "1")
        patch.setenv("PIP_FIND_LINKS", str(root / "no-wheels"))
        patch.delenv("PIP_CONSTRAINT", raising=False)
        installed = install(start(data), {name: urls[name] for name in (TAGCOMPLETE, DYNAMIC, REGIONAL)})
        installed |= install(start(data, "--skip-install"), {CONTROLNET: urls[CONTROLNET]})
        wildcards = data / "extensions" / DYNAMIC / "wildcards"  # where the extension reads them (gitignored there)
        wildcards.mkdir(parents=True, exist_ok=True)
        (wildcards / "color.txt").write_text("teal\n", encoding="utf-8")
        state = start(data, "--skip-install")  # the restart (dynamic-prompts' install.py ran at its install)
        try:
            yield {"state": state, "api": local_client(create_app(state)), "installed": installed, "data": data,
                   "before": before}
        finally:
            state.queue.shutdown()


def test_pinned_trees_are_unmodified():
    """The trimmed trees are upstream's bytes (only files deleted) and each keeps its licence file."""
    listed = {}
    for line in (PINNED / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, relative = line.split("  ", 1)
        listed[relative] = digest
    present = {path.relative_to(PINNED).as_posix() for name in EXTENSIONS for path in (PINNED / name).rglob("*")
               if path.is_file() and "__pycache__" not in path.parts}
    assert present == set(listed)
    for relative, digest in listed.items():
        assert hashlib.sha256((PINNED / relative).read_bytes()).hexdigest() == digest, relative
    for name in EXTENSIONS:
        assert (PINNED / name / "LICENSE").is_file() or (PINNED / name / "LICENCE").is_file(), name


def test_each_real_extension_installs_from_its_url(world):
    for name, response in world["installed"].items():
        assert response.status_code == 200, (name, response.text)
        assert response.json()["name"] == name
    if HAS_DYNAMICPROMPTS:  # its install.py finds its requirements installed and exits 0
        assert world["installed"][DYNAMIC].json()["install_script_rc"] == 0


def test_incompatible_ones_are_reported_with_the_model_internals_they_patch(world):
    """controlnet fails first on `modules.api.models` and regional-prompter on `torchvision`; neither would make
    them work, so the reason names what they patch of A1111's model, in the listing and the Extensions tab."""
    found = listing(world)
    controlnet, regional = found[CONTROLNET], found[REGIONAL]
    for entry in (controlnet, regional):
        assert entry["api"] == "A1111" and entry["loaded"] is False and entry["error"] is None, entry
        assert entry["incompatible"].startswith("it patches A1111's model internals ("), entry
        assert "modules.api" not in entry["incompatible"] and "torchvision" not in entry["incompatible"]
    for name in ("ldm", "sgm", "modules.lowvram", "scripts/cldm.py", "scripts/hook.py"):
        assert name in controlnet["incompatible"], controlnet["incompatible"]
    assert "sd_model.model.diffusion_model" in regional["incompatible"]
    assert "scripts/attention.py" in regional["incompatible"]
    state = world["state"]
    table = installed_html(state.extensions.extensions, ExtensionActions.for_state(state).installed())
    assert table.count("incompatible: it patches A1111&#x27;s model internals") == 2


def test_app_serves_and_builtin_controlnet_keeps_its_api(world):
    api = world["api"]
    assert api.get("/").status_code == 200
    assert api.get("/controlnet/version").json() == {"version": 3}
    assert api.get("/controlnet/model_list").status_code == 200
    assert listing(world)["controlnet"]["loaded"] is True  # sdweb's own, not the A1111 extension


def test_tagcomplete_loads_and_its_javascript_is_in_the_page(world):
    assert listing(world)[TAGCOMPLETE]["loaded"] is True
    files = world["state"].extensions.javascript_files()
    for path in sorted((PINNED / TAGCOMPLETE / "javascript").glob("*.js")):
        assert f"// {TAGCOMPLETE}/{path.name}\n{path.read_text(encoding='utf-8')}" in files, path.name
    page = world["api"].get("/").text
    assert f"// {TAGCOMPLETE}/tagAutocomplete.js" in page and f"// {TAGCOMPLETE}/_utils.js" in page


def test_tagcomplete_backend_answers(world):
    """Its python side: the tag folder it publishes through A1111's file= route, its tag files read through it,
    its use-count database routes, and the embeddings list it builds from sdweb's embeddings folder."""
    api, data = world["api"], world["data"]
    tags = data / "extensions" / TAGCOMPLETE / "tags"
    assert api.get("/file=tmp/tagAutocompletePath.txt").text == str(tags)
    extra = api.get(f"/file={tags / 'extra-quality-tags.csv'}")
    assert extra.status_code == 200
    assert extra.content == (PINNED / TAGCOMPLETE / "tags" / "extra-quality-tags.csv").read_bytes()
    query = {"tagname": "masterpiece", "ttype": 0, "neg": False}
    assert api.post("/tacapi/v1/increase-use-count", params=query).status_code == 200
    assert api.get("/tacapi/v1/get-use-count", params=query).json()["result"][0] == 1
    assert api.post("/tacapi/v1/refresh-embeddings").status_code == 200
    assert "shiny-style" in api.get(f"/file={tags / 'temp' / 'emb.txt'}").text


@needs_dynamicprompts
def test_dynamic_prompts_variant_in_the_infotext(world):
    assert listing(world)[DYNAMIC]["loaded"] is True
    info = txt2img(world, "a {red|blue} cat", n_iter=2)
    assert len(info["all_prompts"]) == 2 and set(info["all_prompts"]) <= {"a red cat", "a blue cat"}, info
    assert [text.split("\n")[0] for text in info["infotexts"]] == info["all_prompts"]


@needs_dynamicprompts
def test_dynamic_prompts_wildcards_folder(world):
    info = txt2img(world, "a __color__ bird")
    assert info["infotexts"][0].split("\n")[0] == "a teal bird"


@needs_dynamicprompts
def test_installing_dynamic_prompts_leaves_pip_freeze_unchanged(world):
    """Its install.py ran at the install (and its requirements were met); sdweb's packages, and everything else
    pip lists, are the same after the install and the restart."""
    assert protected_versions() == world["before"]["protected"]
    assert pip_freeze() == world["before"]["freeze"]


@pytest.mark.slow
def test_controlnet_install_runs_its_installers_within_sdwebs_constraints(tmp_path, offline_pip):
    """Its requirements.txt and install.py run (offline: they fail); install.py's request for pydantic==1.10.17
    is refused as a conflict with sdweb's own pydantic, nothing pip lists changes, and the next start (which runs
    install.py again, since it failed) reports the extension incompatible and serves."""
    data = tmp_path / "data"
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    url = git_repo_from(PINNED / CONTROLNET, tmp_path / "src" / CONTROLNET)
    protected, freeze = protected_versions(), pip_freeze()
    response = install(start(data), {CONTROLNET: url})[CONTROLNET]
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["install_script_rc"] == 1
    assert any("pydantic==1.10.17" in warning and "refused" in warning for warning in result["warnings"]), result
    state = start(data)
    try:
        api = local_client(create_app(state))
        entry = {item["name"]: item for item in api.get("/sdweb/v1/extensions").json()}[CONTROLNET]
        assert "model internals" in entry["incompatible"] and entry["install_error"], entry
        assert api.get("/controlnet/version").json() == {"version": 3}
    finally:
        state.queue.shutdown()
    assert protected_versions() == protected and pip_freeze() == freeze
