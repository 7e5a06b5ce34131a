"""A1111 extensions' own command-line flags (declared in preload.py) in the command line or COMMANDLINE_ARGS: sdweb
starts, keeps them as given, and the extension's parser reads them when its preload runs."""

import logging
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdweb.cli import CommandLineError, options_as_dict, parse_options
from sdweb.compat.a1111.loading import _run_preload
from sdweb.compat.a1111.world import WORLD
from sdweb.extensions.preload_flags import declared_flags, split_extension_args

CIVITAI_PRELOAD = """
    def preload(parser):
        parser.add_argument("--civitai-api-key", type=str, default=None, help="key for downloads")
        parser.add_argument("--civitai-verbose", action="store_true")
        parser.add_argument(
            "--civitai-retries",
            type=int,
            default=2,
        )
    """


def _extension(data, name, preload):
    folder = data / "extensions" / name
    folder.mkdir(parents=True)
    (folder / "preload.py").write_text(textwrap.dedent(preload), encoding="utf-8")
    return folder


@pytest.fixture
def data(tmp_path):
    _extension(tmp_path, "civitai-helper", CIVITAI_PRELOAD)
    _extension(tmp_path, "short-flag", 'def preload(parser):\n    parser.add_argument("--lora", default="")\n')
    _extension(tmp_path, "broken", "def preload(parser:\n")
    return tmp_path


def test_declared_flags_are_read_without_running_preload(data):
    (data / "extensions" / "civitai-helper" / "preload.py").write_text(
        textwrap.dedent(CIVITAI_PRELOAD) + "raise SystemExit('must not run')\n", encoding="utf-8")
    assert declared_flags(data / "extensions") == {
        "--civitai-api-key": "civitai-helper", "--civitai-verbose": "civitai-helper",
        "--civitai-retries": "civitai-helper", "--lora": "short-flag"}  # broken's syntax error: no flags


def test_an_unreadable_extensions_folder_declares_nothing(tmp_path, monkeypatch):
    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr("pathlib.Path.iterdir", refuse)
    (tmp_path / "extensions").mkdir()
    assert declared_flags(tmp_path / "extensions") == {}
    with pytest.raises(CommandLineError, match="--civitai-api-key"):
        parse_options(["--data-dir", str(tmp_path), "--civitai-api-key", "k"], {})


DECLARED = {"--ext-a": "a", "--ext-b": "b"}
ARGUMENTS = st.lists(st.sampled_from(["--api", "--port", "7000", "--ext-a", "--ext-b=2", "value", "-3", "--ext-b"]))


def _in_order(part, whole):
    remaining = iter(whole)
    return all(arg in remaining for arg in part)  # each found after the one before


@given(ARGUMENTS)
def test_splitting_keeps_every_argument_once_in_order(args):
    own, theirs = split_extension_args(args, DECLARED)
    assert sorted(own + theirs) == sorted(args)
    assert _in_order(own, args) and _in_order(theirs, args)
    assert not any(arg.split("=")[0] in DECLARED for arg in own)
    for index, arg in enumerate(args):  # a value goes with the flag before it
        if not arg.startswith("--") and index and args[index - 1].split("=")[0] in DECLARED:
            assert arg in theirs


def test_extension_flags_in_commandline_args_are_kept_for_the_extension(data):
    env = {"COMMANDLINE_ARGS": "--api --civitai-api-key abc123 --civitai-verbose --civitai-retries=-3 --medvram"}
    options = parse_options(["--data-dir", str(data)], env)
    assert options.api and options.medvram
    assert options.extension_args == ("--civitai-api-key", "abc123", "--civitai-verbose", "--civitai-retries=-3")
    assert "extension_args" not in options_as_dict(options)  # /cmd-flags shows the parsed values, secrets hidden


def test_an_extension_flag_is_not_read_as_an_abbreviation_of_sdwebs(data, tmp_path_factory):
    options = parse_options([f"--data-dir={data}", "--lora", "x"], {})
    assert options.lora_dir is None and options.extension_args == ("--lora", "x")
    without = ["--data-dir", str(tmp_path_factory.mktemp("plain")), "--lora", "x"]
    assert parse_options(without, {}).lora_dir == "x"  # without that extension: argparse's abbreviation


def test_a_flag_nobody_declares_still_stops_the_start(data):
    with pytest.raises(CommandLineError) as error:
        parse_options(["--data-dir", str(data), "--civitai-api-keys", "abc"], {})
    message = str(error.value)
    assert "--civitai-api-keys" in message and "preload.py" in message
    assert "--civitai-api-key" not in message.replace("--civitai-api-keys", "")


def test_known_flags_alone_never_read_the_extensions_folder(data, monkeypatch):
    def refuse(folder):
        raise AssertionError(f"read {folder}")

    monkeypatch.setattr("sdweb.extensions.preload_flags.declared_flags", refuse)
    assert parse_options(["--data-dir", str(data), "--api", "--port", "7000"], {}).port == 7000


def _preload_values(data, monkeypatch, argv, env=None):
    options = parse_options(["--data-dir", str(data), *argv], env or {})
    monkeypatch.setattr(WORLD, "launch_options", options)
    monkeypatch.setattr(WORLD, "preload_values", {})
    _run_preload(data / "extensions" / "civitai-helper", f"test_preload_{len(argv)}")
    return WORLD.preload_values


def test_the_extensions_parser_reads_the_values_given(data, monkeypatch):
    values = _preload_values(data, monkeypatch, [], {"COMMANDLINE_ARGS": "--civitai-api-key k --civitai-retries 5"})
    assert values == {"civitai_api_key": "k", "civitai_verbose": False, "civitai_retries": 5}
    assert _preload_values(data, monkeypatch, ["--api"]) == {
        "civitai_api_key": None, "civitai_verbose": False, "civitai_retries": 2}


def test_a_bad_value_keeps_the_defaults_and_says_which_extension(data, monkeypatch, caplog):
    with caplog.at_level(logging.WARNING):
        values = _preload_values(data, monkeypatch, ["--civitai-retries", "many"])
    assert values["civitai_retries"] == 2
    assert "civitai-helper" in caplog.text and "many" in caplog.text


def test_a_flag_of_a_disabled_extension_is_said_to_do_nothing(data, caplog):
    from sdweb.state import build_app_state

    (data / "config.json").write_text('{"disabled_extensions": ["civitai-helper"]}', encoding="utf-8")
    options = parse_options(["--data-dir", str(data), "--civitai-api-key", "k", "--lora", "x"], {})
    with caplog.at_level(logging.WARNING):
        state = build_app_state(options)
    state.queue.shutdown()
    said = [record.getMessage() for record in caplog.records if "is a flag of the extension" in record.getMessage()]
    assert said == ["--civitai-api-key is a flag of the extension civitai-helper, which is not loaded (disabled or "
                    "failed): it has no effect"]  # short-flag's --lora: its extension loaded
