"""pip on behalf of an extension, never at sdweb's expense.

An A1111 extension's requirements.txt or install.py may ask for packages that would replace what sdweb runs
on (sd-dynamic-prompts downgraded transformers 5 to 4.57; sd-webui-controlnet wants pydantic 1 and
torchvision). Every pip run for an extension therefore runs under a constraints file that pins the installed
version of everything sdweb needs (its dependencies from its installed metadata, transitively, plus what the
launcher installs: torch, spandrel, ...) and forbids torchvision and xformers unless they are already installed.

`run_pip_for_extension` is the one function that runs pip for an extension (requirements.txt, and A1111's
`launch.run_pip` in the compatibility layer): an install is first resolved with `--dry-run --report`, so a
conflict is refused before anything is installed, with a `RequirementConflict` naming the package and the
extension. `extension_pip_environment` gives install.py the same constraints through `PIP_CONSTRAINT`, so a
pip that install.py starts itself is held to them too (pip then fails before installing anything), and
`conflicts_in_output` finds such a refusal in install.py's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from sdweb.core.errors import UserError
from sdweb.extensions.process import Progress, run_streamed

SDWEB_DISTRIBUTION = "sdweb"
# Installed by the launcher rather than declared in sdweb's metadata (torch by TORCH_COMMAND, spandrel without
# its torchvision dependency), and sdweb needs each of them.
LAUNCHER_PACKAGES = ("torch", "spandrel", "spandrel-extra-arches", "einops")
# Never installed for an extension: torchvision has no working CPU build here and must match torch's build;
# xformers replaces torch when pip resolves it. Already installed ones are pinned like the rest.
NEVER_INSTALLED = ("torchvision", "xformers")
PIP_TIMEOUT_S = 1800.0
_CONSTRAINT_LINE = re.compile(r"\(constraint\)\s+([A-Za-z0-9][A-Za-z0-9._-]*)")


class RequirementConflict(UserError):
    """An extension asked pip for something that would replace or add a package sdweb protects."""

    status_code = 409

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message, code="extension_requirement_conflict", hint=hint or CONFLICT_HINT)


CONFLICT_HINT = ("Nothing was installed and sdweb keeps working. The extension may not work until it supports "
                 "these versions: look for an update of it, or ask its authors.")


# -- what is protected ------------------------------------------------------------------------------------------
def _applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    try:
        return any(requirement.marker.evaluate({"extra": extra}) for extra in extras | {""})
    except UndefinedEnvironmentName:
        return False


def protected_versions(roots: Sequence[str] = (SDWEB_DISTRIBUTION, *LAUNCHER_PACKAGES)) -> dict[str, str]:
    """Installed version of every distribution sdweb needs (canonical name -> exact version), found from the
    installed metadata of `roots` and, transitively, of their dependencies (markers and extras applied)."""
    versions: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset()) for root in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if canonicalize_name(name) != SDWEB_DISTRIBUTION:
            versions[canonicalize_name(name)] = distribution.version
        for line in distribution.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if _applies(requirement, extras):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return versions


def constraints_text(versions: Mapping[str, str]) -> str:
    """pip constraints: each protected package at its installed version; torchvision and xformers, when not
    installed, at an impossible version (so any requirement on them fails to resolve)."""
    lines = [f"{name}=={version}" for name, version in sorted(versions.items())]
    lines += [f"{name}<0" for name in NEVER_INSTALLED if name not in versions]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def protected_constraints() -> Iterator[Path]:
    """A temporary constraints file pinning what sdweb needs (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="sdweb-pip-") as scratch:
        path = Path(scratch) / "sdweb-constraints.txt"
        path.write_text(constraints_text(protected_versions()), encoding="utf-8")
        yield path


