"""First run with no checkpoint: download the standard SD 1.5 file (about 4 GB from huggingface.co) as A1111
does (a1111.md §2.4), in the background, never blocking the page. This is the one thing sdweb downloads
without being asked; README and `--help` say so, and --no-download-sd-model turns it off.

Only when models/Stable-diffusion (and --ckpt-dir) holds no checkpoint, no --ckpt is given and
--no-download-sd-model is not set. The file goes to `<name>.partial` beside its final place, with a progress
bar in the console and progress in the page's demo-model banner (`FirstRunStatus`); the sha256 is checked and
the file renamed into place atomically, then the registry is rescanned so it becomes the default checkpoint.
It is tried once: a failure (offline, say) is logged once and remembered in the data folder's cache
(`first-run-download.json`), and later starts do not try again (no network access at each start). The
user can download a checkpoint in the Model downloader tab, or delete that file to let the next start retry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdweb.config.launch_options import LaunchOptions
from sdweb.core.atomic import atomic_write_text
from sdweb.models.registry import ModelRegistry

__all__ = ["DEFAULT_MODEL", "DownloadError", "FirstRunStatus", "ModelDownload", "download_model",
           "failure_record", "start_first_run_download"]

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
USER_AGENT = "sdweb (first-run model download)"
FAILURE_FILE = "first-run-download.json"
ProgressCallback = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


@dataclass(frozen=True)
class ModelDownload:
    url_path: str  # below the endpoint (HF_ENDPOINT, default https://huggingface.co)
    file_name: str
    sha256: str

    def url(self, endpoint: str | None = None) -> str:
        if self.url_path.startswith(("http://", "https://")):
            return self.url_path
        base = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
        return f"{base}/{self.url_path}"


# A1111 dev: the runwayml repo was removed, stable-diffusion-v1-5/stable-diffusion-v1-5 holds the same file.
DEFAULT_MODEL = ModelDownload(
    url_path="stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/v1-5-pruned-emaonly.safetensors",
    file_name="v1-5-pruned-emaonly.safetensors",
    sha256="6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
)


class DownloadError(OSError):
    """The download failed (unreachable, interrupted, wrong checksum); the message says why in one line."""


@dataclass
class FirstRunStatus:
    """What the first-run download is doing, for the page's banner (written by the download thread)."""

    state: str = "off"  # "off" (not needed or not wanted), "downloading", "done", "failed"
    file_name: str = ""
    done_bytes: int = 0
    total_bytes: int | None = None
    message: str = ""  # why it failed

    def describe(self) -> str:
        if self.state == "downloading":
            done = f"{self.done_bytes / 1e9:.2f} GB"
            if not self.total_bytes:
                return f"Downloading {self.file_name}: {done} so far."
            share = 100 * self.done_bytes / self.total_bytes
            return f"Downloading {self.file_name}: {done} of {self.total_bytes / 1e9:.2f} GB ({share:.0f} %)."
        if self.state == "failed":
            return f"The first-run download of {self.file_name} failed and is not retried: {self.message}"
        if self.state == "done":
            return f"{self.file_name} was downloaded and is the default checkpoint now."
        return ""


def _hash_existing(path: Path) -> tuple[Any, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest, size


def _progress_bar(total: int | None, done: int, label: str):  # noqa: ANN202 (a tqdm bar or None)
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with huggingface_hub; without it the log lines suffice
        return None
    return tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024, desc=label)


