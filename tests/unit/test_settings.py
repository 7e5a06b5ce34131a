import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sdweb.cli import parse_options
from sdweb.config.settings import Settings, frozen_keys_from_flags
from sdweb.core.errors import SettingsError


def test_defaults_use_a1111_keys(tmp_path):
    settings = Settings.load(tmp_path / "config.json")
    assert settings["samples_format"] == "png"
    assert settings["CLIP_stop_at_last_layers"] == 1
    assert settings["sd_checkpoints_limit"] == 1
    assert settings["outdir_txt2img_samples"] == "outputs/txt2img-images"
    assert settings["samples_filename_pattern"] == ""
    assert settings["sd_vae"] == "Automatic"


def test_update_persists_and_unknown_keys_are_kept(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"some_extension_key": [1, 2], "samples_format": "jpg"}))
    settings = Settings.load(path)
    assert settings["samples_format"] == "jpg"
    assert settings.update({"CLIP_stop_at_last_layers": 2, "another_unknown": "x"}) == [
        "CLIP_stop_at_last_layers", "another_unknown"]
    stored = json.loads(path.read_text())
    assert stored["some_extension_key"] == [1, 2]
    assert stored["another_unknown"] == "x"
    assert stored["CLIP_stop_at_last_layers"] == 2
    assert Settings.load(path)["CLIP_stop_at_last_layers"] == 2


@pytest.mark.parametrize(("key", "value"), [
    ("CLIP_stop_at_last_layers", 0), ("CLIP_stop_at_last_layers", "two"), ("CLIP_stop_at_last_layers", 1.5),
    ("samples_format", "bmp"), ("samples_save", "yes"), ("jpeg_quality", 101), ("eta_ddim", float("nan")),
    ("quicksettings_list", "sd_vae"), ("sd_checkpoints_limit", True),
])
def test_invalid_values_are_rejected_naming_the_key(tmp_path, key, value):
    settings = Settings.load(tmp_path / "config.json")
    before = settings.as_dict()
    with pytest.raises(SettingsError, match=key):
        settings.update({key: value})
    assert settings.as_dict() == before
    assert not (tmp_path / "config.json").exists()


def test_update_is_all_or_nothing(tmp_path):
    settings = Settings.load(tmp_path / "config.json")
    with pytest.raises(SettingsError):
        settings.update({"samples_format": "jpg", "jpeg_quality": -5})
    assert settings["samples_format"] == "png"


def test_invalid_stored_value_falls_back_to_default(tmp_path, caplog):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"jpeg_quality": "high"}))
    assert Settings.load(path)["jpeg_quality"] == 80
    assert "jpeg_quality" in caplog.text


def test_broken_file_is_reported_and_backed_up(tmp_path, caplog):
    path = tmp_path / "config.json"
    path.write_text('{"samples_format": "jpg", ')
    settings = Settings.load(path)
    assert settings["samples_format"] == "png"
    backups = list(tmp_path.glob("config.json.broken-*"))
    assert len(backups) == 1 and backups[0].read_text() == '{"samples_format": "jpg", '
    assert "could not be read" in caplog.text
    assert path.read_text() == '{"samples_format": "jpg", '  # untouched until the next save


def test_frozen_settings_refuse_changes(tmp_path):
    options = parse_options(["--freeze-specific-settings", "sd_vae", "--hide-ui-dir-config"], {})
    settings = Settings.load(tmp_path / "config.json", frozen_keys=frozen_keys_from_flags(options))
    with pytest.raises(SettingsError, match="sd_vae"):
        settings.update({"sd_vae": "None"})
    with pytest.raises(SettingsError, match="outdir_txt2img_samples"):
        settings.update({"outdir_txt2img_samples": "/etc"})
    settings.update({"samples_format": "webp"})


def test_api_cannot_set_restricted_keys(tmp_path):
    settings = Settings.load(tmp_path / "config.json")
    settings.update({"api_forbid_local_requests": False, "samples_format": "jpg"}, from_api=True)
    assert settings["api_forbid_local_requests"] is True
    assert settings["samples_format"] == "jpg"


WRITER = """
import sys
from pathlib import Path
from sdweb.config.settings import Settings
settings = Settings(Path(sys.argv[1]))
i = 0
print("ready", flush=True)
while True:
    i += 1
    settings.update({"big_blob": "x" * 200_000 + str(i), "counter": i})
"""


def test_killed_writer_never_leaves_a_broken_file(tmp_path):
    path = tmp_path / "config.json"
    for _ in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                                  env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert writer.stdout.readline().strip() == b"ready"
        time.sleep(0.4)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        data = json.loads(path.read_text())
        assert data["big_blob"] == "x" * 200_000 + str(data["counter"])
    assert Settings.load(path)["counter"] >= 1
    assert not list(tmp_path.glob("config.json.broken-*"))
