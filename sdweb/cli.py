"""Command-line flags with AUTOMATIC1111's names, types and defaults, turned into one frozen LaunchOptions.

Flags come from argv plus ``shlex.split($COMMANDLINE_ARGS)`` appended, as in A1111. Each flag is a field of
``sdweb.config.launch_options.LaunchOptions`` (name, type, default, group, help); the parser is built from those
fields, plus the accepted no-op flags listed here.
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
from typing import Any

from sdweb.config import forge_flags
from sdweb.config.launch_options import GROUP_ORDER, NOOPS, Flag, LaunchOptions, field_flag, value_type

__all__ = ["FLAGS", "NOOP_FLAGS", "CommandLineError", "Flag", "LaunchOptions", "build_parser", "combined_argv",
           "options_as_dict", "parse_options"]

# Accepted for A1111 compatibility, with no effect and no LaunchOptions field.
NOOP_FLAGS: tuple[Flag, ...] = tuple(
    Flag(name, NOOPS, action="noop_value" if takes_value else "noop")
    for name, takes_value in (
        ("--max-batch-count", True), ("--always-batch-cond-uncond", False), ("--unload-gfpgan", False),
        ("--deepdanbooru", False), ("--show-negative-prompt", False), ("--gradio-img2img-tool", True),
        ("--gradio-inpaint-tool", True), ("--gradio-queue", False), ("--add-stop-route", False),
        ("--ngrok-region", True), ("--enable-console-prompts", False), ("--skip-version-check", False),
        ("--tests", True), ("--no-tests", False), ("--directml", True),
    )
)

# Each option field with its flag, in declaration order (the order of --help).
_OPTION_FLAGS: tuple[tuple[dataclasses.Field, Flag], ...] = tuple(
    (field, flag) for field in dataclasses.fields(LaunchOptions) if (flag := field_flag(field)) is not None
)
FLAGS: tuple[Flag, ...] = tuple(flag for _field, flag in _OPTION_FLAGS) + NOOP_FLAGS
_DATA_DIR_FLAG = next(flag.name for field, flag in _OPTION_FLAGS if field.name == "data_dir")


class _Parser(argparse.ArgumentParser):
    """argparse with an error that lists close matches for unknown flags."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandLineError(message)


class CommandLineError(Exception):
    """Bad command line: the message says which flag and what to do."""


def _add_noop(group: argparse._ArgumentGroup, flag: Flag) -> None:
    dest = "noop_" + flag.name.lstrip("-").replace("-", "_")
    if flag.action == "noop_value":
        group.add_argument(flag.name, dest=dest, nargs="?", default=None, help=argparse.SUPPRESS)
    else:
        group.add_argument(flag.name, dest=dest, action="store_true", help=argparse.SUPPRESS)


def _add_option(group: argparse._ArgumentGroup, field: dataclasses.Field, flag: Flag) -> None:
    """One argparse argument for one LaunchOptions field: its type and default come from the field."""
    dest, kind = field.name, value_type(field.type)
    if flag.action == "store_false":
        group.add_argument(flag.name, dest=dest, action="store_false", default=field.default, help=flag.help)
    elif flag.action == "append":
        group.add_argument(flag.name, dest=dest, action="append", default=None, help=flag.help)
    elif kind is bool:
        group.add_argument(flag.name, dest=dest, action="store_true", help=flag.help)
    elif kind is tuple:
        group.add_argument(flag.name, dest=dest, nargs="*", default=list(field.default), help=flag.help)
    elif kind is dict:
        group.add_argument(flag.name, dest=dest, type=json.loads, default=field.default_factory(), help=flag.help)
    else:
        group.add_argument(flag.name, dest=dest, type=kind, default=field.default, choices=flag.choices,
                           help=flag.help, metavar=dest.upper() if flag.choices is None else None)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sdweb",
        usage="%(prog)s [flags]   (python -m sdweb, webui.sh, webui.bat)",
        description="sdweb: a local Stable Diffusion web UI with AUTOMATIC1111's flags, folders and API. "
        "Flags in $COMMANDLINE_ARGS are appended to the command line.",
    )
    groups = {name: parser.add_argument_group(name) for name in GROUP_ORDER}
    for field, flag in _OPTION_FLAGS:
        _add_option(groups[flag.group], field, flag)
    for flag in NOOP_FLAGS:
        _add_noop(groups[flag.group], flag)
    return parser


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


def _split_extension_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(sdweb's arguments, installed A1111 extensions' flags with their values). The extensions folder is read
    only when an argument is not one of sdweb's flags; their flags go before sdweb's parser sees them, so an
    extension's flag is never taken for an abbreviation of one of sdweb's."""
    own_names = {flag.name for flag in FLAGS} | {"--help"}
    if all(not arg.startswith("--") or arg.split("=", 1)[0] in own_names for arg in args):
        return args, []
    from sdweb.config.paths import data_dir_from, extensions_dir
    from sdweb.extensions.preload_flags import declared_flags, split_extension_args

    finder = _Parser(add_help=False, allow_abbrev=False)
    finder.add_argument(_DATA_DIR_FLAG)
    found, _ = finder.parse_known_args(args)
    return split_extension_args(args, declared_flags(extensions_dir(data_dir_from(found.data_dir))))


def parse_options(argv: Sequence[str], environ: dict[str, str] | None = None) -> LaunchOptions:
    """Parse flags (with $COMMANDLINE_ARGS appended) into LaunchOptions; CommandLineError on bad input. Flags
    that installed A1111 extensions declare in preload.py are kept in `extension_args` for their own parsers."""
    parser = build_parser()
    args, extension_args = _split_extension_args(combined_argv(argv, environ))
    namespace, unknown = parser.parse_known_args(args)
    if unknown:
        raise CommandLineError("unknown command-line flags:\n" + _suggest(unknown)
                               + "\nNeither sdweb nor an installed extension's preload.py declares them."
                               + "\nRun `python -m sdweb --help` for the list.")
    values = {field.name: getattr(namespace, field.name) for field, _flag in _OPTION_FLAGS}
    for field, _flag in _OPTION_FLAGS:
        if value_type(field.type) is tuple:
            values[field.name] = tuple(values[field.name] or ())
    conflict = forge_flags.conflicts(values)
    if conflict:
        raise CommandLineError(conflict)
    forge_flags.apply_equivalents(values)
    if values["precision"] == "half" and (values["no_half"] or values["no_half_vae"]):
        given = "--all-in-fp16 (--precision half)" if values["all_in_fp16"] else "--precision half"
        raise CommandLineError(f"{given} cannot be combined with --no-half or --no-half-vae.")
    non_local = bool(values["share"] or values["listen"] or values["ngrok"] or values["server_name"])
    values["webui_is_non_local"] = non_local
    values["disable_extension_access"] = non_local and not values["enable_insecure_extension_access"]
    return LaunchOptions(**values, extension_args=tuple(extension_args))


def options_as_dict(options: LaunchOptions) -> dict[str, Any]:
    """Plain JSON-able dict of every flag (for /sdapi/v1/cmd-flags). The extensions' raw arguments are left out:
    their parsed values are listed under the extensions' own names (and may hold a key)."""
    return {field.name: _jsonable(getattr(options, field.name)) for field in dataclasses.fields(options)
            if field.name != "extension_args"}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: parse flags, then start the server."""
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv)
    except CommandLineError as error:
        print(f"sdweb: {error}", file=sys.stderr)
        return 2
    forge_flags.prepare_environment(options, os.environ)
    from sdweb.server import leave_now, run_server  # imported late: --help and flag errors stay fast

    leave_now(run_server(options))
