"""A local git repository made from a folder of files, for tests that install extensions from a file:// URL as
a user installs one from GitHub (no network)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1"}


def git_repo_from(folder: Path, target: Path) -> str:
    """A git repository at `target` with the files of `folder` (one commit, branch main); its file:// URL."""
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**GIT_ENV, "PATH": "/usr/bin:/bin", "HOME": str(target)}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "pinned copy"]):
        subprocess.run(["git", *args], cwd=target, env=env, check=True, capture_output=True)
    return target.as_uri()
