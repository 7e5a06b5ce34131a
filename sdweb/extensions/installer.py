"""Installing, listing, updating and removing extensions in extensions/ with the `git` command line.

Every git call is a plain subprocess (argument list, never a shell) with a timeout, `GIT_TERMINAL_PROMPT=0`
(never waits for a password) and `GIT_CEILING_DIRECTORIES` set to extensions/ (a folder without its own
repository never reports the repository around it). A clone goes to a hidden temporary folder inside
extensions/ and is renamed into place only when complete, so a partial clone never looks like an extension.
Mutating actions are refused when the server is exposed (see `exposure_refusal`); the callers (UI tab, API)
check that before calling in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sdweb.config.launch_options import LaunchOptions
from sdweb.config.exposure import exposure_advice, untrusted_exposure
from sdweb.config.paths import CHECKOUT_ROOT
from sdweb.core.atomic import make_temp_folder
from sdweb.core.errors import NotFoundError, UserError
from sdweb.extensions.giturl import (
    folder_name_from_url,
    normalize_git_url,
    redact_text,
    redact_url,
    validate_folder_name,
    validate_git_url,
)
from sdweb.extensions.metadata import ExtensionMetadata, read_metadata
from sdweb.extensions.pip_guard import (
    RequirementConflict,
    conflicts_in_output,
    extension_pip_environment,
    protected_constraints,
    protected_versions,
    run_pip_for_extension,
)
from sdweb.extensions.process import Progress, run_streamed

log = logging.getLogger(__name__)

GIT_INFO_TIMEOUT_S = 15.0
FETCH_TIMEOUT_S = 120.0
CLONE_TIMEOUT_S = 600.0
INSTALL_TIMEOUT_S = 1800.0
TEMP_PREFIXES = (".installing-", ".removing-")
# runs install.py with A1111's `launch` and `modules` importable (A1111 extensions' install.py use them)
INSTALL_SCRIPT_RUNNER = "sdweb.compat.a1111.install_script"


class ExtensionAccessError(UserError):
    """Installing, updating or removing extensions is not allowed with these command-line flags."""

    status_code = 403

    def __init__(self, message: str, *, code: str = "extension_access_disabled", hint: str = "") -> None:
        super().__init__(message, code=code, hint=hint)


@dataclass(frozen=True)
class GitInfo:
    remote: str | None  # origin's URL, credentials redacted
    branch: str | None  # None when HEAD is detached
    commit_hash: str | None  # None in a repository without commits
    commit_date: int | None  # unix time of HEAD's commit (A1111's /sdapi/v1/extensions `commit_date`)

    @property
    def version(self) -> str:
        return self.commit_hash[:8] if self.commit_hash else ""


@dataclass(frozen=True)
class InstalledExtension:
    name: str  # folder name (what `disabled_extensions` lists)
    path: Path
    root: Path  # the extensions/ folder it was found in
    git: GitInfo | None  # None: not a git checkout ("unknown" in the table)
    metadata: ExtensionMetadata

    @property
    def remote(self) -> str | None:
        return self.git.remote if self.git else None

    @property
    def version(self) -> str:
        return self.git.version if self.git else "unknown"


@dataclass(frozen=True)
class InstallResult:
    name: str
    path: Path
    url: str  # redacted
    git: GitInfo | None
    requirements_rc: int | None  # None: not run (no requirements, or disabled)
    install_script_rc: int | None  # None: no install.py, or disabled
    warnings: tuple[str, ...] = ()
    restart_required: bool = True

    @property
    def ok(self) -> bool:
        return not self.warnings


@dataclass(frozen=True)
class UpdateStatus:
    name: str
    status: str  # "latest", "new commits", "ahead of remote", "diverged", "unknown (...)"
    can_update: bool
    behind: int | None = None  # commits upstream has that HEAD lacks
    local_commit: str | None = None
    remote_commit: str | None = None
    message: str = ""


@dataclass(frozen=True)
class UpdateResult:
    name: str
    old_commit: str | None
    new_commit: str | None
    output: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.old_commit != self.new_commit


# -- access rule ----------------------------------------------------------------------------------------------
def exposure_refusal(options: LaunchOptions) -> str | None:
    """A1111's rule: with --listen, --share, --ngrok or --server-name, extension changes need
    --enable-insecure-extension-access. Returns the message to show, or None when allowed."""
    flags = untrusted_exposure(options)
    if flags is None:
        return None
    return (f"Installing, updating and removing extensions is disabled because the server is reachable from "
            f"other machines ({flags}): an extension runs code on this computer. {exposure_advice(flags)}")


def require_extension_access(options: LaunchOptions) -> None:
    """Raise ExtensionAccessError (HTTP 403) when exposure_refusal refuses."""
    refusal = exposure_refusal(options)
    if refusal:
        raise ExtensionAccessError("Extension access is disabled because of command-line flags.", hint=refusal)


# -- subprocesses ---------------------------------------------------------------------------------------------
def _git_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_CEILING_DIRECTORIES"] = str(Path(root).resolve())
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    env["LC_ALL"] = "C"
    return env


def _git(git: str, path: Path, root: Path, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([git, "-C", str(path), *args], capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=timeout, env=_git_env(root), stdin=subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired as error:
        raise UserError(f"git {args[0]} in {path.name} did not finish within {timeout:.0f} s.",
                        code="git_timeout", hint="Check your connection and try again.") from error
    except OSError as error:
        raise UserError(f"Cannot run git ({git}): {error.strerror or error}.", code="git_missing",
                        hint="Install git and make sure it is on PATH (or set the GIT variable).") from error


# -- listing --------------------------------------------------------------------------------------------------
def is_extension_folder(path: Path) -> bool:
    """A folder in extensions/ that counts as an extension: a directory, not hidden (our temporary folders
    are hidden), not `__pycache__`."""
    return path.is_dir() and not path.name.startswith(".") and path.name != "__pycache__"


def read_git_info(path: Path, *, root: Path | None = None, git: str = "git",
                  timeout: float = GIT_INFO_TIMEOUT_S) -> GitInfo | None:
    """Remote, branch, HEAD hash and date of the checkout at `path`; None when it is not one."""
    path = Path(path)
    if not (path / ".git").exists():
        return None
    root = Path(root) if root is not None else path.parent
    try:
        head = _git(git, path, root, ["log", "-1", "--format=%H %ct"], timeout)
        branch = _git(git, path, root, ["rev-parse", "--abbrev-ref", "HEAD"], timeout)
        remote = _git(git, path, root, ["config", "--get", "remote.origin.url"], timeout)
    except UserError as error:
        log.warning("git info for %s: %s", path.name, error.message)
        return None
    commit_hash, commit_date = None, None
    if head.returncode == 0 and head.stdout.strip():
        commit_hash, _, date = head.stdout.strip().partition(" ")
        commit_date = int(date) if date.isdigit() else None
    elif head.returncode != 0 and "does not have any commits" not in head.stderr:
        log.warning("git info for %s: %s", path.name, head.stderr.strip().splitlines()[-1:] or "git failed")
    name = branch.stdout.strip() if branch.returncode == 0 else ""
    url = remote.stdout.strip() if remote.returncode == 0 else ""
    return GitInfo(remote=redact_url(url) if url else None, branch=name if name and name != "HEAD" else None,
                   commit_hash=commit_hash, commit_date=commit_date)


def _installed(path: Path, root: Path, git: str, timeout: float) -> InstalledExtension:
    return InstalledExtension(name=path.name, path=path, root=root,
                              git=read_git_info(path, root=root, git=git, timeout=timeout),
                              metadata=read_metadata(path))


def list_installed(extensions_dir: Path, *, git: str = "git",
                   timeout: float = GIT_INFO_TIMEOUT_S) -> list[InstalledExtension]:
    """The extension folders in extensions/, sorted by name, with git info (None for non-git folders)."""
    root = Path(extensions_dir)
    if not root.is_dir():
        return []
    return [_installed(path, root, git, timeout) for path in sorted(root.iterdir(), key=lambda p: p.name)
            if is_extension_folder(path)]


def find_installed(extensions_dir: Path, name: str, *, git: str = "git",
                   timeout: float = GIT_INFO_TIMEOUT_S) -> InstalledExtension:
    """The installed extension in folder `name`; NotFoundError when there is none."""
    validate_folder_name(name)
    path = Path(extensions_dir) / name
    if not is_extension_folder(path):
        raise NotFoundError(f"No extension {name!r} in {extensions_dir}.",
                            hint="See the Extensions tab (Installed) for the folder names.")
    return _installed(path, Path(extensions_dir), git, timeout)


def cleanup_leftovers(extensions_dir: Path) -> list[Path]:
    """Remove temporary folders left by an interrupted install or removal. Call at start-up only (an
    install running at the same time would lose its clone)."""
    root = Path(extensions_dir)
    removed = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name.startswith(TEMP_PREFIXES) and path.is_dir() and not path.is_symlink():
            _rmtree(path)
            removed.append(path)
    return removed


def _rmtree(path: Path) -> None:
    def make_writable(function: Callable, failed: str, _info: object) -> None:
        # git's object files are read-only; on Windows they cannot be deleted until made writable
        with contextlib.suppress(OSError):
            os.chmod(failed, stat.S_IWRITE)
            function(failed)

    shutil.rmtree(path, onerror=make_writable)


# -- install --------------------------------------------------------------------------------------------------
def _validate_branch(branch: str | None) -> str | None:
    if branch is None or not branch.strip():
        return None
    name = branch.strip()
    if name.startswith("-") or ".." in name or any(ch.isspace() or ord(ch) < 32 for ch in name):
        raise UserError(f"Branch name {name!r} is not allowed.", code="invalid_branch",
                        hint="Give a plain branch or tag name such as main, or leave it empty.")
    return name


def _requirement_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def install_requirements(folder: Path, *, python: str, progress: Progress,
                         timeout: float = INSTALL_TIMEOUT_S) -> int | None:
    """`pip install -r requirements.txt` under sdweb's constraints (pip_guard) when the file lists anything;
    the exit code, or None when there was nothing to install. RequirementConflict (nothing installed) when
    a requirement would replace a package sdweb needs. This reaches the network (PyPI)."""
    folder = Path(folder)
    if not _requirement_lines(folder / "requirements.txt"):
        return None
    progress(f"Installing requirements of {folder.name} with pip")
    return run_pip_for_extension(folder.name, ["install", "-r", "requirements.txt"], python=python,
                                 progress=progress, cwd=folder, timeout=timeout)


@dataclass(frozen=True)
class ScriptRun:
    returncode: int
    conflict: str | None  # a pip run inside install.py refused by sdweb's constraints (what it wanted)


def run_install_script(folder: Path, *, python: str, progress: Progress, webui_root: Path = CHECKOUT_ROOT,
                       timeout: float = INSTALL_TIMEOUT_S) -> ScriptRun | None:
    """Run the extension's install.py as A1111 does (PYTHONPATH = the webui root, `import launch` works); here
    also with the extension folder as the working directory, and with sdweb's pip constraints in PIP_CONSTRAINT
    so a pip it starts cannot replace sdweb's packages. None when there is no install.py."""
    folder = Path(folder)
    script = folder / "install.py"
    if not script.is_file():
        return None
    lines: list[str] = []

    def collect(line: str) -> None:
        lines.append(line)
        progress(line)

    progress(f"Running install.py of {folder.name}")
    with protected_constraints() as constraints:
        env = extension_pip_environment(constraints)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(webui_root), env.get("PYTHONPATH", "")) if p)
        code, _tail = run_streamed([python, "-m", INSTALL_SCRIPT_RUNNER, str(script)], cwd=folder, env=env,
                                   timeout=timeout, progress=collect)
        conflict = conflicts_in_output(lines)
        described = conflict.describe(folder.name, protected_versions()) if conflict is not None else None
    return ScriptRun(code, described)


