"""Whether the server is reachable from other machines without the operator trusting everyone there.

A1111's access rule: with --listen, --share, --ngrok or --server-name the server is exposed, and what runs
code on this computer (installing or enabling extensions) or chooses where files are read and written
needs --enable-insecure-extension-access.
"""

from __future__ import annotations

TRUST_FLAG = "--enable-insecure-extension-access"
_EXPOSING_FLAGS = (("--listen", "listen"), ("--share", "share"), ("--ngrok", "ngrok"),
                   ("--server-name", "server_name"))


def untrusted_exposure(options: object) -> str | None:
    """The flags that expose the server (", "-joined) when it is exposed without TRUST_FLAG, else None."""
    if getattr(options, "enable_insecure_extension_access", False):
        return None
    active = [flag for flag, attr in _EXPOSING_FLAGS if getattr(options, attr, None)]
    return ", ".join(active) or None


def exposure_advice(flags: str) -> str:
    """What the operator can do about a refusal caused by `flags`."""
    return f"Restart without {flags}, or add {TRUST_FLAG} if you trust everyone who can reach this server."
