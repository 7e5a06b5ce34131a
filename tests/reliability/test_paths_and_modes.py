"""Paths and file modes (issue 17: items 2, 3, 8, 9, 10), through the API and the UI handlers of real apps on one
data folder, with a non-default umask (027) for the whole module.

- Locks: on a server reachable from other machines (--listen, --server-name), settings that decide which
  extensions run or where files go are refused (403 naming the setting and the flag) in POST /options,
  override_settings, the Settings tab and quick settings; a disabled extension's code never runs after a
  restart; with --enable-insecure-extension-access they can be changed again.
- Paths: outdirs and file-name patterns that lead out of the data folder (absolute, `../..`, links) write
  nothing outside it; a fixed file name never overwrites a user's file (or its `.txt`); batch folders are
  refused with --hide-ui-dir-config, and on an exposed server outside the data folder.
- A full disk (os.write / os.fsync fail with ENOSPC for files in the data folder, injected here): images are
  still returned with "disk full: <path>, N MB free", txt2img without saving works, POST /options answers 507
  and changes nothing.
- Hostile JSON: 100k-deep safetensors headers (checkpoint, LoRA, VAE) give a 4xx naming the file.

Measured at the end: every file and folder left outside the data folder (a sentinel tree holding the user's
files next to it) is compared before/after, and every file and folder in the data folder is checked against
the umask (config.json, which holds tokens, must be 0600)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pytest
from fastapi.testclient import TestClient

from sdweb.cli import parse_options
from sdweb.core.errors import UserError
from sdweb.core.requests import Txt2ImgRequest
from sdweb.extensions.installer import install_from_url
from sdweb.generation.service import SaveOptions
from sdweb.server import create_app
from sdweb.state import AppState, ExtrasJob, build_app_state
from sdweb.testing.client import local_client
from sdweb.testing.faults import disk_full
from sdweb.testing.tiny import write_tiny
from sdweb.ui.app import save_setting
from sdweb.ui.common import finished_status, result_entries
from sdweb.ui.tabs.img2img import run_batch_folder
from sdweb.ui.tabs.settings import apply_settings, build_settings_tab

UMASK = 0o027
FILE_MODE, FOLDER_MODE, PRIVATE_MODE = 0o666 & ~UMASK, 0o777 & ~UMASK, 0o600
PRIVATE_FILES = {Path("config.json")}  # holds the downloader's tokens: 0600 whatever the umask
SMALL = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 5,
         "save_images": True}
EVIL_SCRIPT = """
from pathlib import Path
Path(__file__).resolve().parents[3].joinpath("EVIL-CODE-RAN").write_text("an extension disabled by the operator ran")
"""
PATH_OPTION_EXTENSION = """
from sdweb.extensions.api import OptionSpec

def setup(context):
    context.add_option(OptionSpec("pathext_folder", "", "Where pathext writes", "pathext", path=True))
    context.add_option(OptionSpec("pathext_colour", "red", "Colour", "pathext"))
"""
ATTACKS: list[tuple[str, str]] = []  # (attack, "4xx" | "confined" | "FAILED: ...")


@dataclass
class World:
    root: Path  # holds data/ and the user's own files around it (the sentinel tree)
    data: Path
    before: dict[str, tuple[int, str]]
    upstream: Path


def _tree(root: Path, skip: Path) -> dict[str, tuple[int, str]]:
    found = {}
    for path in sorted(root.rglob("*")):
        if skip in path.parents or path == skip or not path.is_file() or path.is_symlink():
            continue
        found[str(path.relative_to(root))] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main",
                    *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    previous = os.umask(UMASK)
    try:
        root = tmp_path_factory.mktemp("paths-and-modes")
        data = root / "data"
        write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
        write_tiny("vae", data / "models" / "VAE" / "tiny.vae.safetensors")
        for folder in ("outside", "outside-abs", "outside-link", "private"):
            (root / folder).mkdir()
        (root / "outside" / "important.png").write_bytes(b"the user's own picture")
        (root / "outside" / "important.txt").write_bytes(b"the user's own notes")
        (root / "private" / "secret-photo.png").write_bytes(_png_bytes())
        evil = data / "extensions" / "evil" / "scripts"
        evil.mkdir(parents=True)
        (evil / "evil.py").write_text(EVIL_SCRIPT)
        pathext = data / "extensions" / "pathext" / "scripts"
        pathext.mkdir(parents=True)
        (pathext / "pathext.py").write_text(PATH_OPTION_EXTENSION)
        upstream = root / "upstream" / "sd-webui-mode-check"
        (upstream / "scripts").mkdir(parents=True)
        (upstream / "scripts" / "nothing.py").write_text("VALUE = 1\n")
        _git(upstream, "init", "-q")
        _git(upstream, "add", "-A")
        _git(upstream, "commit", "-q", "-m", "first")
        yield World(root, data, _tree(root, data), upstream)
    finally:
        os.umask(previous)


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_config(data: Path, values: dict) -> None:
    """The operator's config.json (0600, as sdweb keeps it)."""
    path = data / "config.json"
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        json.dump({"disabled_extensions": ["evil"], "sd_model_checkpoint": "tiny.safetensors", **values}, handle)


