"""Errors a user can cause, with a message that names the thing and a hint that says what to do.

The API turns these into HTTP 4xx JSON, the UI into a visible error; anything else is a bug.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, files or settings. Never a crash."""

    status_code = 400

    def __init__(self, message: str, *, code: str = "bad_request", hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def __reduce__(self) -> tuple[object, ...]:
        """Pickles with its class, code and hint (a worker in another process sends it to the head)."""
        return _rebuild_user_error, (type(self), self.message, self.code, self.hint), dict(self.__dict__)


def _rebuild_user_error(cls: type[UserError], message: str, code: str, hint: str) -> UserError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.code, error.message, error.hint = code, message, hint
    return error


class NotFoundError(UserError):
    """A named model, file, sampler or job does not exist."""

    status_code = 404

    def __init__(self, message: str, *, code: str = "not_found", hint: str = "") -> None:
        super().__init__(message, code=code, hint=hint)


class InvalidModelFileError(UserError):
    """A model file is damaged, unsafe or of a kind that does not belong where it was put."""

    status_code = 422

    def __init__(self, message: str, *, code: str = "invalid_model_file", hint: str = "") -> None:
        super().__init__(message, code=code, hint=hint)


class SettingsError(UserError):
    """A setting has a value it cannot take."""

    status_code = 422

    def __init__(self, message: str, *, code: str = "invalid_setting", hint: str = "") -> None:
        super().__init__(message, code=code, hint=hint)


class SettingLockedError(SettingsError):
    """A setting that runs code or chooses paths, changed on a server reachable from other machines."""

    status_code = 403

    def __init__(self, message: str, *, code: str = "setting_locked", hint: str = "") -> None:
        super().__init__(message, code=code, hint=hint)


# -- files that cannot be written: "disk full: <path>, N MB free", or the OS's reason ----------------------------
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(error: OSError) -> bool:
    return error.errno in _NO_SPACE


def free_megabytes(path: Path) -> int | None:
    """Free space of the file system holding `path` (or its nearest existing folder), in MB."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free // (1 << 20)
    except OSError:
        return None


def write_failure_message(error: OSError, path: Path) -> str:
    if is_disk_full(error):
        free = free_megabytes(path)
        return f"disk full: {path}, {free if free is not None else '?'} MB free"
    return f"cannot write {path}: {error.strerror or error}"


class WriteFailedError(UserError):
    """A file could not be written (a full disk, a read-only folder); nothing was changed."""

    status_code = 507

    def __init__(self, error: OSError, path: Path) -> None:
        full = is_disk_full(error)
        super().__init__(write_failure_message(error, path), code="disk_full" if full else "write_failed",
                         hint="Free some disk space and try again." if full
                         else "Check that the folder exists and that sdweb may write to it.")


class LimitError(UserError):
    """A request over one of the limits in core/limits.py; the message names the limit."""

    status_code = 422

    def __init__(self, message: str, *, code: str = "limit_exceeded", hint: str = "") -> None:
        super().__init__(message, code=code, hint=hint)
