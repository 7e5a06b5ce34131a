"""Errors a user can cause, with a message that names the thing and a hint that says what to do.

The API turns these into HTTP 4xx JSON, the UI into a visible error; anything else is a bug.
"""

from __future__ import annotations


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


class LimitError(UserError):
    """A request over one of the limits in core/limits.py; the message names the limit."""

    status_code = 422

    def __init__(self, message: str, *, code: str = "limit_exceeded", hint: str = "") -> None:
        super().__init__(message, code=code, hint=hint)