@contextlib.contextmanager
def _app(world: World, *flags: str, config: dict | None = None) -> Iterator[tuple[AppState, TestClient]]:
    """An app on the shared data folder; `config`: the operator's config.json first (None: keep the file)."""
    if config is not None:
        _write_config(world.data, config)
    state = build_app_state(parse_options(["--data-dir", str(world.data), "--nowebui", *flags], {}))
    try:
        yield state, local_client(create_app(state), raise_server_exceptions=False)
    finally:
        state.queue.shutdown()


def _refused(name: str, answer, *words: str) -> None:
    """A 4xx whose text names every one of `words`."""
    text = answer.text
    if not 400 <= answer.status_code < 500 or not all(word in text for word in words):
        ATTACKS.append((name, f"FAILED: {answer.status_code} {text[:300]}"))
        pytest.fail(f"{name}: expected a 4xx naming {words}, got {answer.status_code}: {text[:300]}")
    ATTACKS.append((name, "4xx"))


def _confined(name: str, ok: bool, detail: str) -> None:
    ATTACKS.append((name, "confined" if ok else f"FAILED: {detail}"))
    assert ok, f"{name}: {detail}"


def _outputs(data: Path) -> set[Path]:
    return {p for p in (data / "outputs").rglob("*") if p.is_file()}


# -- item 2: locks on an exposed server ------------------------------------------------------------------------
LOCKED_CHANGES = [
    ("re-enable extensions", {"disabled_extensions": [], "disable_all_extensions": "none"}, "disabled_extensions"),
    ("disable all extensions", {"disable_all_extensions": "all"}, "disable_all_extensions"),
    ("absolute outdir", {"outdir_samples": "ABS"}, "outdir_samples"),
    ("relative outdir leading out", {"outdir_txt2img_samples": "../../outside"}, "outdir_txt2img_samples"),
    ("grids outdir", {"outdir_grids": "ABS"}, "outdir_grids"),
    ("directory pattern ../../..", {"directories_filename_pattern": "../../.."}, "directories_filename_pattern"),
    ("file pattern", {"samples_filename_pattern": "../../../outside/important"}, "samples_filename_pattern"),
    ("extension path option", {"pathext_folder": "ABS"}, "pathext_folder"),
]


def _resolve(change: dict, world: World) -> dict:
    return {key: str(world.root / "outside-abs") if value == "ABS" else value for key, value in change.items()}


@pytest.mark.parametrize("flags", [("--listen",), ("--server-name", "0.0.0.0")], ids=["listen", "server-name"])
def test_exposed_server_refuses_settings_that_run_code_or_choose_paths(world, flags):
    with _app(world, *flags, config={}) as (state, client):
        flag = flags[0]
        stored = (world.data / "config.json").read_bytes()
        for name, change, key in LOCKED_CHANGES:
            change = _resolve(change, world)
            _refused(f"POST /options: {name} ({flag})", client.post("/sdapi/v1/options", json=change), key, flag)
            if key != "disabled_extensions":
                body = {**SMALL, "override_settings": change}
                _refused(f"override_settings: {name} ({flag})", client.post("/sdapi/v1/txt2img", json=body), key,
                         flag)
        assert (world.data / "config.json").read_bytes() == stored, "config.json changed"
        assert state.settings.get("disabled_extensions") == ["evil"]
        assert state.settings.get("pathext_colour") == "red"
        # the UI: the Settings tab and quick settings say the same
        message, saved = apply_settings(state.settings, {"outdir_samples": str(world.root / "outside-abs")})
        assert not saved and "outdir_samples" in message and flag in message, message
        ATTACKS.append((f"Settings tab: outdir ({flag})", "4xx"))
        with gr.Blocks():
            form = build_settings_tab(state.settings).components
        assert form["outdir_samples"].interactive is False and flag in form["outdir_samples"].info
        assert form["disable_all_extensions"].interactive is False and form["jpeg_quality"].interactive is not False
        with pytest.raises(gr.Error, match="disable_all_extensions"):
            save_setting(state, "disable_all_extensions", "all")
        ATTACKS.append((f"quick setting: extensions ({flag})", "4xx"))
        # an unchanged locked value posted back (GET /options, then POST it) and ordinary settings still work
        assert client.post("/sdapi/v1/options", json=client.get("/sdapi/v1/options").json()).status_code == 200
        assert client.post("/sdapi/v1/options", json={"pathext_colour": "blue", "jpeg_quality": 70}).status_code == 200
        assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200
    with _app(world, *flags):  # a restart on the same config.json: the disabled extension stays disabled
        pass
    assert not (world.data / "EVIL-CODE-RAN").exists(), "a disabled extension ran after a restart"