def _refuse_duplicates(root: Path, name: str, url: str, git: str) -> None:
    target = root / name
    if target.exists() or target.is_symlink():
        raise UserError(f"An extension folder {name!r} already exists in {root}.", code="extension_exists",
                        hint="Remove it first, or choose another local directory name.")
    key = normalize_git_url(url)
    for installed in list_installed(root, git=git):
        if installed.remote and normalize_git_url(installed.remote) == key:
            raise UserError(f"This extension is already installed as {installed.name!r}.",
                            code="extension_exists", hint="Update it from the Installed tab instead.")


def _clone(url: str, branch: str | None, root: Path, name: str, git: str, progress: Progress,
           timeout: float) -> Path:
    """Clone into a hidden temporary folder in `root` and rename it to `root/name`; nothing is left on failure."""
    temp = make_temp_folder(root, f"{TEMP_PREFIXES[0]}{name}-")  # the umask's mode, kept by the rename
    try:
        command = [git, "clone", "--depth", "1", "--recurse-submodules", "--shallow-submodules"]
        command += ["--branch", branch] if branch else []
        command += ["--", url, str(temp)]
        progress(f"Cloning {redact_url(url)}" + (f" (branch {branch})" if branch else ""))
        code, tail = run_streamed(command, cwd=root, env=_git_env(root), timeout=timeout, progress=progress,
                             secrets=(url,))
        if code != 0:
            raise UserError(f"git clone of {redact_url(url)} failed (exit code {code}).", code="git_clone_failed",
                            hint="\n".join(tail[-5:]) or "Check the URL and branch name.")
        target = root / name
        if target.exists() or target.is_symlink():
            raise UserError(f"An extension folder {name!r} appeared while cloning.", code="extension_exists",
                            hint="Remove it first, or choose another local directory name.")
        os.rename(temp, target)
        return target
    except BaseException:
        if temp.exists():
            _rmtree(temp)
        raise


