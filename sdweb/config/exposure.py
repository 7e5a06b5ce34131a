"""Whether the server is reachable from other machines without the operator trusting everyone there.

A1111's access rule: with --listen, --share, --ngrok or --server-name the server is exposed, and what runs
code on this computer (installing or enabling extensions) or chooses where files are read and written
needs --enable-insecure-extension-access.
"""

from __future__ import annotations

from sdweb.config.launch_options import LaunchOptions

TRUST_FLAG = "--enable-insecure-extension-access"


def untrusted_exposure(options: LaunchOptions) -> str | None:
    """The flags that expose the server (", "-joined) when it is exposed without TRUST_FLAG, else None."""
    if options.enable_insecure_extension_access:
        return None
    exposing = (("--listen", options.listen), ("--share", options.share), ("--ngrok", options.ngrok),
                ("--server-name", options.server_name))
    active = [flag for flag, value in exposing if value]
    return ", ".join(active) or None


def exposure_advice(flags: str) -> str:
    """What the operator can do about a refusal caused by `flags`."""
    return f"Restart without {flags}, or add {TRUST_FLAG} if you trust everyone who can reach this server."