def test_trusted_exposed_server_may_change_them(world):
    with _app(world, "--listen", "--enable-insecure-extension-access", config={}) as (state, client):
        answer = client.post("/sdapi/v1/options", json={"outdir_txt2img_samples": "outputs/chosen",
                                                        "directories_filename_pattern": "[seed]"})
        assert answer.status_code == 200, answer.text
        assert state.settings.get("outdir_txt2img_samples") == "outputs/chosen"


def test_exposed_server_writes_only_under_the_default_output_folders(world):
    """The operator's own config.json names a folder outside outputs/: nothing is written there, the images are
    still returned with the reason."""
    config = {"outdir_txt2img_samples": str(world.root / "outside-abs")}
    with _app(world, "--listen", config=config) as (_state, client):
        answer = client.post("/sdapi/v1/txt2img", json=SMALL)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        warnings = json.loads(body["info"]).get("warnings", [])
        _confined("configured outdir outside outputs/ (--listen)", len(body["images"]) == 1 and any(
            "outdir_txt2img_samples" in w and "--listen" in w for w in warnings), f"{warnings}")


# -- item 3: paths on a local server ---------------------------------------------------------------------------
def test_patterns_never_leave_the_output_folder(world):
    with _app(world, config={}) as (_state, client):
        for name, override in [
            ("directory pattern ../../..", {"directories_filename_pattern": "../../.."}),
            ("directory pattern /abs", {"directories_filename_pattern": str(world.root / "outside-abs")}),
            ("file pattern ../../..", {"samples_filename_pattern": "../../../../outside/important",
                                       "save_images_add_number": False}),
            ("file pattern /abs", {"samples_filename_pattern": str(world.root / "outside-abs" / "x")}),
            ("grid directory pattern ../..", {"directories_filename_pattern": "..\\..\\..", "grid_only_if_multiple":
                                              False}),
        ]:
            before = _outputs(world.data)
            answer = client.post("/sdapi/v1/txt2img", json={**SMALL, "override_settings": override})
            assert answer.status_code == 200, answer.text
            written = _outputs(world.data) - before
            _confined(f"override_settings: {name}", bool(written) and all(
                (world.data / "outputs") in p.parents for p in written), f"wrote {written}")
        # the same through POST /options (a local user may set it), then one generation
        assert client.post("/sdapi/v1/options", json={"directories_filename_pattern": "../../../.."}).status_code == 200
        before = _outputs(world.data)
        assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200
        written = _outputs(world.data) - before
        _confined("POST /options: directory pattern ../../../..", len(written) == 1, f"wrote {written}")


