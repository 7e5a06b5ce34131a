"""Families as data (DESIGN, the family-engines issue): outside sdweb/models and sdweb/engines no module names a
model family or tests `is_sdxl`; generation, runtime, UI, API and extensions ask the family record, its
capabilities, or the engine. (The test factory and benchmarks build files of named families and are exempt.)"""

from __future__ import annotations

import ast
from pathlib import Path

from sdweb.models.families import FAMILIES

PACKAGE = Path(__file__).resolve().parents[2] / "sdweb"
# compat: the A1111 façade reproduces A1111's own model flags (is_sdxl, is_sd2, ...) for its extensions
ALLOWED = {"models", "engines", "testing", "bench", "compat"}
# the samplers' ScheduleOptions.is_sdxl picks a published table (Align Your Steps), set from the record
ATTRIBUTE_ALLOWED = ALLOWED | {"samplers"}
FAMILY_WORDS = set(FAMILIES) | {family.base for family in FAMILIES.values()}


def _findings() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        area = path.relative_to(PACKAGE).parts[0]
        if area in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in FAMILY_WORDS:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: names the family {node.value!r}")
            if isinstance(node, ast.Attribute) and node.attr == "is_sdxl" and area not in ATTRIBUTE_ALLOWED:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: tests is_sdxl")
    return found


def test_no_family_names_outside_models_and_engines():
    assert _findings() == []


def test_the_check_sees_a_family_name(tmp_path, monkeypatch):
    """The scan is not vacuous: a module outside the allowed packages naming 'sdxl' is found."""
    fake = tmp_path / "sdweb"
    (fake / "generation").mkdir(parents=True)
    (fake / "generation" / "bad.py").write_text('if model.family.base == "sdxl":\n    pass\nx = m.is_sdxl\n')
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert len(_findings()) == 2
