"""A1111's `modules.errors`: report an exception to the log (never to the user as a crash)."""

from __future__ import annotations

import logging

log = logging.getLogger("sdweb.compat.a1111.extension")


def report(message: str, *, exc_info: bool = False) -> None:
    log.error(message, exc_info=exc_info)


def display(e: BaseException, task: str, *, full_traceback: bool = False) -> None:
    log.error("%s: %s: %s", task, type(e).__name__, e, exc_info=e)


def display_once(e: BaseException, task: str) -> None:
    display(e, task)


def print_error_explanation(message: str) -> None:
    log.error(message)


def run(code, task: str) -> None:  # noqa: ANN001
    try:
        code()
    except Exception as error:
        display(error, task)
