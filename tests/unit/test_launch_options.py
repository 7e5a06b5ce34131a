"""LaunchOptions is a written, typed dataclass: every field has a real type, the parser gives values of that type,
the flags and the fields agree one to one, and sdweb reads the options by attribute (a misspelt name fails here
instead of silently reading a default)."""

import ast
import dataclasses
from pathlib import Path

import pytest

from sdweb.cli import FLAGS, NOOP_FLAGS, parse_options
from sdweb.config.forge_flags import EXCLUSIVE
from sdweb.config.launch_options import LaunchOptions, field_flag, value_type

PACKAGE = Path(__file__).resolve().parents[2] / "sdweb"
FIELDS = {field.name: field for field in dataclasses.fields(LaunchOptions)}
OPTION_FIELDS = [field for field in FIELDS.values() if field_flag(field) is not None]
DERIVED = {"webui_is_non_local", "disable_extension_access", "extension_args"}


def test_every_field_has_a_real_type():
    for field in FIELDS.values():
        assert not isinstance(field.type, str), f"{field.name}: annotation is a string"
        assert value_type(field.type) in (bool, int, float, str, tuple, dict), f"{field.name}: {field.type!r}"


def test_flags_and_fields_agree_one_to_one():
    assert {field.name for field in FIELDS.values() if field_flag(field) is None} == DERIVED
    names = [flag.name for flag in FLAGS]
    assert len(names) == len(set(names)), "a flag is declared twice"
    assert len(FLAGS) == len(OPTION_FIELDS) + len(NOOP_FLAGS)
    assert field_flag(FIELDS["allow_root"]).name == "-f"
    assert field_flag(FIELDS["no_half_vae"]).name == "--no-half-vae"
    assert all(flag.name not in {field_flag(field).name for field in OPTION_FIELDS} for flag in NOOP_FLAGS)


def test_parser_defaults_are_the_fields_defaults():
    assert parse_options([], {}) == LaunchOptions()


def _argv_setting_every_flag() -> list[str]:
    """Every flag, but only the first of each group of Forge flags Forge refuses together."""
    argv = []
    refused_together = {name for group in EXCLUSIVE for name in group[1:]}
    for field in OPTION_FIELDS:
        if field.name in refused_together:
            continue
        flag, kind = field_flag(field), value_type(field.type)
        if kind is bool:
            argv.append(flag.name)
        elif kind is dict:
            argv += [flag.name, '{"region": "eu"}']
        elif kind is str and flag.choices:
            argv += [flag.name, flag.choices[-1]]
        else:
            argv += [flag.name, "3"]
    return argv


def test_every_flag_parses_to_its_fields_type():
    options = parse_options(_argv_setting_every_flag(), {})
    for name, field in FIELDS.items():
        value, kind = getattr(options, name), value_type(field.type)
        assert isinstance(value, kind), f"{name}: {value!r} is not {field.type}"
        if kind is tuple and name not in DERIVED:
            assert value == ("3",), name
    assert options.disable_tls_verify is False and options.port == 3 and options.ngrok_options == {"region": "eu"}


def test_a_misspelt_option_raises():
    options = parse_options([], {})
    with pytest.raises(AttributeError):
        options.medvarm  # noqa: B018


def _launch_option_reads(tree: ast.AST) -> list[tuple[str, int]]:
    """(attribute, line) for reads of names typed LaunchOptions: function parameters annotated so,
    `state.options.x` (AppState) and `context.launch_options.x` (the extension API)."""
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            typed = {arg.arg for arg in [*node.args.args, *node.args.kwonlyargs]
                     if arg.annotation is not None and "LaunchOptions" in ast.unparse(arg.annotation)}
            reads += [(inner.attr, inner.lineno) for inner in ast.walk(node)
                      if isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name)
                      and inner.value.id in typed]
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Name)
                and (node.value.value.id, node.value.attr) in {("state", "options"), ("context", "launch_options")}):
            reads.append((node.attr, node.lineno))
    return reads


def _getattr_with_literal_on_options(tree: ast.AST) -> list[int]:
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
            and ast.unparse(node.args[0]).endswith("options")]


def test_sdweb_reads_launch_options_by_their_field_names():
    misspelt, by_getattr, reads = [], [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        if "compat" in path.parts:  # A1111's cmd_opts: extensions ask for flags sdweb does not have
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(PACKAGE.parent)
        for attr, line in _launch_option_reads(tree):
            reads += 1
            if attr not in FIELDS and not attr.startswith("__"):
                misspelt.append(f"{where}:{line} .{attr}")
        by_getattr += [f"{where}:{line}" for line in _getattr_with_literal_on_options(tree)]
    assert not misspelt, "not LaunchOptions fields:\n" + "\n".join(misspelt)
    assert not by_getattr, "read options.x, not getattr(options, 'x', default):\n" + "\n".join(by_getattr)
    assert reads > 60  # the scan sees the reads (server, state, api, ui, config ...)
