"""A1111's `launch` (and `modules.launch_utils`): what install.py and scripts call to add packages. Every pip run
goes through sdweb's pip guard: an extension can add packages, never replace or remove sdweb's
(RequirementConflict, nothing installed)."""

from __future__ import annotations

import argparse
import logging
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from sdweb.compat.a1111.world import WORLD
from sdweb.extensions.pip_guard import RequirementConflict, run_pip_for_extension

log = logging.getLogger(__name__)

python = sys.executable
git = "git"
index_url = ""
dir_repos = "repositories"
skip_install = False
args = argparse.Namespace(skip_install=False, reinstall_torch=False, reinstall_xformers=False, xformers=False,
                          skip_torch_cuda_test=True, update_check=False)


def extension_name() -> str:
    """The extension asking: the one loading, else install.py's folder (its working directory)."""
    if WORLD.loading is not None:
        return WORLD.loading.name
    return Path.cwd().name


def run_pip(command: str, desc: str | None = None, live: bool = False) -> str:
    """A1111's `run_pip("install x y", "x")`: pip under sdweb's constraints. RuntimeError when pip fails or the
    requirement is refused (A1111 raises RuntimeError too); the refusal names the package."""
    if desc:
        print(f"Installing {desc}", flush=True)
    lines: list[str] = []

    def show(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    try:
        code = run_pip_for_extension(extension_name(), shlex.split(command), python=python, progress=show,
                                     cwd=Path.cwd())
    except RequirementConflict as refused:
        print(refused.message, flush=True)
        raise RuntimeError(f"Couldn't install {desc or command}: {refused.message}") from refused
    if code != 0:
        raise RuntimeError(f"Couldn't install {desc or command} (pip exit code {code}).\n" + "\n".join(lines[-10:]))
    return "\n".join(lines)


def is_installed(package: str) -> bool:
    """True when the distribution is installed (and satisfies a version specifier, if one is given)."""
    try:
        requirement = Requirement(package)
    except InvalidRequirement:
        requirement = None
    name = requirement.name if requirement is not None else package
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return requirement is None or not requirement.specifier or requirement.specifier.contains(version, True)


def run(command: str, desc: str | None = None, errdesc: str | None = None, custom_env: dict | None = None,
        live: bool = False) -> str:
    """A1111's shell helper, for the git commands install.py files run (no shell: the command is split)."""
    if desc:
        print(desc, flush=True)
    done = subprocess.run(shlex.split(command), capture_output=not live, text=True, env=custom_env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{errdesc or 'Error running command'}: {command} (exit code {done.returncode})")
    return done.stdout or ""


def git_tag() -> str:
    from sdweb import __version__

    return f"sdweb-{__version__}"


def commit_hash() -> str:
    return "<none>"


def repo_dir(name: str) -> str:
    return str(Path(dir_repos) / name)


def git_clone(url: str, folder: str, name: str, commithash: str | None = None) -> None:
    """Refused: sdweb does not clone A1111's model repositories for extensions."""
    raise RuntimeError(f"{name}: cloning {url} is not supported by sdweb's A1111 compatibility layer")


def prepare_environment() -> None:
    return None
