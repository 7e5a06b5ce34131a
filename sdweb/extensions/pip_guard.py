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
from collections.abc import Collection, Iterator, Mapping, Sequence
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
# "Could not find a version that satisfies the requirement transformers[torch]<5; extra == "magicprompt" (from
# dynamicprompts[magicprompt]) (from versions: ...)": the requirement, then the package that asked for it
_UNAVAILABLE = re.compile(r"Could not find a version that satisfies the requirement (?P<requirement>.+?)"
                          r"(?: \(from (?P<parent>(?!versions:)[^()]+?)\))?(?: \(from versions:.*)?$")


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


def conflicts_in_output(lines: Sequence[str], protected: Collection[str] | None = None) -> Conflict | None:
    """A refusal caused by sdweb's constraints in `lines` (pip's output), or None: pip's ResolutionImpossible
    report naming a constraint, or its "No matching distribution found" for a requirement on a protected
    package (`protected`: canonical names; sdweb's protected packages when None), which is what pip says when
    a dependency's only allowed version is excluded by a constraint."""
    packages: list[str] = []
    causes: list[str] = []
    in_block = False
    for raw in lines:
        line = raw.strip()
        unavailable = _UNAVAILABLE.search(line)
        if unavailable:
            found = _protected_requirement(unavailable.group("requirement"), protected)
            if found is not None and found[0] not in packages:
                packages.append(found[0])
                parent = unavailable.group("parent")
                causes.append(f"{parent} depends on {found[1]}" if parent else f"it asks for {found[1]}")
            continue
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


def _protected_requirement(text: str, protected: Collection[str] | None) -> tuple[str, str] | None:
    """(canonical name, requirement without its marker) when `text` is a requirement on a protected package."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    name = canonicalize_name(requirement.name)
    names = set(protected) if protected is not None else set(protected_versions()) | set(NEVER_INSTALLED)
    if name not in names:
        return None
    requirement.marker = None
    return name, str(requirement)


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
# pip options that take a value (the value is not a requirement)
_VALUE_OPTIONS = frozenset({
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url", "--extra-index-url",
    "-f", "--find-links", "-t", "--target", "--prefix", "--root", "--upgrade-strategy", "--platform",
    "--python-version", "--implementation", "--abi", "--no-binary", "--only-binary", "--progress-bar", "--report",
    "--src", "--log", "--cache-dir", "--trusted-host", "--proxy", "--timeout", "--retries", "--global-option",
    "--config-settings", "-C", "--exists-action", "--keyring-provider", "--python"})


def _requirement_positions(args: Sequence[str]) -> list[tuple[int, Requirement]]:
    """(index, requirement) of each requirement named on pip's command line (option values skipped)."""
    found: list[tuple[int, Requirement]] = []
    skip_next = False
    for index, arg in enumerate(args):
        if skip_next:
            skip_next = False
            continue
        if arg.startswith("-"):
            skip_next = arg in _VALUE_OPTIONS
            continue
        with contextlib.suppress(InvalidRequirement):
            found.append((index, Requirement(arg)))
    return found


def _named_packages(args: Sequence[str]) -> list[str]:
    return [canonicalize_name(requirement.name) for _, requirement in _requirement_positions(args)]


def _with_extras(args: Sequence[str], extras: Mapping[int, Sequence[str]]) -> list[str]:
    """`args` with the requirement at each index given exactly `extras[index]` (its other parts unchanged)."""
    changed = list(args)
    for index, requirement in _requirement_positions(args):
        if index in extras:
            edited = Requirement(str(requirement))
            edited.extras = set(extras[index])
            changed[index] = str(edited)
    return changed


@dataclass
class _Pip:
    """One extension's pip install under the constraints: dry runs first, then the install."""

    extension: str
    command: list[str]  # python -m pip install --constraint <file>
    versions: Mapping[str, str]
    folder: Path
    env: dict[str, str]
    timeout: float
    progress: Progress
    scratch: Path

    def dry_run(self, args: Sequence[str]) -> tuple[int, Conflict | None, list[str]]:
        """(pip's exit code, the conflict with sdweb's packages or None, pip's output lines)."""
        report = self.scratch / "report.json"
        report.unlink(missing_ok=True)
        lines: list[str] = []
        code, _tail = run_streamed([*self.command, "--dry-run", "--report", str(report), *args], cwd=self.folder,
                                   env=self.env, timeout=self.timeout, progress=lines.append)
        protected = set(self.versions) | set(NEVER_INSTALLED)
        conflict = conflicts_in_output(lines, protected) if code else _refused_in_plan(_planned(report), self.versions)
        return code, conflict, lines

    def without_conflicting_extras(self, args: Sequence[str], conflict: Conflict) -> list[str] | None:
        """The install `args` with the extras left out whose requirements conflict with sdweb's packages
        (sd-dynamic-prompts asks for dynamicprompts[magicprompt], which needs transformers<5): the package
        itself and its other extras are kept. None when the packages conflict without their extras too."""
        requested = {index: sorted(requirement.extras) for index, requirement in _requirement_positions(args)
                     if requirement.extras}
        base = _with_extras(args, {index: [] for index in requested})
        if not requested or self.dry_run(base)[1] is not None:
            return None
        kept: dict[int, list[str]] = {index: [] for index in requested}
        left_out: list[str] = []
        for index, extras in requested.items():
            for extra in extras:
                if self.dry_run(_with_extras(base, {index: [extra]}))[1] is None:
                    kept[index].append(extra)
                else:
                    left_out.append(f"{Requirement(args[index]).name}[{extra}]")
        chosen = _with_extras(base, kept)
        if chosen != base and self.dry_run(chosen)[1] is not None:
            chosen = base  # extras that fit one by one but not together: the packages alone
        held = ", ".join(f"{name}=={self.versions[name]}" if name in self.versions else name
                         for name in conflict.packages)
        self.progress(f"Extension {self.extension}: installing without the extras {', '.join(left_out)}: they need "
                      f"{'; '.join(conflict.causes) or 'other versions of its packages'}, and sdweb needs {held}. "
                      f"The features that need them will not work.")
        return chosen


def run_pip_for_extension(extension: str, pip_args: Sequence[str], *, python: str, progress: Progress,
                          cwd: Path | None = None, timeout: float = PIP_TIMEOUT_S) -> int:
    """Run `python -m pip <pip_args>` for `extension` under sdweb's constraints; pip's exit code.

    An `install` is resolved first (`--dry-run --report`); a conflict with a protected package raises
    RequirementConflict (HTTP 409) naming the package and the extension, and nothing is installed, unless the
    conflict comes only from extras of a requirement (`pkg[extra]`): then the package is installed without those
    extras and a progress line says which were left out. An `uninstall` of a protected package is refused the
    same way. Other pip commands (list, show, ...) run as given."""
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
        pip = _Pip(extension, [python, "-m", "pip", "install", "--constraint", str(constraints)], versions, folder,
                   env, timeout, progress, Path(scratch))
        install: list[str] | None = args[1:]
        progress(f"Checking what pip would install for {extension}")
        code, conflict, lines = pip.dry_run(install)
        if conflict is not None:
            install = pip.without_conflicting_extras(install, conflict)
            if install is None:
                for line in lines:  # pip's own account of the conflict (install.py output is read for it)
                    progress(line)
                raise RequirementConflict(conflict.describe(extension, versions))
        else:
            for line in lines:
                progress(line)
            if code:
                return code
        return run_streamed([*pip.command, *install], cwd=folder, env=env, timeout=timeout, progress=progress)[0]
