"""Command-line flags with AUTOMATIC1111's names, types and defaults, turned into one frozen LaunchOptions.

Flags come from argv plus ``shlex.split($COMMANDLINE_ARGS)`` appended, as in A1111. The flag table is data:
each entry names the flag, its group, kind and default; the parser and the options class are built from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    """One command-line flag. ``kind``: bool, str, int, float, list (nargs=*), append, json, noop."""

    name: str
    group: str
    kind: str
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] | None = None
    dest: str | None = None


NETWORK = "Network and server"
API = "API"
DEVICE = "VRAM, precision and device"
PATHS = "Models and paths"
UI = "UI behaviour, security and extensions"
LAUNCHER = "Launcher (accepted, handled by webui.sh / webui.bat)"
NOOPS = "Accepted for compatibility (no effect)"

GROUP_ORDER = (NETWORK, API, DEVICE, PATHS, UI, LAUNCHER, NOOPS)

FLAGS: tuple[Flag, ...] = (
    # Network / server
    Flag("--listen", NETWORK, "bool", help="bind 0.0.0.0 instead of 127.0.0.1 (makes the server non-local)"),
    Flag("--port", NETWORK, "int", help="port; default 7860 (7861 with --nowebui), first free one upward"),
    Flag("--server-name", NETWORK, "str", help="explicit bind host (overrides --listen)"),
    Flag("--share", NETWORK, "bool", help="Gradio public share link (needs network; refused offline)"),
    Flag("--ngrok", NETWORK, "str", help="ngrok auth token (tunnels are not supported offline)"),
    Flag("--ngrok-options", NETWORK, "json", default={}, help="ngrok options as JSON"),
    Flag("--gradio-auth", NETWORK, "str", help='UI login "user:pass,user2:pass2"'),
    Flag("--gradio-auth-path", NETWORK, "str", help="file with user:pass entries, one or more per line"),
    Flag("--tls-keyfile", NETWORK, "str", help="TLS key file (HTTPS needs both key and cert)"),
    Flag("--tls-certfile", NETWORK, "str", help="TLS certificate file"),
    Flag("--disable-tls-verify", NETWORK, "store_false", help="allow self-signed certificates"),
    Flag("--subpath", NETWORK, "str", help="serve under /<subpath> behind a reverse proxy"),
    Flag("--cors-allow-origins", NETWORK, "str",
         help="comma-separated CORS origins; pages from them may also send POST/PUT/DELETE here"),
    Flag("--cors-allow-origins-regex", NETWORK, "str", help="CORS origin regex (same meaning as the list)"),
    Flag("--allowed-hosts", NETWORK, "str",
         help="sdweb: more host names this server answers to, comma-separated (requests for other names are "
              "refused against DNS rebinding; loopback, --server-name and, with --listen, IP addresses and this "
              "machine's name are always allowed); * turns the Host and Origin checks off"),
    Flag("--gradio-allowed-path", NETWORK, "append", default=[], help="extra folder the UI may serve files from"),
    Flag("--no-gradio-queue", NETWORK, "bool", help="disable the Gradio queue"),
    Flag("--gradio-debug", NETWORK, "bool", help="Gradio debug mode"),
    Flag("--timeout-keep-alive", NETWORK, "int", default=30, help="uvicorn keep-alive seconds"),
    Flag("--autolaunch", NETWORK, "bool", help="open the browser at start"),
    Flag("--theme", NETWORK, "str", choices=("light", "dark"), help="force the UI theme"),
    # API
    Flag("--api", API, "bool", help="serve /sdapi/v1 on the same port as the UI"),
    Flag("--api-auth", API, "str", help='HTTP Basic auth for the API "user:pass,user2:pass2"'),
    Flag("--api-log", API, "bool", help="log one line per API request"),
    Flag("--nowebui", API, "bool", help="API only, no UI (default port 7861)"),
    Flag("--api-server-stop", API, "bool", help="enable /sdapi/v1/server-kill, -restart, -stop"),
    Flag("--skip-load-model-at-start", API, "bool", help="do not load a checkpoint at start"),
    # VRAM / precision / device
    Flag("--medvram", DEVICE, "bool", help="keep text encoder, VAE and UNet in RAM; move each to the GPU to run"),
    Flag("--medvram-sdxl", DEVICE, "bool", help="--medvram only for SDXL models"),
    Flag("--lowvram", DEVICE, "bool", help="like --medvram and also offload the UNet block by block (slow)"),
    Flag("--lowvram-offload", DEVICE, "str", default="sequential", choices=("sequential", "group"),
         help="sdweb: how --lowvram offloads: sequential (per layer, lowest VRAM) or group (per block, with CUDA "
              "streams prefetching the next block)"),
    Flag("--lowram", DEVICE, "bool", help="load checkpoint weights straight to VRAM"),
    Flag("--xformers", DEVICE, "bool", help="prefer xformers attention (CUDA only, if installed)"),
    Flag("--force-enable-xformers", DEVICE, "bool", help="use xformers without the capability check"),
    Flag("--xformers-flash-attention", DEVICE, "bool", help="xformers flash attention (SD2)"),
    Flag("--opt-sdp-attention", DEVICE, "bool", help="prefer torch scaled-dot-product attention"),
    Flag("--opt-sdp-no-mem-attention", DEVICE, "bool", help="SDPA without the memory-efficient kernel"),
    Flag("--opt-split-attention", DEVICE, "bool", help="split attention (sliced)"),
    Flag("--opt-split-attention-v1", DEVICE, "bool", help="older split attention (sliced)"),
    Flag("--opt-split-attention-invokeai", DEVICE, "bool", help="InvokeAI split attention (sliced)"),
    Flag("--opt-sub-quad-attention", DEVICE, "bool", help="sub-quadratic attention (sliced)"),
    Flag("--sub-quad-q-chunk-size", DEVICE, "int", default=1024, help="sub-quadratic query chunk size"),
    Flag("--sub-quad-kv-chunk-size", DEVICE, "int", help="sub-quadratic key/value chunk size"),
    Flag("--sub-quad-chunk-threshold", DEVICE, "int", help="sub-quadratic VRAM threshold (percent)"),
    Flag("--disable-opt-split-attention", DEVICE, "bool", help="no attention optimisation"),
    Flag("--no-half", DEVICE, "bool", help="keep the model in fp32 (VAE too)"),
    Flag("--no-half-vae", DEVICE, "bool", help="keep the VAE in fp32"),
    Flag("--precision", DEVICE, "str", default="autocast", choices=("full", "half", "autocast"),
         help="full: fp32 compute; half: fp16 everywhere; autocast: default"),
    Flag("--upcast-sampling", DEVICE, "bool", help="fp16 weights, sampling math in fp32 (Mac/AMD)"),
    Flag("--use-cpu", DEVICE, "list", default=[], help="run modules on CPU: sd interrogate gfpgan esrgan codeformer all"),
    Flag("--skip-torch-cuda-test", DEVICE, "bool", help="do not require CUDA at start"),
    Flag("--device-id", DEVICE, "str", help="use cuda:N"),
    Flag("--device-ids", DEVICE, "str",
         help="sdweb: one worker per listed device, comma-separated (0,1,2); without a GPU each id is one more "
              "CPU worker. Default: one worker per visible GPU (--device-id: that one only)"),
    Flag("--workers-per-device", DEVICE, "int", default=1,
         help="sdweb: workers on each device, each with its own copy of the model (2 overlaps one job's text "
              "encoding, decoding and saving with another's sampling; needs the VRAM for two copies)"),
    Flag("--workers", DEVICE, "str", default="local",
         help="sdweb: where jobs run: local (this process, default), ray (a private one-box Ray cluster, one "
              "actor per GPU; needs pip install 'sdweb[ray]') or ray:HOST:PORT (join that Ray cluster)"),
    Flag("--scheduling", DEVICE, "str", default="affinity", choices=("affinity", "fifo"),
         help="sdweb: with several workers, affinity prefers the worker that holds a job's checkpoint (fewer "
              "loads, bounded wait); fifo starts jobs strictly in order"),
    Flag("--worker-retries", DEVICE, "int", default=2,
         help="sdweb: --workers ray: how often a job is retried after its worker process died"),
    Flag("--use-ipex", DEVICE, "bool", help="Intel XPU"),
    Flag("--opt-channelslast", DEVICE, "bool", help="channels_last memory format"),
    Flag("--compile", DEVICE, "bool",
         help="sdweb: torch.compile the UNet and VAE decoder (first image of each size compiles, then faster; "
              "falls back to eager if compiling fails)"),
    Flag("--opt-fused-qkv", DEVICE, "bool",
         help="sdweb: fuse the UNet's q/k/v attention projections (undone while a LoRA is loaded)"),
    Flag("--disable-nan-check", DEVICE, "bool", help="skip NaN checks of UNet/VAE output"),
    Flag("--disable-model-loading-ram-optimization", DEVICE, "bool", help="disable the RAM-saving load path"),
    # Models and paths
    Flag("--data-dir", PATHS, "str", help="base for models/, outputs/, extensions/, embeddings/, config.json"),
    Flag("--models-dir", PATHS, "str", help="base for all model folders (default <data-dir>/models)"),
    Flag("--ckpt", PATHS, "str", help="add this checkpoint to the list and load it at start"),
    Flag("--ckpt-dir", PATHS, "str", help="extra checkpoint folder"),
    Flag("--config", PATHS, "str", help="LDM config (ignored: the architecture is read from the file)"),
    Flag("--vae-dir", PATHS, "str", help="extra VAE folder"),
    Flag("--vae-path", PATHS, "str", help="force this VAE (disables the VAE setting)"),
    Flag("--text-encoder-dir", PATHS, "str", help="extra text encoder folder (Forge; default models/text_encoder)"),
    Flag("--lora-dir", PATHS, "str", help="LoRA folder (default models/Lora)"),
    Flag("--lyco-dir-backcompat", PATHS, "str", help="LyCORIS folder (default models/LyCORIS)"),
    Flag("--embeddings-dir", PATHS, "str", help="textual inversion folder (default <data-dir>/embeddings)"),
    Flag("--hypernetwork-dir", PATHS, "str", help="hypernetwork folder (default models/hypernetworks)"),
    Flag("--codeformer-models-path", PATHS, "str", help="CodeFormer folder"),
    Flag("--gfpgan-models-path", PATHS, "str", help="GFPGAN folder"),
    Flag("--esrgan-models-path", PATHS, "str", help="ESRGAN folder"),
    Flag("--bsrgan-models-path", PATHS, "str", help="BSRGAN folder"),
    Flag("--realesrgan-models-path", PATHS, "str", help="RealESRGAN folder"),
    Flag("--dat-models-path", PATHS, "str", help="DAT folder"),
    Flag("--scunet-models-path", PATHS, "str", help="ScuNET folder"),
    Flag("--swinir-models-path", PATHS, "str", help="SwinIR folder"),
    Flag("--ldsr-models-path", PATHS, "str", help="LDSR folder"),
    Flag("--controlnet-dir", PATHS, "str", help="extra ControlNet model folder"),
    Flag("--clip-models-path", PATHS, "str", help="CLIP interrogator models folder"),
    Flag("--gfpgan-dir", PATHS, "str", help="legacy GFPGAN source folder"),
    Flag("--gfpgan-model", PATHS, "str", help="legacy GFPGAN model name"),
    Flag("--textual-inversion-templates-dir", PATHS, "str", help="textual inversion templates folder"),
    Flag("--localizations-dir", PATHS, "str", help="localizations folder"),
    Flag("--ui-config-file", PATHS, "str", help="UI defaults file (default <data-dir>/ui-config.json)"),
    Flag("--ui-settings-file", PATHS, "str", help="settings file (default <data-dir>/config.json)"),
    Flag("--styles-file", PATHS, "append", default=[], help="prompt styles CSV (repeatable, globs ok)"),
    Flag("--no-download-sd-model", PATHS, "bool",
         help="with no checkpoint at all, do not download SD 1.5 (about 4 GB from huggingface.co) at the first "
              "start, as A1111 would; the built-in demo model is used instead"),
    Flag("--do-not-download-clip", PATHS, "bool", help="never download CLIP (sdweb never does)"),
    Flag("--no-hashing", PATHS, "bool", help="never compute sha256 of checkpoints"),
    Flag("--disable-safe-unpickle", PATHS, "bool", help="allow arbitrary pickles in .ckpt/.pt (unsafe)"),
    # UI behaviour / security / extensions
    Flag("--enable-insecure-extension-access", UI, "bool", help="allow installing extensions when non-local"),
    Flag("--disable-all-extensions", UI, "bool", help="load no extensions"),
    Flag("--disable-extra-extensions", UI, "bool", help="load only built-in extensions"),
    Flag("--update-all-extensions", UI, "bool", help="git pull every extension at start"),
    Flag("--allow-code", UI, "bool", help="enable the Custom code script"),
    Flag("--hide-ui-dir-config", UI, "bool", help="hide and lock folder settings"),
    Flag("--freeze-settings", UI, "bool", help="make all settings read-only"),
    Flag("--freeze-settings-in-sections", UI, "str", help="read-only settings sections, comma-separated"),
    Flag("--freeze-specific-settings", UI, "str", help="read-only setting keys, comma-separated"),
    Flag("--administrator", UI, "bool", help="administrator rights (readable by extensions)"),
    Flag("--use-textbox-seed", UI, "bool", help="seed as a textbox (long seeds)"),
    Flag("--no-prompt-history", UI, "bool", help="do not write params.txt"),
    Flag("--unix-filenames-sanitization", UI, "bool", help="only / is invalid in file names"),
    Flag("--filenames-max-length", UI, "int", default=128, help="max length of each file name part"),
    Flag("--ui-debug-mode", UI, "bool", help="do not load a model"),
    Flag("--disable-console-progressbars", UI, "bool", help="no progress bars in the console"),
    Flag("--no-progressbar-hiding", UI, "bool", help="keep the UI progress bar visible"),
    Flag("--loglevel", UI, "str", help="log level: DEBUG INFO WARNING ERROR CRITICAL"),
    Flag("--log-startup", UI, "bool", help="log start-up timings"),
    Flag("--dump-sysinfo", UI, "bool", help="write system information to a file and exit"),
    # Launcher-only
    Flag("--skip-python-version-check", LAUNCHER, "bool"),
    Flag("--reinstall-xformers", LAUNCHER, "bool"),
    Flag("--reinstall-torch", LAUNCHER, "bool"),
    Flag("--update-check", LAUNCHER, "bool"),
    Flag("--test-server", LAUNCHER, "bool"),
    Flag("--skip-prepare-environment", LAUNCHER, "bool"),
    Flag("--skip-install", LAUNCHER, "bool"),
    Flag("--exit", LAUNCHER, "bool", help="quit after installing"),
    Flag("--uv", LAUNCHER, "bool"),
    Flag("-f", LAUNCHER, "bool", dest="allow_root", help="allow running as root"),
    # Accepted no-ops
    Flag("--max-batch-count", NOOPS, "noop"),
    Flag("--always-batch-cond-uncond", NOOPS, "noop"),
    Flag("--unload-gfpgan", NOOPS, "noop"),
    Flag("--deepdanbooru", NOOPS, "noop"),
    Flag("--show-negative-prompt", NOOPS, "noop"),
    Flag("--gradio-img2img-tool", NOOPS, "noop"),
    Flag("--gradio-inpaint-tool", NOOPS, "noop"),
    Flag("--gradio-queue", NOOPS, "noop"),
    Flag("--add-stop-route", NOOPS, "noop"),
    Flag("--ngrok-region", NOOPS, "noop"),
    Flag("--enable-console-prompts", NOOPS, "noop"),
)

# No-op flags that A1111 declares with a value.
_NOOPS_WITH_VALUE = {"--max-batch-count", "--gradio-img2img-tool", "--gradio-inpaint-tool", "--ngrok-region"}


def flag_dest(flag: Flag) -> str:
    return flag.dest or flag.name.lstrip("-").replace("-", "_")


class _Parser(argparse.ArgumentParser):
    """argparse with an error that lists close matches for unknown flags."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandLineError(message)


