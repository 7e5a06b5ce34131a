"""Host and Origin checks on every route (API, extensions' routes, Gradio's page, queue and streams).

DNS rebinding: a web page on evil.example points its own name at 127.0.0.1, and the browser then sends that
page's requests to this server with `Host: evil.example`. So a request is answered only when its Host names this
server: a loopback name or address (localhost, 127.0.0.0/8, ::1), the bound --server-name, a name given with
--allowed-hosts, and, when the server listens beyond loopback (--listen, or --server-name with another address),
any IP address and the machine's own host name (rebinding needs a domain name, never an IP literal). A request
without Host (not a browser) is answered. `--allowed-hosts *` turns both checks off.

A request that changes something (POST, PUT, PATCH, DELETE, and every websocket) sent by a web page carries its
page's Origin; it is refused unless that origin is this server itself (same host and port as Host), a loopback or
allowed name, or listed with --cors-allow-origins / --cors-allow-origins-regex. Without Origin (curl, webuiapi,
scripts) it is answered. A refusal is a 403 with A1111's JSON error body naming the header and the flag.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sdweb.config.launch_options import LaunchOptions

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})


def host_name(header: str) -> str:
    """The name or address in a Host header, lowercased, without port, brackets or a trailing dot."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else header
    name, separator, port = header.rpartition(":")
    if separator and ":" not in name and (port.isdigit() or not port):
        header = name
    return header[:-1] if header.endswith(".") else header


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    address = _ip(name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback


def split_list(text: str | None) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


@dataclass(frozen=True)
class HostPolicy:
    """Which Host and Origin values this server answers to (built once from the flags)."""

    names: frozenset[str]  # exact names besides loopback: --server-name, --allowed-hosts, the machine's name
    any_ip: bool  # listening beyond loopback: any IP-literal Host
    origins: frozenset[str]  # --cors-allow-origins
    origin_regex: re.Pattern[str] | None  # --cors-allow-origins-regex
    off: bool  # --allowed-hosts *

    def host_allowed(self, header: str | None) -> bool:
        if self.off or not header:
            return True
        name = host_name(header)
        return is_loopback(name) or name in self.names or (self.any_ip and _ip(name) is not None)

    def origin_allowed(self, origin: str, host_header: str | None) -> bool:
        if self.off or origin in self.origins or (self.origin_regex is not None
                                                  and self.origin_regex.fullmatch(origin) is not None):
            return True
        try:
            parts = urlsplit(origin)
            name = host_name(parts.hostname or "")
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not name:
            return False  # "null" (sandboxed frames, file: pages) and anything odd
        same_origin = host_header is not None and parts.netloc.lower() == host_header.strip().lower()
        return same_origin or is_loopback(name) or name in self.names

    def describe(self) -> str:
        parts = ["localhost, 127.0.0.0/8, ::1", *sorted(self.names)]
        if self.any_ip:
            parts.append("any IP address")
        return ", ".join(parts)


def machine_names() -> set[str]:
    """This machine's host name (and its mDNS .local form), read locally: no DNS lookup."""
    name = socket.gethostname().strip().lower().rstrip(".")
    return {name, f"{name.split('.')[0]}.local"} if name else set()


def host_policy(options: LaunchOptions) -> HostPolicy:
    server_name = (options.server_name or "").strip().lower()
    bind = server_name or ("0.0.0.0" if options.listen else "127.0.0.1")
    exposed = bind in WILDCARD_BINDS or not is_loopback(host_name(bind))
    allowed = [host_name(name) for name in split_list(options.allowed_hosts)]
    names = {name for name in allowed if name != "*"}
    if server_name and server_name not in WILDCARD_BINDS:
        names.add(host_name(server_name))
    if exposed:
        names |= machine_names()
    regex = options.cors_allow_origins_regex
    return HostPolicy(names=frozenset(names), any_ip=exposed,
                      origins=frozenset(split_list(options.cors_allow_origins)),
                      origin_regex=re.compile(regex) if regex else None, off="*" in allowed)


class HostOriginMiddleware:
    """Pure ASGI: refuses a request whose Host is not this server, or a changing one from another site's page."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.policy.off:
            await self.app(scope, receive, send)
            return
        problem = self.refusal(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        log.warning("Refused %s %s: %s", scope.get("method", "websocket"), scope.get("path", ""), problem["detail"])
        if scope["type"] == "websocket":
            await _refuse_websocket(scope, receive, send, problem)
        else:
            await _refuse_http(send, problem)

    def refusal(self, scope: Scope) -> dict[str, str] | None:
        """None when the request may go on, else the error body."""
        headers = _headers(scope)
        host, origin = headers.get("host"), headers.get("origin")
        if not self.policy.host_allowed(host):
            name = host_name(host or "")
            return _body("host_not_allowed",
                         f"Host header {host!r} is not allowed: this server answers only to "
                         f"{self.policy.describe()}. This blocks DNS rebinding (a web page reaching this server "
                         "under its own domain name).",
                         f"If {name!r} really is this server's name, start sdweb with --allowed-hosts {name}.")
        changing = scope["type"] == "websocket" or scope.get("method") in CHANGING_METHODS
        if changing and origin is not None and not self.policy.origin_allowed(origin, host):
            return _body("origin_not_allowed",
                         f"Origin header {origin!r} is not allowed to change anything on this server: the request "
                         "comes from another site's page.",
                         f"To allow that site, start sdweb with --cors-allow-origins {origin} (or "
                         "--cors-allow-origins-regex).")
        return None


def _headers(scope: Scope) -> dict[str, str]:
    return {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}


def _body(code: str, detail: str, hint: str) -> dict[str, str]:
    return {"error": "Forbidden", "detail": detail, "body": "", "errors": f"{detail} {hint}", "code": code,
            "hint": hint}


async def _refuse_http(send: Send, problem: dict[str, str]) -> None:
    body = json.dumps(problem).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, problem: dict[str, str]) -> None:
    """The 403 and its JSON body where the server can send one (ASGI's denial response), else a policy close."""
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(problem).encode()
        await send({"type": "websocket.http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008, "reason": problem["code"]})


def install_host_check(app: Any, options: LaunchOptions) -> HostPolicy:
    """Add the check to `app` (call it last, so it runs before everything else) and say at start what it does."""
    policy = host_policy(options)
    if policy.off:
        log.warning("--allowed-hosts *: the Host and Origin checks are off. Any web page open in a browser that "
                    "can reach this server could use it (DNS rebinding).")
    else:
        log.info("Answering to Host: %s (more with --allowed-hosts).", policy.describe())
    app.add_middleware(HostOriginMiddleware, policy=policy)
    return policy