def install_from_url(url: str, branch: str | None = None, folder_name: str | None = None, *,
                     extensions_dir: Path, run_install: bool, python: str, progress: Progress,
                     requirements: bool = True, git: str = "git", webui_root: Path = CHECKOUT_ROOT,
                     clone_timeout: float = CLONE_TIMEOUT_S,
                     install_timeout: float = INSTALL_TIMEOUT_S) -> InstallResult:
    """Clone an extension into extensions/ and run its installers. UserError for a bad URL or name, an
    existing folder or URL, or a failed clone; an installer that fails keeps the extension and is reported
    in `warnings`. With `run_install` False neither requirements.txt nor install.py runs; with `requirements`
    False only requirements.txt (pip, which needs the network) is skipped."""
    url = validate_git_url(url)
    branch = _validate_branch(branch)
    name = validate_folder_name(folder_name.strip()) if folder_name and folder_name.strip() \
        else folder_name_from_url(url)
    root = Path(extensions_dir)
    root.mkdir(parents=True, exist_ok=True)
    _refuse_duplicates(root, name, url, git)
    target = _clone(url, branch, root, name, git, progress, clone_timeout)
    log.info("installed extension %s from %s", name, redact_url(url))
    requirements_rc = script_rc = None
    warnings: list[str] = []
    if run_install:
        requirements_rc, script_rc, warnings = run_installers(target, python=python, progress=progress,
                                                              requirements=requirements, webui_root=webui_root,
                                                              timeout=install_timeout)
    return InstallResult(name=name, path=target, url=redact_url(url), git=read_git_info(target, root=root, git=git),
                         requirements_rc=requirements_rc, install_script_rc=script_rc, warnings=tuple(warnings))


