"""MAX_REQUEST_BYTES on every route's request body: 413 as soon as the size is known to be over it.

A Content-Length over the limit is refused before a byte of the body is read. A body without one (chunked) is
counted while the app reads it; once it passes the limit the app's reading stops and the client gets the 413.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sdweb.core.limits import MAX_REQUEST_BYTES, MiB

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised into the app's read of a body that passed the limit."""


def too_large_body(limit: int) -> bytes:
    detail = (f"The request body is larger than {limit // MiB} MiB (MAX_REQUEST_BYTES), the most one request may "
              "send.")
    hint = "Send smaller or fewer images (JPEG or WebP instead of PNG), or split the work into several requests."
    return json.dumps({"error": "PayloadTooLarge", "detail": detail, "body": "", "errors": f"{detail} {hint}",
                       "code": "request_too_large", "hint": hint}).encode()


class BodyLimitMiddleware:
    """Pure ASGI; `limit` in bytes."""

    def __init__(self, app: ASGIApp, limit: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.limit:
            await self._refuse(send)
            return
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:  # the app answers the BodyTooLarge it saw (often a 500): the client gets the 413 instead
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counting_receive, guarded_send)
        if over and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = too_large_body(self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
