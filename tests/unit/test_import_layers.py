"""DESIGN.md's layering: imports point one way (ui, api -> services -> lower layers -> core)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sdweb"

BASE = {"core"}
CONFIG = BASE | {"config"}
LOWER = CONFIG | {"runtime", "prompts", "samplers", "infotext", "outputs"}
SERVICES = LOWER | {"generation", "models", "engines", "postprocess", "extensions", "testing"}
ALLOWED: dict[str, set[str]] = {
    "core": BASE,
    "config": CONFIG,
    "runtime": LOWER,
    "prompts": LOWER,
    "samplers": LOWER,
    "infotext": LOWER,
    "outputs": LOWER,
    "generation": SERVICES,
    "models": SERVICES,
    "engines": SERVICES,
    "postprocess": SERVICES,
    "extensions": SERVICES | {"compat"},  # only the loader (test below)
    "compat": SERVICES | {"compat"},  # A1111's extension surface over the services
    "testing": SERVICES,
    "builtin_extensions": {"extensions"},
    "builtin_scripts": {"extensions"},
    "api": SERVICES | {"api", "state", "cli"},
    "ui": SERVICES | {"ui", "state"},
}
TOP_LEVEL = {"cli", "server", "state", "__main__", "__init__", "bench"}


def _sdweb_imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            if name == "sdweb" or name.startswith("sdweb."):
                parts = name.split(".")
                found.append((parts[1] if len(parts) > 1 else "__init__", node.lineno))
    return found


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def _layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def test_imports_point_one_way():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer_of(path)
        if layer in TOP_LEVEL:
            continue
        allowed = ALLOWED.get(layer)
        assert allowed is not None, f"{path}: package {layer!r} is missing from the layer table"
        for target, line in _sdweb_imports(path):
            if target != layer and target not in allowed and target != "__init__":
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports sdweb.{target}")
    assert not violations, "\n".join(violations)


def test_only_ui_imports_gradio_and_ui_has_no_torch():
    for path in sorted(PACKAGE.rglob("*.py")):
        roots = _third_party_imports(path)
        layer = _layer_of(path)
        if "gradio" in roots:
            assert layer in ("ui", "builtin_extensions", "builtin_scripts", "extensions", "compat"), \
                f"{path} imports gradio"
        if layer == "ui":
            assert "torch" not in roots, f"{path}: no torch in ui/"


def test_core_imports_nothing_of_sdweb():
    """core/ may use its own modules (requests.py reads limits.py), nothing else of sdweb."""
    for path in (PACKAGE / "core").rglob("*.py"):
        assert all(target == "core" for target, _ in _sdweb_imports(path)), path


def test_only_the_extension_loader_imports_compat():
    """The compatibility layer sits beside sdweb: nothing but the extension loader reaches into it."""
    importers = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                       if _layer_of(path) != "compat" and any(target == "compat" for target, _ in _sdweb_imports(path)))
    assert importers == ["extensions/loader.py"], importers