class CommandLineError(Exception):
    """Bad command line: the message says which flag and what to do."""


def _add_flag(group: argparse._ArgumentGroup, flag: Flag) -> None:
    dest = flag_dest(flag)
    if flag.kind == "bool":
        group.add_argument(flag.name, dest=dest, action="store_true", help=flag.help)
    elif flag.kind == "store_false":
        group.add_argument(flag.name, dest=dest, action="store_false", default=None, help=flag.help)
    elif flag.kind == "noop":
        if flag.name in _NOOPS_WITH_VALUE:
            group.add_argument(flag.name, dest=dest, nargs="?", default=None, help=argparse.SUPPRESS)
        else:
            group.add_argument(flag.name, dest=dest, action="store_true", help=argparse.SUPPRESS)
    elif flag.kind == "list":
        group.add_argument(flag.name, dest=dest, nargs="*", default=list(flag.default), help=flag.help)
    elif flag.kind == "append":
        group.add_argument(flag.name, dest=dest, action="append", default=None, help=flag.help)
    elif flag.kind == "json":
        group.add_argument(flag.name, dest=dest, type=json.loads, default=dict(flag.default), help=flag.help)
    else:
        kind = {"str": str, "int": int, "float": float}[flag.kind]
        group.add_argument(flag.name, dest=dest, type=kind, default=flag.default, choices=flag.choices,
                           help=flag.help, metavar=dest.upper() if flag.choices is None else None)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sdweb",
        usage="%(prog)s [flags]   (python -m sdweb, webui.sh, webui.bat)",
        description="sdweb: a local Stable Diffusion web UI with AUTOMATIC1111's flags, folders and API. "
        "Flags in $COMMANDLINE_ARGS are appended to the command line.",
    )
    groups = {name: parser.add_argument_group(name) for name in GROUP_ORDER}
    for flag in FLAGS:
        _add_flag(groups[flag.group], flag)
    return parser