def test_a_fixed_file_name_never_overwrites_a_users_file(world):
    folder = world.data / "outputs" / "txt2img-images"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "important.png").write_bytes(b"the user's picture, in the output folder")
    (folder / "notes.txt").write_bytes(b"the user's notes, in the output folder")
    user_files = {p: p.read_bytes() for p in (folder / "important.png", folder / "notes.txt")}
    fixed = {"save_to_dirs": False, "save_images_add_number": False, "save_txt": True}
    with _app(world, config={}) as (_state, client):
        for name, pattern in (("fixed name = user's image", "important"), ("fixed name = user's .txt", "notes")):
            answer = client.post("/sdapi/v1/txt2img",
                                 json={**SMALL, "override_settings": {**fixed, "samples_filename_pattern": pattern}})
            assert answer.status_code == 200, answer.text
            _confined(f"override_settings: {name}", all(p.read_bytes() == b for p, b in user_files.items()),
                      "a user's file was overwritten")
        assert (folder / "important-1.png").is_file() and (folder / "important-1.txt").is_file()
        assert (folder / "notes-1.png").is_file() and not (folder / "notes.png").exists()
        # A1111's "Replace" still replaces the file sdweb itself wrote
        mine = {**fixed, "samples_filename_pattern": "mine"}
        for seed in (1, 2):
            answer = client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": seed, "override_settings": mine})
            assert answer.status_code == 200, answer.text
        assert sorted(p.name for p in folder.glob("mine*")) == ["mine.png", "mine.txt"]
        assert "Seed: 2," in (folder / "mine.txt").read_text()


def test_a_link_inside_the_output_folder_cannot_lead_out(world):
    folder = world.data / "outputs" / "txt2img-images"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "linkdir").symlink_to(world.root / "outside-link", target_is_directory=True)
    with _app(world, config={}) as (_state, client):
        answer = client.post("/sdapi/v1/txt2img",
                             json={**SMALL, "override_settings": {"directories_filename_pattern": "linkdir"}})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        warnings = json.loads(body["info"]).get("warnings", [])
        _confined("directory pattern through a link leading out", len(body["images"]) == 1 and
                  not any((world.root / "outside-link").iterdir()) and any("linkdir" in w for w in warnings),
                  f"{warnings}")


def test_batch_folders_are_refused_where_the_server_must_not_read_them(world):
    private = str(world.root / "private")
    images = {"batch_input": private, "batch_output": "", "batch_masks": ""}
    values = {key: value for key, value in SMALL.items() if key != "save_images"}
    for flags, expected in ((("--hide-ui-dir-config",), "--hide-ui-dir-config"), (("--listen",), "--listen")):
        with _app(world, *flags, config={}) as (state, _client):
            with pytest.raises(gr.Error, match=expected):
                next(run_batch_folder(state, values, images, None))
            ATTACKS.append((f"img2img batch reads {private} ({flags[0]})", "4xx"))
            if flags[0] == "--listen":
                from sdweb.postprocess.extras import ExtrasRequest

                job = state.submit_extras(ExtrasJob(ExtrasRequest(upscaling_resize=1), save=True,
                                                    input_dir=Path(private)))
                with pytest.raises(UserError, match="--listen"):
                    job.wait()
                ATTACKS.append((f"Extras batch from directory reads {private} (--listen)", "4xx"))
            output = {**images, "batch_input": str(world.data / "outputs"),
                      "batch_output": str(world.root / "outside-abs")}
            with pytest.raises(gr.Error, match=expected):
                next(run_batch_folder(state, values, output, None))
            ATTACKS.append((f"img2img batch writes outside ({flags[0]})", "4xx"))


# -- item 8: a full disk ---------------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds a descriptor's file through /proc")
def test_a_full_disk_loses_no_image_and_changes_no_setting(world, monkeypatch):
    with _app(world, config={}) as (state, client):
        config_before = (world.data / "config.json").read_bytes()
        with disk_full(world.data, monkeypatch):
            saved = client.post("/sdapi/v1/txt2img", json={**SMALL, "save_images": True})
            unsaved = client.post("/sdapi/v1/txt2img", json={**SMALL, "save_images": False})
            options = client.post("/sdapi/v1/options", json={"jpeg_quality": 55})
            request = Txt2ImgRequest(**{key: value for key, value in SMALL.items() if key != "save_images"})
            job = state.submit("txt2img", request, SaveOptions())
            result = job.wait()
        assert saved.status_code == 200, saved.text[:300]
        warnings = json.loads(saved.json()["info"]).get("warnings", [])
        assert len(saved.json()["images"]) == 1 and any("disk full: " in w and " MB free" in w for w in warnings)
        assert unsaved.status_code == 200 and len(unsaved.json()["images"]) == 1, unsaved.text[:300]
        assert options.status_code == 507 and "disk full" in options.text, options.text[:300]
        assert client.get("/sdapi/v1/options").json()["jpeg_quality"] == 80, "the in-memory value changed"
        assert (world.data / "config.json").read_bytes() == config_before
        images, _, _ = result_entries(result, True)
        assert images and "disk full" in finished_status(result), finished_status(result)  # the UI gallery
        assert not list((world.data / "outputs").rglob("*.tmp")), "a temporary file was left"
        after = client.post("/sdapi/v1/txt2img", json={**SMALL, "save_images": True})
        assert after.status_code == 200 and not json.loads(after.json()["info"]).get("warnings")