def run_installers(folder: Path, *, python: str, progress: Progress, requirements: bool = True,
                   webui_root: Path = CHECKOUT_ROOT, timeout: float = INSTALL_TIMEOUT_S
                   ) -> tuple[int | None, int | None, list[str]]:
    """requirements.txt (unless `requirements` is False), then install.py, both held to sdweb's constraints.
    (requirements exit code, install.py exit code, warnings); a refused requirement is a warning (the
    extension stays installed and needs attention), as is a failing installer."""
    warnings: list[str] = []
    requirements_rc = None
    if requirements:
        try:
            requirements_rc = install_requirements(folder, python=python, progress=progress, timeout=timeout)
        except RequirementConflict as conflict:
            warnings.append(f"requirements.txt refused: {conflict.message}")
        if requirements_rc:
            warnings.append(f"pip install -r requirements.txt failed (exit code {requirements_rc}).")
    script = run_install_script(folder, python=python, progress=progress, webui_root=webui_root, timeout=timeout)
    if script is not None and script.conflict:
        warnings.append(f"install.py: {script.conflict}")
    if script is not None and script.returncode:
        warnings.append(f"install.py failed (exit code {script.returncode}); the extension may not work.")
    for warning in warnings:
        progress(warning)
    return requirements_rc, script.returncode if script is not None else None, warnings