def _option_fields() -> list[tuple[str, type, dataclasses.Field]]:
    fields = []
    for flag in FLAGS:
        if flag.kind == "noop":
            continue
        default = flag.default
        if flag.kind in ("list", "append"):
            default = tuple(default or ())
        if flag.kind == "json":
            field = dataclasses.field(default_factory=dict)
        else:
            field = dataclasses.field(default=default)
        fields.append((flag_dest(flag), object, field))
    fields.append(("webui_is_non_local", bool, dataclasses.field(default=False)))
    fields.append(("disable_extension_access", bool, dataclasses.field(default=False)))
    return fields


LaunchOptions = dataclasses.make_dataclass("LaunchOptions", _option_fields(), frozen=True)
LaunchOptions.__doc__ = "Every flag's value after parsing, frozen. Attribute names are A1111's dests."


def _suggest(unknown: Sequence[str]) -> str:
    known = [flag.name for flag in FLAGS]
    lines = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        if not name.startswith("-"):
            lines.append(f"  {arg!r}: a value without a flag")
            continue
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        lines.append(f"  {name}{hint}")
    return "\n".join(lines)


def combined_argv(argv: Sequence[str], environ: dict[str, str] | None = None) -> list[str]:
    """argv plus $COMMANDLINE_ARGS appended, as A1111 does."""
    env = os.environ if environ is None else environ
    return list(argv) + shlex.split(env.get("COMMANDLINE_ARGS", ""))