# -- item 10: hostile JSON in safetensors headers ----------------------------------------------------------------
def _deep_safetensors(path: Path, depth: int = 100_000) -> None:
    header = b'{"a":' * depth + b"1" + b"}" * depth
    header += b" " * (-len(header) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 64)


def test_deeply_nested_headers_are_a_clear_error(world):
    models = world.data / "models"
    files = [models / "Stable-diffusion" / "deep.safetensors", models / "Lora" / "deep-lora.safetensors",
             models / "VAE" / "deep-vae.safetensors"]
    for path in files:
        _deep_safetensors(path)
    try:
        with _app(world, config={}) as (_state, client):
            _refused("100k-deep header: checkpoint", client.post("/sdapi/v1/options",
                                                                 json={"sd_model_checkpoint": "deep.safetensors"}),
                     "deep.safetensors")
            _refused("100k-deep header: LoRA", client.post("/sdapi/v1/txt2img", json={
                **SMALL, "prompt": "a cat <lora:deep-lora:1>"}), "deep-lora")
            _refused("100k-deep header: VAE", client.post("/sdapi/v1/txt2img", json={
                **SMALL, "override_settings": {"sd_vae": "deep-vae.safetensors"}}), "deep-vae.safetensors")
            assert client.get("/sdapi/v1/loras").status_code == 200
            assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200
    finally:
        for path in files:
            path.unlink()


# -- item 9 and the measured figures -------------------------------------------------------------------------------
def test_an_installed_extension_folder_gets_the_umask(world):
    target = install_from_url(world.upstream.as_uri(), extensions_dir=world.data / "extensions", run_install=False,
                              python=sys.executable, progress=lambda line: None).path
    assert target.stat().st_mode & 0o777 == FOLDER_MODE, oct(target.stat().st_mode)


def _wrong_modes(data: Path) -> tuple[int, list[str]]:
    checked, wrong = 0, []
    for path in [data, *data.rglob("*")]:
        if path.is_symlink() or ".git" in path.relative_to(data).parts:
            continue
        mode = path.stat().st_mode & 0o777
        private = path.relative_to(data) in PRIVATE_FILES
        expected = FOLDER_MODE if path.is_dir() else PRIVATE_MODE if private else FILE_MODE
        checked += 1
        if mode != expected:
            wrong.append(f"{path.relative_to(data)}: {oct(mode)}, expected {oct(expected)}")
    return checked, wrong


def test_summary(world, summary):
    """Last: what reached the user's files around the data folder, and the mode of everything written."""
    after = _tree(world.root, world.data)
    changed = {name: size for name, (size, digest) in after.items() if world.before.get(name) != (size, digest)}
    outside_bytes = sum(changed.values())
    written = [p for p in (world.data / "outputs").rglob("*") if p.is_file()]
    kinds = {p.suffix for p in written} | {p.name for p in world.data.rglob("*") if p.name in
                                           ("params.txt", "hashes.json", "config.json")}
    checked, wrong = _wrong_modes(world.data)
    failed = [f"{name}: {outcome}" for name, outcome in ATTACKS if outcome.startswith("FAILED")]
    refused = sum(outcome == "4xx" for _, outcome in ATTACKS)
    confined = sum(outcome == "confined" for _, outcome in ATTACKS)
    summary("paths and modes", f"{len(ATTACKS)} attacks tried, {refused + confined} refused ({refused} with a 4xx, "
                               f"{confined} written inside or renamed instead), bytes written outside the data dir: "
                               f"{outside_bytes}, files with the wrong mode: {len(wrong)} of {checked} checked "
                               f"(umask {UMASK:03o})")
    assert not failed, "\n".join(failed)
    assert len(ATTACKS) >= 30, ATTACKS
    assert outside_bytes == 0, f"written outside the data folder: {changed}"
    assert {".png", ".txt", "params.txt", "hashes.json", "config.json"} <= kinds, kinds
    assert not wrong, "\n".join(wrong)
