"""HTTP Basic auth for the API: --api-auth, or --gradio-auth when only that is set (no A1111 #17411 leak)."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials


def parse_credentials(text: str | None) -> dict[str, str]:
    """'u:p,u2:p2' -> {u: p, u2: p2} (split on ',' then the first ':', as A1111)."""
    pairs: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if item and ":" in item:
            user, password = item.split(":", 1)
            pairs[user] = password
    return pairs


def api_credentials(options: object) -> dict[str, str]:
    return parse_credentials(getattr(options, "api_auth", None) or getattr(options, "gradio_auth", None))


def basic_auth_dependency(credentials: dict[str, str]) -> Callable[..., None] | None:
    """A FastAPI dependency that checks HTTP Basic credentials, or None when auth is off."""
    if not credentials:
        return None
    security = HTTPBasic()

    def check(given: HTTPBasicCredentials = Depends(security)) -> None:  # noqa: B008 (FastAPI idiom)
        expected = credentials.get(given.username)
        if expected is None or not secrets.compare_digest(given.password.encode(), expected.encode()):
            raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail="Incorrect username or password",
                                headers={"WWW-Authenticate": "Basic"})

    return check