def parse_options(argv: Sequence[str], environ: dict[str, str] | None = None) -> LaunchOptions:
    """Parse flags (with $COMMANDLINE_ARGS appended) into LaunchOptions; CommandLineError on bad input."""
    parser = build_parser()
    namespace, unknown = parser.parse_known_args(combined_argv(argv, environ))
    if unknown:
        raise CommandLineError("unknown command-line flags:\n" + _suggest(unknown)
                               + "\nRun `python -m sdweb --help` for the list.")
    values = {name: value for name, value in vars(namespace).items() if name in _OPTION_NAMES}
    for name in ("use_cpu", "gradio_allowed_path", "styles_file"):
        values[name] = tuple(values.get(name) or ())
    if values["precision"] == "half" and (values["no_half"] or values["no_half_vae"]):
        raise CommandLineError("--precision half cannot be combined with --no-half or --no-half-vae.")
    non_local = bool(values["share"] or values["listen"] or values["ngrok"] or values["server_name"])
    values["webui_is_non_local"] = non_local
    values["disable_extension_access"] = non_local and not values["enable_insecure_extension_access"]
    return LaunchOptions(**values)


_OPTION_NAMES = {field.name for field in dataclasses.fields(LaunchOptions)}


def options_as_dict(options: LaunchOptions) -> dict[str, Any]:
    """Plain JSON-able dict of every flag (for /sdapi/v1/cmd-flags)."""
    return {field.name: _jsonable(getattr(options, field.name)) for field in dataclasses.fields(options)}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: parse flags, then start the server."""
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except CommandLineError as error:
        print(f"sdweb: {error}", file=sys.stderr)
        return 2
    from sdweb.server import leave_now, run_server  # imported late: --help and flag errors stay fast

    leave_now(run_server(options))
