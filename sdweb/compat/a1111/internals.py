"""Which of A1111's model internals an extension's code reaches for, read from its Python files as text (nothing
is imported), so that an extension that failed to load is reported for the real cause.

A real extension that patches A1111's UNet often fails earlier on something else: sd-webui-controlnet on
`modules.api.models` (scripts sort before the ones importing `ldm`), regional-prompter on `torchvision` (its
attention patch reaches the ldm UNet through `sd_model.model.diffusion_model`, an attribute path, not an import).
Naming that first failure would send the user after a module or a package that would not make it work.
"""

from __future__ import annotations

import re
from pathlib import Path

from sdweb.compat.a1111.scope import MODEL_MODULES, MODEL_PACKAGES

PACKAGE_IMPORT = re.compile(r"^[ \t]*(?:from|import)[ \t]+(" + "|".join(MODEL_PACKAGES) + r")\b", re.M)
MODULE_IMPORT = re.compile(r"^[ \t]*(?:from|import)[ \t]+(modules\.\w+)", re.M)
FROM_MODULES_IMPORT = re.compile(r"^[ \t]*from[ \t]+modules[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)", re.M)
UNET_ATTRIBUTE = re.compile(r"\.model\.diffusion_model\b")
UNET_NAME = "the ldm UNet at sd_model.model.diffusion_model"
SKIPPED_FOLDERS = {"tests", "test", "node_modules", "__pycache__"}
MAX_FILES = 2000  # a folder of vendored code is read only this far


def _is_model_module(name: str) -> bool:
    return name.startswith(MODEL_MODULES)


def _internals_in(text: str) -> list[str]:
    found = [match.group(1) for match in PACKAGE_IMPORT.finditer(text)]
    found += [name for name in MODULE_IMPORT.findall(text) if _is_model_module(name)]
    for match in FROM_MODULES_IMPORT.finditer(text):
        names = re.split(r"[\s,()]+", match.group(1))
        found += [f"modules.{name}" for name in names if name and _is_model_module(f"modules.{name}")]
    if UNET_ATTRIBUTE.search(text):
        found.append(UNET_NAME)
    return found


def _python_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") or part in SKIPPED_FOLDERS for part in parts[:-1]):
            continue
        files.append(path)
        if len(files) >= MAX_FILES:
            break
    return files


def model_internals(folder: Path) -> dict[str, list[str]]:
    """{internal name: the extension's files (relative) that reach for it}, in the order first found: scripts/
    first, as A1111 loads them; in a file, A1111's model packages, then its model modules, then the UNet path."""
    folder = Path(folder)
    files = _python_files(folder)
    files.sort(key=lambda path: path.relative_to(folder).parts[0] != "scripts")
    found: dict[str, list[str]] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for name in _internals_in(text):
            where = found.setdefault(name, [])
            relative = path.relative_to(folder).as_posix()
            if relative not in where:
                where.append(relative)
    return found


def describe(found: dict[str, list[str]], most_files: int = 3) -> str:
    """'ldm, sgm in scripts/cldm.py, scripts/hook.py' for the reason shown in the Extensions tab and the log."""
    files: list[str] = []
    for where in found.values():
        files += [path for path in where if path not in files]
    shown = ", ".join(files[:most_files]) + (f" and {len(files) - most_files} more" if len(files) > most_files
                                             else "")
    return f"{', '.join(found)} in {shown}"
