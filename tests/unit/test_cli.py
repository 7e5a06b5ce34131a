import pytest

from sdweb.cli import FLAGS, CommandLineError, build_parser, options_as_dict, parse_options


def test_defaults_match_a1111():
    options = parse_options([], {})
    assert options.port is None
    assert options.precision == "autocast"
    assert options.use_cpu == ()
    assert options.timeout_keep_alive == 30
    assert options.filenames_max_length == 128
    assert options.sub_quad_q_chunk_size == 1024
    assert options.disable_tls_verify is None
    assert not options.api and not options.listen and not options.webui_is_non_local


def test_commandline_args_are_appended_to_argv():
    options = parse_options(["--port", "7861"], {"COMMANDLINE_ARGS": '--api --medvram --use-cpu sd interrogate'})
    assert options.port == 7861
    assert options.api and options.medvram
    assert options.use_cpu == ("sd", "interrogate")


def test_options_are_frozen():
    options = parse_options([], {})
    with pytest.raises(AttributeError):
        options.port = 1


@pytest.mark.parametrize(("typo", "suggestion"), [("--medvarm", "--medvram"), ("--lisen", "--listen"),
                                                  ("--no-half-vea", "--no-half-vae")])
def test_unknown_flag_lists_close_matches(typo, suggestion, tmp_path):
    with pytest.raises(CommandLineError) as error:
        parse_options([typo, "--data-dir", str(tmp_path)], {})
    assert typo in str(error.value) and suggestion in str(error.value)


def test_unknown_flag_from_environment_is_reported_too(tmp_path):
    with pytest.raises(CommandLineError, match="--not-a-flag"):
        parse_options(["--data-dir", str(tmp_path)], {"COMMANDLINE_ARGS": "--not-a-flag"})


def test_bad_value_is_an_error_naming_the_flag():
    with pytest.raises(CommandLineError, match="--port"):
        parse_options(["--port", "abc"], {})
    with pytest.raises(CommandLineError, match="precision"):
        parse_options(["--precision", "quarter"], {})


def test_precision_half_conflicts_with_no_half():
    with pytest.raises(CommandLineError, match="--no-half"):
        parse_options(["--precision", "half", "--no-half"], {})


@pytest.mark.parametrize("argv", [["--listen"], ["--share"], ["--server-name", "0.0.0.0"], ["--ngrok", "tok"]])
def test_non_local_locks_extension_access(argv):
    options = parse_options(argv, {})
    assert options.webui_is_non_local and options.disable_extension_access
    unlocked = parse_options([*argv, "--enable-insecure-extension-access"], {})
    assert not unlocked.disable_extension_access


def test_noops_and_launcher_flags_are_accepted():
    options = parse_options(["--max-batch-count", "16", "--always-batch-cond-uncond", "--gradio-queue",
                             "--add-stop-route", "--skip-torch-cuda-test", "--skip-install", "-f",
                             "--xformers", "--reinstall-torch", "--ngrok-region", "us"], {})
    assert options.allow_root and options.skip_torch_cuda_test


def test_repeatable_flags_collect_values():
    options = parse_options(["--styles-file", "a.csv", "--styles-file", "b.csv",
                             "--gradio-allowed-path", "/x"], {})
    assert options.styles_file == ("a.csv", "b.csv")
    assert options.gradio_allowed_path == ("/x",)


def test_help_groups_the_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for heading in ("Network and server", "API", "VRAM, precision and device", "Models and paths"):
        assert heading in text
    for flag in ("--medvram", "--ckpt-dir", "--api-auth", "--no-half-vae", "--data-dir"):
        assert flag in text


def test_cmd_flags_dict_has_every_flag_and_is_json_ready():
    import json

    values = options_as_dict(parse_options(["--use-cpu", "all"], {}))
    assert values["use_cpu"] == ["all"]
    assert "webui_is_non_local" in values and "disable_extension_access" in values
    assert {"medvram", "lowvram", "api", "nowebui", "ckpt_dir", "lora_dir"} <= set(values)
    json.dumps(values)


def test_every_a1111_core_flag_exists():
    names = {flag.name for flag in FLAGS}
    expected = """--listen --port --server-name --share --gradio-auth --gradio-auth-path --tls-keyfile --tls-certfile
    --subpath --cors-allow-origins --cors-allow-origins-regex --api --api-auth --api-log --nowebui
    --api-server-stop --skip-load-model-at-start --medvram --medvram-sdxl --lowvram --lowram --xformers
    --opt-sdp-attention --no-half --no-half-vae --precision --upcast-sampling --use-cpu --skip-torch-cuda-test
    --device-id --data-dir --models-dir --ckpt --ckpt-dir --vae-dir --vae-path --lora-dir --embeddings-dir
    --no-hashing --disable-safe-unpickle --enable-insecure-extension-access --disable-all-extensions
    --disable-extra-extensions --hide-ui-dir-config --freeze-settings --no-download-sd-model""".split()
    assert set(expected) <= names
