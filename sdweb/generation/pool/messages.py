"""Plain-data messages between the head (queue, scheduler, registry, file writing) and the workers.

Everything here pickles: a worker in another process or on another machine gets a `WorkItem`, sends
`ProgressEvent`s while it runs and ends with one `WorkResult`. Previews travel as small JPEG bytes, images as
PNG bytes with their infotext."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

PREVIEW_MAX_SIDE = 512
PREVIEW_JPEG_QUALITY = 85


@dataclass(frozen=True)
class WorkItem:
    """One job for one worker: its kind, the typed request (plain data) and what the head resolved."""

    job_id: str
    kind: str
    payload: Any  # GenerationJob / ExtrasJob / ... (pydantic requests and PIL images pickle)
    checkpoint: str | None = None  # checkpoint title the head expects the job to use
    attempt: int = 0  # 0 first, 1.. for a retry on a restarted or another worker
    images_as_bytes: bool = False  # a worker in another process returns images as PNG bytes, never saves
    settings: dict[str, Any] | None = None  # the head's settings now (a worker in another process applies them)


@dataclass(frozen=True)
class ProgressEvent:
    job_id: str
    seq: int
    attempt: int = 0
    job_no: int = 0
    job_count: int = 1
    step: int = 0
    steps: int = 0
    textinfo: str = ""
    new_batch: bool = False  # a new batch began (Skip applies to one batch)
    skipped: bool = False  # the worker's own view of the flags (the head re-sends what it missed)
    interrupted: bool = False
    preview_jpeg: bytes | None = None


@dataclass(frozen=True)
class WorkImage:
    png: bytes
    infotext: str


@dataclass(frozen=True)
class WorkResult:
    job_id: str
    status: str  # done | failed | interrupted (the names of sdweb.generation.job_state)
    value: Any = None  # the runner's result object (in-process pools hand it over as it is)
    images: tuple[WorkImage, ...] = ()  # generation results from another process: PNG + infotext per image
    error: BaseException | None = None  # a UserError pickles with its code and hint
    loaded: tuple[str, ...] = ()  # checkpoint titles the worker holds after the job
    worker_id: str = ""


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint file a worker has: its name in the worker's models folder and its hashes."""

    name: str
    sha256: str | None
    legacy_hash: str


@dataclass(frozen=True)
class WorkerInfo:
    """What `/sdweb/v1/workers` shows and the scheduler reads."""

    id: str
    node: str
    device: str
    device_name: str = ""
    loaded: tuple[str, ...] = ()
    busy: bool = False
    job_id: str | None = None
    loads: int = 0  # checkpoint loads since start
    jobs_done: int = 0
    checkpoints: tuple[CheckpointFile, ...] | None = None  # the files it has (None: not reported)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "node": self.node, "device": self.device, "device_name": self.device_name,
                "loaded": list(self.loaded), "busy": self.busy, "job": self.job_id, "loads": self.loads,
                "jobs_done": self.jobs_done,
                "checkpoints": None if self.checkpoints is None else [
                    {"name": item.name, "sha256": item.sha256, "hash": item.legacy_hash} for item in self.checkpoints]}


def encode_preview(image: Any) -> bytes | None:
    """A live preview as small JPEG bytes (None for anything that is not a PIL image)."""
    if not isinstance(image, Image.Image):
        return None
    small = image.convert("RGB")
    if max(small.size) > PREVIEW_MAX_SIDE:
        small.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=PREVIEW_JPEG_QUALITY)
    return buffer.getvalue()


def decode_preview(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def encode_png(image: Image.Image, infotext: str) -> WorkImage:
    """An image as PNG bytes (lossless: the head saves exactly these pixels) with its infotext."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return WorkImage(png=buffer.getvalue(), infotext=infotext)


def decode_png(item: WorkImage) -> Image.Image:
    image = Image.open(io.BytesIO(item.png))
    image.load()
    image.info["parameters"] = item.infotext
    return image
