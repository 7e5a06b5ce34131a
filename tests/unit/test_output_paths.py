"""Output paths (issue 17 items 2 and 3) without a model: the exposure locks of the settings table, names made by
file-name patterns that cannot leave their folder, existing files that are never replaced unless sdweb wrote them,
the output folders an exposed server may use, and deeply nested safetensors headers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from sdweb.cli import parse_options
from sdweb.config.exposure import untrusted_exposure
from sdweb.config.options import OPTIONS, make_option
from sdweb.config.settings import Settings
from sdweb.core.errors import InvalidModelFileError, SettingLockedError
from sdweb.models.loader import read_shapes
from sdweb.models.registry import read_safetensors_metadata
from sdweb.outputs.filenames import FilenameContext, build_extras_path, build_image_path, safe_parts
from sdweb.outputs.guard import OutputGuard, OutputPathError

CTX = FilenameContext(seed=7, prompt="a cat", width=64, height=64, job_timestamp=datetime(2024, 5, 6, 7, 8, 9))
LOCKED = sorted(o.key for o in OPTIONS if o.key.startswith("outdir_")) + [
    "directories_filename_pattern", "samples_filename_pattern", "disabled_extensions", "disable_all_extensions"]


def test_exposure_needs_a_flag_and_no_trust():
    assert untrusted_exposure(parse_options([], {})) is None
    assert untrusted_exposure(parse_options(["--listen"], {})) == "--listen"
    assert untrusted_exposure(parse_options(["--share", "--server-name", "0.0.0.0"], {})) == "--share, --server-name"
    assert untrusted_exposure(parse_options(["--listen", "--enable-insecure-extension-access"], {})) is None


@pytest.mark.parametrize("key", LOCKED)
def test_settings_that_run_code_or_choose_paths_are_locked_on_an_exposed_server(tmp_path, key):
    exposed = Settings(tmp_path / "config.json", exposure="--listen")
    value = ["x"] if key == "disabled_extensions" else "all" if key == "disable_all_extensions" else "/elsewhere"
    with pytest.raises(SettingLockedError) as refused:
        exposed.update({key: value})
    assert refused.value.status_code == 403
    assert key in refused.value.message and "--listen" in refused.value.message
    assert "--enable-insecure-extension-access" in refused.value.hint
    assert exposed.update({key: exposed.get(key)}) == []  # the same value posted back is not a change
    assert not (tmp_path / "config.json").exists()
    assert Settings(tmp_path / "local.json").update({key: value}) == [key]  # a local server: allowed


def test_an_extension_path_option_is_locked_and_its_other_options_are_not(tmp_path):
    settings = Settings(tmp_path / "config.json", exposure="--server-name")
    settings.register_options([make_option("myext_folder", "", "myext", "Folder", is_path=True),
                               make_option("myext_strength", 1.0, "myext", "Strength")])
    with pytest.raises(SettingLockedError, match="myext_folder"):
        settings.update({"myext_folder": "/tmp"})
    assert settings.update({"myext_strength": 0.5}) == ["myext_strength"]
    assert settings.lock_reason("myext_folder") and not settings.lock_reason("myext_strength")
    with pytest.raises(SettingLockedError, match="outdir_samples"):  # override_settings go through validated()
        settings.validated({"outdir_samples": "../../x"}, from_api=True)


@pytest.mark.parametrize(("text", "parts"), [
    ("../../..", []), ("../../x", ["x"]), ("/etc/cron.d", ["etc", "cron.d"]), ("a/./b", ["a", "b"]),
    ("..\\..\\y", ["y"]), ("[date]/ok", ["[date]", "ok"]), ("...", []), (" . ", []), ("", []), ("plain", ["plain"]),
])
def test_safe_parts(text, parts):
    assert safe_parts(text) == parts


@pytest.mark.parametrize(("directories", "samples"), [
    ("../../..", ""), ("/abs/olute", ""), ("[date]", "../../../../escaped"), ("..", "/abs/file"),
    ("x/../../..", "..\\..\\win"),
])
def test_patterns_cannot_leave_the_output_folder(tmp_path, directories, samples):
    outdir = tmp_path / "outputs" / "txt2img-images"
    settings = {"directories_filename_pattern": directories, "samples_filename_pattern": samples,
                "save_images_add_number": False}
    path = build_image_path(outdir, CTX, settings)
    assert outdir in path.parents, path
    assert ".." not in path.relative_to(outdir).parts


def test_existing_files_get_a_number_unless_sdweb_wrote_them(tmp_path):
    guard = OutputGuard(tmp_path)
    settings = {"samples_filename_pattern": "important", "save_images_add_number": False, "save_to_dirs": False}
    (tmp_path / "important.png").write_bytes(b"user")
    (tmp_path / "notes.txt").write_bytes(b"user")
    assert build_image_path(tmp_path, CTX, settings, taken=guard.is_taken).name == "important-1.png"
    notes = dict(settings, samples_filename_pattern="notes")
    assert build_image_path(tmp_path, CTX, notes, taken=guard.taken_with_sidecar(True)).name == "notes-1.png"
    assert build_image_path(tmp_path, CTX, notes, taken=guard.taken_with_sidecar(False)).name == "notes.png"
    ours = tmp_path / "mine.png"
    ours.write_bytes(b"sdweb wrote this")
    guard.record(ours)
    mine = dict(settings, samples_filename_pattern="mine")
    assert build_image_path(tmp_path, CTX, mine, taken=guard.is_taken) == ours  # A1111's Replace, for our file
    ours.write_bytes(b"the user edited it since")
    assert build_image_path(tmp_path, CTX, mine, taken=guard.is_taken).name == "mine-1.png"
    assert build_extras_path(tmp_path, {}, forced_filename="important", taken=guard.is_taken).name == "important-1.png"
    assert build_extras_path(tmp_path, {}, forced_filename="../../x", taken=guard.is_taken) == tmp_path / "x.png"


def test_output_folders_of_a_local_and_an_exposed_server(tmp_path):
    data = tmp_path / "data"
    local, exposed = OutputGuard(data), OutputGuard(data, "--listen")
    assert local.output_folder("outputs/txt2img-images", "k") == data / "outputs" / "txt2img-images"
    assert local.output_folder("/srv/pictures", "k") == Path("/srv/pictures")  # the user's choice, as in A1111
    assert exposed.output_folder("outputs/mine", "k") == data / "outputs" / "mine"
    assert exposed.output_folder(str(data / "log" / "images"), "k") == data / "log" / "images"
    for outside in ("/srv/pictures", "outputs/../../x", "models", "extensions/evil"):
        with pytest.raises(OutputPathError, match="outdir_samples.*--listen"):
            exposed.output_folder(outside, "outdir_samples")
    assert exposed.input_folder("outputs", "Input directory") == data / "outputs"
    with pytest.raises(OutputPathError, match="Input directory.*--listen"):
        exposed.input_folder("/home/someone/photos", "Input directory")
    assert local.input_folder("/home/someone/photos", "Input directory") == Path("/home/someone/photos")


def test_a_link_in_the_output_folder_cannot_lead_out(tmp_path):
    outdir, elsewhere = tmp_path / "outputs", tmp_path / "elsewhere"
    outdir.mkdir()
    elsewhere.mkdir()
    (outdir / "day").symlink_to(elsewhere, target_is_directory=True)
    assert OutputGuard.inside(outdir / "fine" / "a.png", outdir) == outdir / "fine" / "a.png"
    with pytest.raises(OutputPathError, match="outside its output folder"):
        OutputGuard.inside(outdir / "day" / "a.png", outdir)
    linked_outputs = tmp_path / "linked"
    linked_outputs.symlink_to(elsewhere, target_is_directory=True)  # the user's own link to another disk: fine
    assert OutputGuard.inside(linked_outputs / "a.png", linked_outputs) == linked_outputs / "a.png"


def test_deeply_nested_safetensors_headers_are_damaged_files(tmp_path):
    depth = 100_000
    header = b'{"a":' * depth + b"1" + b"}" * depth
    header += b" " * (-len(header) % 8)
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    with pytest.raises(InvalidModelFileError, match="deep.safetensors"):
        read_shapes(path)
    assert read_safetensors_metadata(path) == {}
