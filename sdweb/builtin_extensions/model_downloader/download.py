"""Streaming, resumable, verified model downloads into the models folders.

A download is written to `<dest>/.<name>.partial` (hidden, and not ending in a model suffix, so the model
registry never lists it), resumed with an HTTP Range request when that file exists, checked against the
size the server and the site announce and against the sha256 when known, fsynced, and only then given its
real name, never over an existing file.

Tokens (settings `model_downloader_hf_token`, `model_downloader_civitai_token`, else env `HF_TOKEN`,
`CIVITAI_API_TOKEN`) go in an `Authorization: Bearer` header, only to the host the download started at
(never to a redirect target on another host), and never into a URL, a log line or an error message.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from sdweb.builtin_extensions.model_downloader.sources import (
    DownloadSource,
    FetchJson,
    ModelFolders,
    ResolveHost,
    check_url,
    folder_for,
    resolve_source,
    validate_file_name,
)
from sdweb.extensions.api import UserError

log = logging.getLogger(__name__)

DownloadProgress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)

HF_TOKEN_SETTING = "model_downloader_hf_token"
CIVITAI_TOKEN_SETTING = "model_downloader_civitai_token"
TOKEN_SETTINGS = {"huggingface": HF_TOKEN_SETTING, "civitai": CIVITAI_TOKEN_SETTING}
TOKEN_ENV = {"huggingface": "HF_TOKEN", "civitai": "CIVITAI_API_TOKEN"}
PARTIAL_SUFFIX = ".partial"
MAX_REDIRECTS = 10
CHUNK_SIZE = 1024 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
_SHA256 = re.compile(r"[0-9a-f]{64}")


class DownloadCancelled(UserError):
    """The user stopped the download; the .partial file stays so the next attempt resumes."""

    def __init__(self, message: str, *, code: str = "download_cancelled", hint: str = "") -> None:
        super().__init__(message, code=code, hint=hint)


def token_for(source: DownloadSource, settings: Mapping[str, Any],
              environ: Mapping[str, str] | None = None) -> str | None:
    """The token for the source's site: its setting, else its environment variable; None for other sites."""
    key = TOKEN_SETTINGS.get(source.site)
    if key is None:
        return None
    value = str(settings.get(key) or "").strip()
    env = os.environ if environ is None else environ
    return value or env.get(TOKEN_ENV[source.site], "").strip() or None


def partial_path(dest_dir: Path, file_name: str) -> Path:
    return Path(dest_dir) / f".{file_name}{PARTIAL_SUFFIX}"