# -- updates and removal --------------------------------------------------------------------------------------
def _rev(ext: InstalledExtension, git: str, rev: str) -> str | None:
    done = _git(git, ext.path, ext.root, ["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                GIT_INFO_TIMEOUT_S)
    return done.stdout.strip() or None if done.returncode == 0 else None


def check_for_updates(ext: InstalledExtension, *, git: str = "git",
                      timeout: float = FETCH_TIMEOUT_S) -> UpdateStatus:
    """`git fetch`, then compare HEAD with its upstream branch. Never raises for remote problems: the
    status says "unknown (...)" instead."""
    if ext.git is None:
        return UpdateStatus(ext.name, "unknown (not a git repository)", can_update=False)
    try:
        fetched = _git(git, ext.path, ext.root, ["fetch", "--quiet"], timeout)
    except UserError as error:
        return UpdateStatus(ext.name, "unknown (remote error)", can_update=False, message=error.message)
    if fetched.returncode != 0:
        message = redact_text(fetched.stderr.strip(), (ext.git.remote or "",))
        return UpdateStatus(ext.name, "unknown (remote error)", can_update=False, message=message)
    local, upstream = _rev(ext, git, "HEAD"), _rev(ext, git, "@{upstream}")
    if upstream is None:
        return UpdateStatus(ext.name, "unknown (no upstream branch)", can_update=False, local_commit=local,
                            message="HEAD is detached or its branch does not track a remote branch.")
    if local == upstream:
        return UpdateStatus(ext.name, "latest", False, 0, local, upstream)

    def ancestor(older: str, newer: str) -> bool:
        args = ["merge-base", "--is-ancestor", older, newer]
        return _git(git, ext.path, ext.root, args, GIT_INFO_TIMEOUT_S).returncode == 0

    if local is None or ancestor("HEAD", "@{upstream}"):
        counted = _git(git, ext.path, ext.root, ["rev-list", "--count", "HEAD..@{upstream}"], GIT_INFO_TIMEOUT_S)
        behind = int(counted.stdout.strip()) if counted.stdout.strip().isdigit() else None
        return UpdateStatus(ext.name, "new commits", True, behind, local, upstream)
    if ancestor("@{upstream}", "HEAD"):
        return UpdateStatus(ext.name, "ahead of remote", False, 0, local, upstream,
                            message="This checkout has commits the remote does not have.")
    return UpdateStatus(ext.name, "diverged", False, None, local, upstream,
                        message="Local and remote history differ; a fast-forward update is not possible.")


def update(ext: InstalledExtension, *, git: str = "git", progress: Progress | None = None,
           timeout: float = FETCH_TIMEOUT_S) -> UpdateResult:
    """`git pull --ff-only` (never discards local changes or commits); UserError when that is impossible."""
    if ext.git is None:
        raise UserError(f"{ext.name} is not a git checkout, so it cannot be updated.", code="not_a_git_checkout",
                        hint="Reinstall it from its URL to get updates.")
    report = progress or (lambda _line: None)
    old = _rev(ext, git, "HEAD")
    code, tail = run_streamed([git, "-C", str(ext.path), "pull", "--ff-only"], cwd=ext.path, env=_git_env(ext.root),
                         timeout=timeout, progress=report, secrets=(ext.git.remote or "",))
    if code != 0:
        raise UserError(f"Updating {ext.name} failed (git pull --ff-only, exit code {code}).",
                        code="extension_update_failed",
                        hint="\n".join(tail[-5:]) + "\nLocal changes or commits block a fast-forward: "
                        "commit or remove them, or reinstall the extension.")
    if (ext.path / ".gitmodules").is_file():
        run_streamed([git, "-C", str(ext.path), "submodule", "update", "--init", "--recursive"], cwd=ext.path,
                env=_git_env(ext.root), timeout=timeout, progress=report)
    new = _rev(ext, git, "HEAD")
    log.info("updated extension %s: %s -> %s", ext.name, (old or "?")[:8], (new or "?")[:8])
    return UpdateResult(ext.name, old, new, tuple(tail))


def remove(ext: InstalledExtension) -> Path:
    """Delete the extension's folder, only when it is a real folder directly inside its extensions/ folder
    (a symlink is refused: its target is not ours to delete). Returns the removed path."""
    validate_folder_name(ext.path.name)
    path, root = Path(ext.path), Path(ext.root).resolve()
    if path.is_symlink():
        raise UserError(f"{ext.name} is a link to {path.resolve()}, which is not deleted.",
                        code="extension_is_link", hint=f"Remove the link {path} yourself if you want it gone.")
    resolved = path.resolve()
    if resolved.parent != root or not resolved.is_dir():
        raise UserError(f"Refusing to remove {path}: it is not a folder directly inside {root}.",
                        code="extension_outside_folder", hint="Only installed extensions can be removed here.")
    doomed = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIXES[1]}{ext.name}-", dir=root))
    os.replace(resolved, doomed / ext.name)  # gone from the list at once, even if the delete is slow
    _rmtree(doomed)
    log.info("removed extension %s", ext.name)
    return resolved
