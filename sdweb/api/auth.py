"""HTTP Basic auth for the API: --api-auth, or --gradio-auth when only that is set (no A1111 #17411 leak); and
which credentials the page's login takes (ui_credentials). README's Security section has the table.

One ASGI middleware guards every route of the app (/sdapi/v1/*, the docs, and any route an extension adds
later, however it adds it), so nothing depends on a route remembering a dependency. It leaves alone the
Gradio UI mounted at "/" (which has its own login), /internal/ping (a health check that says nothing), and
CORS preflight requests (browsers send those without credentials).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match, Mount

from sdweb.config.launch_options import LaunchOptions

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EXEMPT_PATHS = frozenset({"/internal/ping"})
PROTECTED_PREFIXES = ("/sdapi/",)


def parse_credentials(text: str | None) -> dict[str, str]:
    """'u:p,u2:p2' -> {u: p, u2: p2} (split on ',' then the first ':', as A1111)."""
    pairs: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if item and ":" in item:
            user, password = item.split(":", 1)
            pairs[user] = password
    return pairs


def gradio_credentials(options: LaunchOptions) -> dict[str, str]:
    """--gradio-auth plus the entries of the --gradio-auth-path file."""
    pairs = parse_credentials(options.gradio_auth)
    auth_path = options.gradio_auth_path
    if auth_path:
        for line in Path(auth_path).read_text(encoding="utf-8").splitlines():
            pairs.update(parse_credentials(line))
    return pairs


def api_credentials(options: LaunchOptions) -> dict[str, str]:
    """The API's: --api-auth, else the page's (so --gradio-auth alone protects the API too)."""
    return parse_credentials(options.api_auth) or gradio_credentials(options)


def ui_credentials(options: LaunchOptions) -> dict[str, str]:
    """The page's login: --gradio-auth, else --api-auth (so --api-auth alone does not leave the page's queue
    open: its Generate and Install buttons run jobs and code)."""
    return gradio_credentials(options) or parse_credentials(options.api_auth)


def check_basic_header(header: str | None, credentials: dict[str, str]) -> str | None:
    """None when the Authorization header carries a known user and password, else the 401 detail."""
    if not header:
        return "Not authenticated"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return "Not authenticated"
    try:
        user, separator, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return "Invalid authentication credentials"
    expected = credentials.get(user) if separator else None
    # Compare even for an unknown user, so the time taken does not tell which users exist.
    matches = secrets.compare_digest(password.encode(), (expected or "\0" + password).encode())
    return None if expected is not None and matches else "Incorrect username or password"


def _route_path(scope: Scope) -> str:
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] or "/" if root and path.startswith(root) else path


class BasicAuthMiddleware:
    """Pure ASGI middleware; which routes it guards is decided per request from the app's current routes."""

    def __init__(self, app: ASGIApp, credentials: dict[str, str], routes: Callable[[], list[BaseRoute]]) -> None:
        self.app = app
        self.credentials = credentials
        self.routes = routes

    def _guarded(self, scope: Scope) -> bool:
        path = _route_path(scope)
        if path in EXEMPT_PATHS:
            return False
        if path.startswith(PROTECTED_PREFIXES):
            return True
        partial = None
        for route in self.routes():
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return not _is_ui_mount(route)
            if match is Match.PARTIAL and partial is None:
                partial = route
        return partial is not None and not _is_ui_mount(partial)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self._guarded(scope):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
        if scope["type"] == "http" and scope.get("method") == "OPTIONS" and "access-control-request-method" in headers:
            await self.app(scope, receive, send)  # CORS preflight: never carries credentials
            return
        problem = check_basic_header(headers.get("authorization"), self.credentials)
        if problem is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": "HTTPException", "detail": problem, "body": "", "errors": problem}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Basic")]})
        await send({"type": "http.response.body", "body": body})


def _is_ui_mount(route: BaseRoute) -> bool:
    return isinstance(route, Mount) and route.path == ""


def install_api_auth(app: FastAPI, options: LaunchOptions) -> bool:
    """Guard the app with the API credentials, once; False when no credentials are configured."""
    credentials = api_credentials(options)
    if not credentials or getattr(app.state, "sdweb_api_auth", False):
        return bool(credentials)
    app.add_middleware(BasicAuthMiddleware, credentials=credentials, routes=lambda: app.router.routes)
    app.state.sdweb_api_auth = True
    return True
