"""A1111's `modules.launch_utils` (the same helpers as `launch`)."""

from sdweb.compat.a1111.launch import args, commit_hash, git, git_tag, is_installed, python, run, run_pip

__all__ = ["args", "commit_hash", "git", "git_tag", "is_installed", "python", "run", "run_pip"]