def _mask(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _http_error(status: int, name: str, host: str, site: str) -> UserError:
    if status in (401, 403):
        setting = TOKEN_SETTINGS.get(site)
        hint = (f"This model needs an access token: set {setting} in Settings (Model downloader)."
                if setting else "The server refused access; the file may need a login.")
        return UserError(f"{host} refused the download of {name} (HTTP {status}).", code="download_forbidden",
                         hint=hint)
    if status == 404:
        return UserError(f"{host} has no file {name} (HTTP 404).", code="download_not_found",
                         hint="Check the link; the file may have been moved or removed.")
    return UserError(f"{host} answered HTTP {status} for {name}.", code="download_failed",
                     hint="Try again later.")


def _get(session: requests.Session, url: str, *, offset: int, token: str | None, allow_local: bool,
         timeout: float, resolve_host: ResolveHost | None) -> tuple[requests.Response, str | None]:
    """GET with redirects followed by hand, each target checked; the token only goes to the first host.
    Returns the response and Hugging Face's X-Linked-Etag (the file's sha256) when a hop sent one."""
    origin = (urlsplit(url).hostname or "").lower()
    linked_sha = None
    for _hop in range(MAX_REDIRECTS + 1):
        check_url(url, allow_local=allow_local, resolve_host=resolve_host)
        host = (urlsplit(url).hostname or "").lower()
        headers = {"Accept-Encoding": "identity", "User-Agent": "sdweb-model-downloader"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        if token and host == origin:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=False)
        except requests.RequestException as error:
            raise UserError(f"Cannot reach {host} ({type(error).__name__}).", code="download_unreachable",
                            hint="Check your connection and try again.") from error
        etag = response.headers.get("X-Linked-Etag", "").strip('"W/ ').lower()
        linked_sha = etag if _SHA256.fullmatch(etag) else linked_sha
        if response.status_code in _REDIRECTS and response.headers.get("Location"):
            url = urljoin(url, response.headers["Location"])
            response.close()
            continue
        return response, linked_sha
    raise UserError(f"Too many redirects downloading from {origin}.", code="download_failed",
                    hint="The link may be broken; try it in a browser.")


def _content_range(response: requests.Response) -> tuple[int | None, int | None]:
    """(first byte, total size) of a 206/416 Content-Range, None where absent or '*'."""
    match = re.match(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)", response.headers.get("Content-Range", ""))
    if not match:
        return None, None
    first, total = match.groups()
    return (int(first) if first != "*" else None), (int(total) if total != "*" else None)


def _open(session: requests.Session, source: DownloadSource, partial: Path, *, token: str | None,
          allow_local: bool, timeout: float, resolve_host: ResolveHost | None
          ) -> tuple[requests.Response | None, int, int | None, str | None]:
    """Start (or resume) the transfer: (response or None when the partial is already complete, offset to
    write at, total size or None, sha256 the server announced or None)."""
    offset = partial.stat().st_size if partial.is_file() else 0
    host = urlsplit(source.url).hostname or "?"
    response, linked_sha = _get(session, source.url, offset=offset, token=token, allow_local=allow_local,
                                timeout=timeout, resolve_host=resolve_host)
    status = response.status_code
    if offset and status == 416:
        _first, total = _content_range(response)
        response.close()
        if total == offset:
            return None, offset, total, linked_sha
        log.info("model download: %s cannot resume (HTTP 416); starting again", source.file_name)
        partial.unlink(missing_ok=True)
        return _open(session, source, partial, token=token, allow_local=allow_local, timeout=timeout,
                     resolve_host=resolve_host)
    if status >= 400:
        response.close()
        raise _http_error(status, source.file_name, host, source.site)
    if status == 206:
        first, total = _content_range(response)
        if first != offset:
            response.close()
            partial.unlink(missing_ok=True)
            return _open(session, source, partial, token=token, allow_local=allow_local, timeout=timeout,
                         resolve_host=resolve_host)
        return response, offset, total, linked_sha
    if offset:
        log.info("model download: %s does not support resuming; starting %s again", host, source.file_name)
    length = response.headers.get("Content-Length", "")
    return response, 0, (int(length) if length.isdigit() else None), linked_sha


def _check_size(source: DownloadSource, total: int | None, partial: Path) -> None:
    """Refuse (and drop the partial, which belongs to another version of the file) when sizes disagree."""
    if total is not None and source.size is not None and abs(total - source.size) > source.size_tolerance:
        partial.unlink(missing_ok=True)
        raise UserError(f"The server's size for {source.file_name} ({total} bytes) differs from the site's "
                        f"({source.size} bytes).", code="download_size_mismatch",
                        hint="The file may have changed on the server; try again later.")


def _hasher_for(partial: Path, offset: int, expected: str | None) -> Any:
    if not expected:
        return None
    hasher = hashlib.sha256()
    if offset:
        with open(partial, "rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                hasher.update(chunk)
    return hasher


def _receive(response: requests.Response, partial: Path, offset: int, total: int | None, hasher: Any, *,
             progress: DownloadProgress, cancel: threading.Event | None, chunk_size: int, name: str) -> int:
    """Append the body to the partial file (fsynced, also when stopped); the byte count reached."""
    done = offset
    mode = "ab" if offset else "wb"
    with open(partial, mode) as handle:
        if offset:
            handle.truncate(offset)
        try:
            progress(done, total)
            for chunk in response.iter_content(chunk_size):
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelled(f"Download of {name} stopped at {done} bytes.",
                                            hint="Start it again to resume where it stopped.")
                handle.write(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                done += len(chunk)
                progress(done, total)
        except requests.RequestException as error:  # (a subclass of OSError: keep it first)
            raise UserError(f"The download of {name} was interrupted after {done} bytes "
                            f"({type(error).__name__}).", code="download_interrupted",
                            hint="Start it again to resume where it stopped.") from error
        except OSError as error:
            raise UserError(f"Cannot write {partial.name}: {error.strerror or error}.",
                            code="download_write_failed", hint="Check free disk space.") from error
        finally:
            handle.flush()
            os.fsync(handle.fileno())
    return done


def _publish(partial: Path, final: Path) -> None:
    """Give the finished file its name without ever replacing an existing file."""
    try:
        os.link(partial, final)  # fails if `final` exists, unlike a rename
    except FileExistsError:
        partial.unlink(missing_ok=True)
        raise _exists_error(final) from None
    except OSError:  # file system without hard links
        if final.exists():
            partial.unlink(missing_ok=True)
            raise _exists_error(final) from None
        os.replace(partial, final)
    partial.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _exists_error(final: Path) -> UserError:
    return UserError(f"{final.name} already exists in {final.parent}; it is not overwritten.",
                     code="file_exists", hint="Delete or rename the existing file, or pick another file name.")


def _verify(partial: Path, source: DownloadSource, done: int, total: int | None, hasher: Any,
            expected: str | None) -> None:
    if total is not None and done < total:
        raise UserError(f"The download of {source.file_name} ended early ({done} of {total} bytes).",
                        code="download_interrupted", hint="Start it again to resume where it stopped.")
    if total is not None and done > total:
        partial.unlink(missing_ok=True)
        raise UserError(f"The server sent more data for {source.file_name} than announced.",
                        code="download_size_mismatch", hint="Try again.")
    if total is None:
        _check_size(source, done, partial)
    if hasher is not None and expected:
        actual = hasher.hexdigest()
        if actual != expected:
            partial.unlink(missing_ok=True)
            raise UserError(f"{source.file_name} is damaged: sha256 {actual} does not match the expected "
                            f"{expected}; the download was deleted.", code="download_hash_mismatch",
                            hint="Download it again; if this repeats, the file on the server is not the one "
                                 "the site describes.")


def download(source: DownloadSource, dest_dir: Path, *, token: str | None = None, progress: DownloadProgress,
             cancel: threading.Event | None = None, allow_local: bool = False, timeout: float = 60.0,
             chunk_size: int = CHUNK_SIZE, resolve_host: ResolveHost | None = None) -> Path:
    """Download `source` into `dest_dir`, resuming a previous partial download; the final path.

    UserError when the file exists, the server refuses, the transfer breaks (the partial stays, so call
    again to resume), or the size or sha256 does not match (the partial is deleted)."""
    name = validate_file_name(source.file_name)
    dest = Path(dest_dir)
    final = dest / name
    if final.exists() or final.is_symlink():
        raise _exists_error(final)
    dest.mkdir(parents=True, exist_ok=True)
    partial = partial_path(dest, name)
    try:
        with requests.Session() as session:
            if allow_local:
                session.trust_env = False  # a proxy from the environment must not see local targets
            response, offset, total, linked_sha = _open(session, source, partial, token=token,
                                                        allow_local=allow_local, timeout=timeout,
                                                        resolve_host=resolve_host)
            expected = source.sha256 or (linked_sha if source.site == "huggingface" else None)
            shown = urlsplit(source.url)._replace(query="", fragment="").geturl()  # a query may hold a signature
            log.info("model download: %s -> %s%s", shown, final, f" (resuming at {offset})" if offset else "")
            with contextlib.closing(response) if response is not None else contextlib.nullcontext():
                _check_size(source, total, partial)
                if total is not None and total - offset > shutil.disk_usage(dest).free:
                    raise UserError(f"Not enough free space in {dest} for {name} ({total - offset} bytes more).",
                                    code="download_no_space", hint="Free some disk space and try again.")
                hasher = _hasher_for(partial, offset, expected)
                done = offset
                if response is not None:
                    done = _receive(response, partial, offset, total, hasher, progress=progress, cancel=cancel,
                                    chunk_size=chunk_size, name=name)
                else:
                    progress(done, total)
        _verify(partial, source, done, total, hasher, expected)
        _publish(partial, final)
    except UserError as error:
        error.message, error.hint = _mask(error.message, token), _mask(error.hint, token)
        log.warning("model download of %s failed: %s", name, error.message)
        raise
    log.info("model download: saved %s (%d bytes)", final, final.stat().st_size)
    return final


def fetch_model(url: str, *, paths: ModelFolders, settings: Mapping[str, Any], progress: DownloadProgress,
                kind: str | None = None, file_name: str | None = None, cancel: threading.Event | None = None,
                allow_local: bool = False, fetch_json: FetchJson | None = None) -> Path:
    """Resolve what the user pasted, pick the folder by kind, take the site's token from settings, download."""
    source = resolve_source(url, kind=kind, file_name=file_name, fetch_json=fetch_json, allow_local=allow_local)
    assert source.kind is not None  # resolve_source guarantees it
    return download(source, folder_for(source.kind, paths), token=token_for(source, settings),
                    progress=progress, cancel=cancel, allow_local=allow_local)