def extension_pip_environment(constraints: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for an extension's install.py: pip reads PIP_CONSTRAINT, so any pip it starts is held
    to sdweb's constraints. The file is given as a file: URL (pip splits the variable at spaces)."""
    env = dict(os.environ if base is None else base)
    env["PIP_CONSTRAINT"] = " ".join(filter(None, (Path(constraints).resolve().as_uri(), env.get("PIP_CONSTRAINT"))))
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


# -- reading pip's answer ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conflict:
    packages: tuple[str, ...]  # protected packages involved, canonical names
    causes: tuple[str, ...]  # pip's "x 1.0 depends on transformers<5" lines

    def describe(self, extension: str, versions: Mapping[str, str]) -> str:
        held = [f"{name} (sdweb never installs it)" if name in NEVER_INSTALLED and name not in versions
                else f"{name}=={versions.get(name, '?')}" for name in self.packages]
        wanted = "; ".join(self.causes) or "its requirements"
        return (f"Extension {extension} needs packages that conflict with sdweb's own: {wanted}. "
                f"sdweb needs {', '.join(held)}, so the install was refused.")


def conflicts_in_output(lines: Sequence[str]) -> Conflict | None:
    """pip's ResolutionImpossible report about a constraint in `lines` (pip's output), or None."""
    packages: list[str] = []
    causes: list[str] = []
    in_block = False
    for raw in lines:
        line = raw.strip()
        if line.startswith("The conflict is caused by"):
            in_block = True
            continue
        if not in_block:
            continue
        if not line or line.startswith("To fix this"):
            in_block = False
            continue
        match = _CONSTRAINT_LINE.search(line)
        if match:
            name = canonicalize_name(match.group(1))
            if name not in packages:
                packages.append(name)
        elif line not in causes:
            causes.append(line)
    return Conflict(tuple(packages), tuple(causes)) if packages else None


def _planned(report: Path) -> dict[str, str]:
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    planned = {}
    for item in data.get("install", []) if isinstance(data, dict) else []:
        meta = item.get("metadata", {}) if isinstance(item, dict) else {}
        if isinstance(meta, dict) and meta.get("name"):
            planned[canonicalize_name(str(meta["name"]))] = str(meta.get("version", ""))
    return planned


def _refused_in_plan(planned: Mapping[str, str], versions: Mapping[str, str]) -> Conflict | None:
    """A package the resolution would change although constraints should have held it (belt and braces)."""
    bad = [name for name, version in planned.items()
           if (name in NEVER_INSTALLED and name not in versions) or (name in versions and versions[name] != version)]
    return Conflict(tuple(bad), tuple(f"pip would install {name} {planned[name]}" for name in bad)) if bad else None


# -- running pip ------------------------------------------------------------------------------------------------
def _named_packages(args: Sequence[str]) -> list[str]:
    names = []
    for arg in args:
        if arg.startswith("-"):
            continue
        with contextlib.suppress(InvalidRequirement):
            names.append(canonicalize_name(Requirement(arg).name))
    return names


def run_pip_for_extension(extension: str, pip_args: Sequence[str], *, python: str, progress: Progress,
                          cwd: Path | None = None, timeout: float = PIP_TIMEOUT_S) -> int:
    """Run `python -m pip <pip_args>` for `extension` under sdweb's constraints; pip's exit code.

    An `install` is resolved first (`--dry-run --report`); a conflict with a protected package raises
    RequirementConflict (HTTP 409) naming the package and the extension, and nothing is installed. An
    `uninstall` of a protected package is refused the same way. Other pip commands (list, show, ...) run
    as given."""
    args = list(pip_args)
    if not args:
        raise ValueError("no pip command given")
    versions = protected_versions()
    removed = [name for name in _named_packages(args[1:]) if name in versions] if args[0] == "uninstall" else []
    if removed:
        raise RequirementConflict(f"Extension {extension} tried to uninstall {', '.join(removed)}, which sdweb "
                                  f"needs; refused.")
    folder = Path(cwd) if cwd is not None else Path.cwd()
    env = dict(os.environ)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    if args[0] != "install":
        return run_streamed([python, "-m", "pip", *args], cwd=folder, env=env, timeout=timeout,
                            progress=progress)[0]
    with tempfile.TemporaryDirectory(prefix="sdweb-pip-") as scratch:
        constraints = Path(scratch) / "sdweb-constraints.txt"
        constraints.write_text(constraints_text(versions), encoding="utf-8")
        install = [python, "-m", "pip", "install", "--constraint", str(constraints)]
        report = Path(scratch) / "report.json"
        lines: list[str] = []

        def collect(line: str) -> None:
            lines.append(line)
            progress(line)

        progress(f"Checking what pip would install for {extension}")
        code, _tail = run_streamed([*install, "--dry-run", "--report", str(report), *args[1:]], cwd=folder,
                                   env=env, timeout=timeout, progress=collect)
        conflict = conflicts_in_output(lines) if code else _refused_in_plan(_planned(report), versions)
        if conflict is not None:
            raise RequirementConflict(conflict.describe(extension, versions))
        if code:
            return code
        return run_streamed([*install, *args[1:]], cwd=folder, env=env, timeout=timeout, progress=progress)[0]
