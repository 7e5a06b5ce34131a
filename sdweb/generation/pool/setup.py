"""The worker flags read into a plan: which devices get a worker, and which pool runs them. Pure."""

from __future__ import annotations

import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass

from sdweb.core.errors import UserError

RAY_HINT = "Ray is not installed: pip install 'sdweb[ray]' (or pip install ray), or use --workers local."


@dataclass(frozen=True)
class PoolChoice:
    kind: str  # "local" or "ray"
    address: str | None = None  # ray:HOST:PORT -> "HOST:PORT" (join that cluster); None: start a private one


def parse_workers_flag(value: str | None) -> PoolChoice:
    """--workers local | ray | ray:HOST:PORT."""
    text = (value or "local").strip()
    if text == "local":
        return PoolChoice("local")
    if text == "ray":
        return PoolChoice("ray")
    if text.startswith("ray:"):
        address = text[len("ray:"):]
        host, _, port = address.rpartition(":")
        if host and port.isdigit():
            return PoolChoice("ray", address)
    raise UserError(f"--workers {text!r} is not understood.", code="bad_flag",
                    hint="Use local, ray, or ray:HOST:PORT (e.g. ray:10.0.0.5:6379) to join a Ray cluster.")


def worker_device_ids(device_ids: str | None, device_id: str | None, cuda_count: int,
                      per_device: int = 1) -> list[str | None]:
    """One entry per worker: a --device-id value for its runtime plan (None: the policy's default device).

    --device-ids 0,1,2: those (without CUDA each id is one CPU worker, sharing the CPU); --device-id N: that
    one (A1111's meaning); neither: one worker per visible GPU, or one worker without a GPU. Each device gets
    `per_device` workers (--workers-per-device)."""
    if per_device < 1:
        raise UserError(f"--workers-per-device {per_device}: expected 1 or more.", code="bad_flag",
                        hint="Use 1 (the default) or 2 to run two jobs at once on each device.")
    return [device for device in _one_per_device(device_ids, device_id, cuda_count) for _ in range(per_device)]


def _one_per_device(device_ids: str | None, device_id: str | None, cuda_count: int) -> list[str | None]:
    if device_ids:
        ids = [part.strip() for part in device_ids.split(",") if part.strip()]
        bad = [part for part in ids if not part.isdigit()]
        if bad or not ids:
            raise UserError(f"--device-ids {device_ids!r}: expected device numbers such as 0,1,2.",
                            code="bad_flag", hint="List the CUDA device numbers, comma-separated.")
        if len(set(ids)) != len(ids) and cuda_count > 0:
            raise UserError(f"--device-ids {device_ids!r} lists a device twice.", code="bad_flag",
                            hint="List each device once; --workers-per-device 2 runs two workers on each.")
        return list(ids)
    if device_id is not None:
        return [device_id]
    if cuda_count > 1:
        return [str(index) for index in range(cuda_count)]
    return [None]


def private_ray_auth(environ: MutableMapping[str, str]) -> None:
    """Token auth for the private one-box cluster of `--workers ray`. Ray reads RAY_AUTH_MODE and RAY_AUTH_TOKEN
    when it is imported, so this must run before `import ray`; the token is random for each start unless the user
    chose one (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH). Its processes inherit it; nothing is written to disk."""
    environ.setdefault("RAY_AUTH_MODE", "token")
    if environ["RAY_AUTH_MODE"] == "token" and not environ.get("RAY_AUTH_TOKEN") \
            and not environ.get("RAY_AUTH_TOKEN_PATH"):
        environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)

