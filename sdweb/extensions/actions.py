"""What the Extensions tab and the extension API routes do: the installer's actions for one data folder,
each behind A1111's access rule (refused with ExtensionAccessError, HTTP 403, on an exposed server).

Both callers build an `ExtensionActions` from AppState with `for_state`, so the UI and the API install,
update and remove in exactly the same way (same git, same Python, same install.py bookkeeping).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdweb.config.launch_options import LaunchOptions
from sdweb.core.errors import NotFoundError, UserError
from sdweb.extensions.attention import attention_file, clear_attention, mark_attention, read_attention
from sdweb.extensions.installer import (
    InstalledExtension,
    InstallResult,
    Progress,
    UpdateResult,
    UpdateStatus,
    check_for_updates,
    exposure_refusal,
    find_installed,
    install_from_url,
    list_installed,
    remove,
    require_extension_access,
    update,
)
from sdweb.extensions.loader import install_cache_file, mark_install_script_done


def git_command() -> str:
    """The git executable: $GIT (as A1111's launcher), else `git` on PATH."""
    return os.environ.get("GIT", "git")


def _quiet(_line: str) -> None:
    return None


_CHANGE_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


@contextmanager
def _one_change_at_a_time(extensions_dir: Path) -> Iterator[None]:
    """Installs, updates and removes from the tab and the API never overlap in one extensions folder."""
    with _LOCKS_GUARD:
        lock = _CHANGE_LOCKS.setdefault(extensions_dir.resolve(), threading.Lock())
    if not lock.acquire(blocking=False):
        raise UserError("Another extension install, update or remove is running.", code="extension_change_busy",
                        hint="Wait for it to finish (its output is in the Extensions tab), then try again.")
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class ExtensionActions:
    extensions_dir: Path
    install_cache: Path  # where the loader records which install.py already ran
    options: LaunchOptions  # the frozen launch options (access rule, --skip-install)
    git: str = "git"
    python: str = sys.executable
    attention: Path | None = None  # where extensions needing attention are recorded (attention.py)

    @classmethod
    def for_state(cls, state: Any) -> ExtensionActions:
        return cls(Path(state.paths.extensions), install_cache_file(state.paths), state.options, git=git_command(),
                   attention=attention_file(state.paths))

    def needing_attention(self) -> dict[str, str]:
        """Extension name -> why it needs attention (a refused or failed requirement install)."""
        return read_attention(self.attention) if self.attention is not None else {}

    def refusal(self) -> str | None:
        """Why changes are refused on this server, or None when they are allowed."""
        return exposure_refusal(self.options)

    def installed(self) -> list[InstalledExtension]:
        return list_installed(self.extensions_dir, git=self.git)

    def find(self, name: str) -> InstalledExtension:
        return find_installed(self.extensions_dir, (name or "").strip(), git=self.git)

    def install(self, url: str, branch: str | None = None, name: str | None = None,
                progress: Progress = _quiet) -> InstallResult:
        """Clone into extensions/ and run its install.py (unless --skip-install); a restart loads it."""
        require_extension_access(self.options)
        with _one_change_at_a_time(self.extensions_dir):
            result = install_from_url(url, branch, name, extensions_dir=self.extensions_dir,
                                      run_install=not self.options.skip_install,
                                      python=self.python, progress=progress, git=self.git)
        if result.install_script_rc == 0:  # the next start need not run it again
            mark_install_script_done(result.name, result.path, self.install_cache)
        if self.attention is not None and result.warnings:
            mark_attention(self.attention, result.name, " ".join(result.warnings))
        elif self.attention is not None:
            clear_attention(self.attention, result.name)
        return result

    def check_updates(self, names: Iterable[str] | None = None) -> list[UpdateStatus]:
        """`git fetch` each extension (all when `names` is None) and compare with its upstream branch."""
        require_extension_access(self.options)
        extensions = self.installed()
        if names is not None:
            wanted = [name.strip() for name in names]
            known = {ext.name: ext for ext in extensions}
            missing = [name for name in wanted if name not in known]
            if missing:
                raise NotFoundError(f"No extension {missing[0]!r} in {self.extensions_dir}.",
                                    hint="GET /sdweb/v1/extensions lists the installed folder names.")
            extensions = [known[name] for name in wanted]
        return [check_for_updates(ext, git=self.git) for ext in extensions]

    def update(self, name: str, progress: Progress = _quiet) -> UpdateResult:
        """Fast-forward one extension to its upstream branch (a restart loads the new code)."""
        require_extension_access(self.options)
        with _one_change_at_a_time(self.extensions_dir):
            return update(self.find(name), git=self.git, progress=progress)

    def remove(self, name: str) -> Path:
        """Delete one extension's folder from extensions/ (built-ins are not there and cannot be removed)."""
        require_extension_access(self.options)
        with _one_change_at_a_time(self.extensions_dir):
            removed = remove(self.find(name))
        if self.attention is not None:
            clear_attention(self.attention, removed.name)
        return removed