def _open(url: str, start: int, timeout: float):  # noqa: ANN202 (an http.client response)
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # nothing left after `start`: the partial file may be complete
            return None
        raise DownloadError(f"HTTP {error.code} {error.reason} from {url}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"cannot reach {url}: {reason}") from error


def download_model(spec: ModelDownload, folder: Path, *, endpoint: str | None = None, timeout: float = 10.0,
                   progress: bool = True, on_progress: ProgressCallback | None = None) -> Path:
    """Download `spec` into `folder` (resuming `<name>.partial`), check its sha256, rename it into place.
    `timeout` bounds the connection and every read; `progress` shows a console bar, `on_progress` gets
    (bytes so far, total) after each chunk. Raises DownloadError."""
    folder = Path(folder)
    final = folder / spec.file_name
    if final.is_file():
        return final
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{spec.file_name}.partial"
    url = spec.url(endpoint)
    digest, done = _hash_existing(partial) if partial.is_file() else (hashlib.sha256(), 0)
    response = _open(url, done, timeout)
    if response is not None:
        with response:
            if done and response.status != 206:  # the server ignored Range: start again
                digest, done = hashlib.sha256(), 0
            length = response.headers.get("Content-Length")
            total = done + int(length) if length and length.isdigit() else None
            log.info("Downloading %s from %s (%s)", spec.file_name, url,
                     f"{total / 1e9:.2f} GB" if total else "size unknown")
            bar = _progress_bar(total, done, spec.file_name) if progress else None
            try:
                with partial.open("ab" if done else "wb") as out:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                        if on_progress is not None:
                            on_progress(done, total)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as error:  # timeouts and resets: the partial file stays for the next start
                raise DownloadError(f"download of {spec.file_name} interrupted after {done} bytes: {error}") from error
            finally:
                if bar is not None:
                    bar.close()
            if total is not None and done < total:
                raise DownloadError(f"download of {spec.file_name} ended after {done} of {total} bytes")
    if digest.hexdigest() != spec.sha256:
        partial.unlink(missing_ok=True)  # our own temporary file, never a user's
        raise DownloadError(f"{spec.file_name}: sha256 {digest.hexdigest()[:12]}... does not match the expected "
                            f"{spec.sha256[:12]}...; the partial download was removed")
    os.replace(partial, final)
    log.info("Downloaded %s (%d bytes, sha256 verified)", final.name, done)
    return final


def needs_first_run_download(registry: ModelRegistry, options: LaunchOptions) -> bool:
    if options.no_download_sd_model or options.ckpt:
        return False
    return all(entry.is_demo for entry in registry.checkpoints)


def failure_record(cache_dir: Path) -> Path:
    """Where a failed first-run download is remembered (delete it to let the next start try again)."""
    return Path(cache_dir) / FAILURE_FILE


def _earlier_failure(record: Path) -> str | None:
    try:
        value = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(value.get("error") or "unknown error") if isinstance(value, dict) else None


def _remember_failure(record: Path, spec: ModelDownload, error: str) -> None:
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record, json.dumps({"file": spec.file_name, "error": error, "time": int(time.time())}))
    except OSError as write_error:  # then the next start tries once more; never fail the server for this
        log.warning("Cannot record the failed download in %s: %s", record, write_error)


def start_first_run_download(registry: ModelRegistry, options: LaunchOptions, spec: ModelDownload = DEFAULT_MODEL,
                             *, endpoint: str | None = None, timeout: float = 10.0,
                             status: FirstRunStatus | None = None) -> threading.Thread | None:
    """Start the first-run download in a daemon thread when it applies (see the module doc); None otherwise,
    also when an earlier start's try failed (it is not retried). `status` follows it for the UI."""
    status = status if status is not None else FirstRunStatus()
    status.file_name = spec.file_name
    if not needs_first_run_download(registry, options):
        status.state = "off"
        return None
    folder = registry.paths.checkpoints
    record = failure_record(registry.paths.cache_dir)
    earlier = _earlier_failure(record)
    if earlier is not None:
        status.state, status.message = "failed", earlier
        log.info("Using the built-in demo model (images are noise). The first-run download of %s failed before "
                 "and is not retried; put a checkpoint in %s or use the Model downloader tab.", spec.file_name,
                 folder)
        return None

    def on_progress(done: int, total: int | None) -> None:
        status.done_bytes, status.total_bytes = done, total

    def run() -> None:
        try:
            path = download_model(spec, folder, endpoint=endpoint, timeout=timeout, on_progress=on_progress)
        except DownloadError as error:
            status.state, status.message = "failed", str(error)
            _remember_failure(record, spec, str(error))
            log.warning("No checkpoint found and %s could not be downloaded (%s); using the built-in demo model "
                        "(images are noise). This is not retried at the next start: put a checkpoint in %s, use "
                        "the Model downloader tab, or pass --no-download-sd-model.", spec.file_name, error, folder)
            return
        except Exception as error:  # a bug must not kill the server: log it, the demo model stays
            status.state, status.message = "failed", f"{type(error).__name__}: {error}"
            log.exception("The first-run model download failed")
            return
        record.unlink(missing_ok=True)
        registry.refresh_checkpoints()
        status.state = "done"
        log.info("%s is now the default checkpoint.", path.name)

    status.state = "downloading"
    log.info("No checkpoint found: downloading %s (as AUTOMATIC1111 does at the first start; "
             "--no-download-sd-model turns this off).", spec.file_name)
    thread = threading.Thread(target=run, name="sdweb-first-run-download", daemon=True)
    thread.start()
    return thread
