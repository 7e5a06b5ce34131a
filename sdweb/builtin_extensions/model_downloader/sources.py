"""Where a model comes from: Hugging Face, CivitAI or a direct http(s) URL, resolved to one DownloadSource.

Only http(s) is accepted. With `allow_local=False` (the default) URLs whose host is, or resolves to, a
loopback, private, link-local or otherwise non-public address are refused, so a page that can reach this
server cannot make it fetch from the local network; tests and users with a LAN mirror pass
`allow_local=True`. (A host that resolves differently at connect time is not caught by this check; every
redirect is checked again by download.py.)

CivitAI metadata comes from its public API through an injectable `fetch_json(url) -> object`, so tests and
offline use never touch the network.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

from sdweb.extensions.api import UserError

KINDS = ("checkpoint", "vae", "lora", "controlnet", "upscaler", "embedding")
# kind -> DataPaths attribute (sdweb.config.paths): models/Stable-diffusion, models/VAE, models/Lora, ...
KIND_FOLDERS = {"checkpoint": "checkpoints", "vae": "vae", "lora": "lora", "controlnet": "controlnet",
                "upscaler": "esrgan", "embedding": "embeddings"}
CIVITAI_TYPES = {"checkpoint": "checkpoint", "lora": "lora", "locon": "lora", "dora": "lora",
                 "textualinversion": "embedding", "vae": "vae", "controlnet": "controlnet", "upscaler": "upscaler"}
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
HF_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co")
CIVITAI_HOSTS = ("civitai.com", "www.civitai.com")
CIVITAI_API = "https://civitai.com/api/v1"
CIVITAI_DOWNLOAD = "https://civitai.com/api/download/models"

FetchJson = Callable[[str], Any]
ResolveHost = Callable[[str], list[str]]

_KIND_HINT = f"Pick the kind of model ({', '.join(KINDS)}) so it goes into the right folder."


@dataclass(frozen=True)
class DownloadSource:
    url: str  # what is fetched (never contains a token)
    file_name: str
    site: str  # "huggingface", "civitai" or "direct"
    kind: str | None = None
    sha256: str | None = None  # lower-case hex, checked after the download when known
    size: int | None = None  # bytes, from the site's metadata
    size_tolerance: int = 0  # CivitAI gives sizes in (fractional) KB
    page_url: str = ""  # what the user gave


class ModelFolders(Protocol):
    """The DataPaths attributes the downloader needs (sdweb.config.paths.DataPaths has them)."""

    checkpoints: Path
    vae: Path
    lora: Path
    controlnet: Path
    esrgan: Path
    embeddings: Path


def folder_for(kind: str, paths: ModelFolders) -> Path:
    """The folder a model of `kind` goes to: models/Stable-diffusion, models/VAE, models/Lora, ..."""
    if kind not in KIND_FOLDERS:
        raise UserError(f"Unknown model kind {kind!r}.", code="unknown_model_kind", hint=_KIND_HINT)
    return Path(getattr(paths, KIND_FOLDERS[kind]))


def guess_kind(file_name: str) -> str | None:
    """The kind a file name suggests (e.g. `*vae*` -> vae, `4x*.pth` -> upscaler), or None."""
    name = file_name.lower()
    suffix = Path(name).suffix
    if re.search(r"(^|[^a-z])vae([^a-z]|$)", name):
        return "vae"
    if re.search(r"lora|locon|lycoris", name):
        return "lora"
    if re.search(r"controlnet|control_|control-lora|t2i-adapter", name):
        return "controlnet"
    if suffix == ".pth" and re.search(r"esrgan|upscal|swinir|[x_-]?[248]x|x[248]([^0-9]|$)", name):
        return "upscaler"
    if re.search(r"embedding|textual.?inversion", name):
        return "embedding"
    if suffix == ".ckpt" or re.search(r"pruned|sd_xl_base|sd_xl_refiner|checkpoint|v1-5|v2-1|768-v", name):
        return "checkpoint"
    return None


def validate_file_name(name: str) -> str:
    """A plain, visible file name with a model suffix; UserError otherwise."""
    text = (name or "").strip()
    hint = f"Give a file name ending in one of {', '.join(MODEL_SUFFIXES)}, without folders."
    if not text or "/" in text or "\\" in text or ":" in text or text.startswith(".") \
            or any(ord(ch) < 32 for ch in text):
        raise UserError(f"The file name {text!r} is not allowed.", code="invalid_file_name", hint=hint)
    if not text.lower().endswith(MODEL_SUFFIXES):
        raise UserError(f"{text!r} does not look like a model file.", code="invalid_file_name", hint=hint)
    return text


# -- what a URL may point at ----------------------------------------------------------------------------------
def _resolve_host(host: str) -> list[str]:
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError) as error:
        raise UserError(f"Cannot resolve the host {host!r}.", code="download_unreachable",
                        hint="Check the address and your connection.") from error


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_local: bool, resolve_host: ResolveHost | None = None) -> str:
    """The URL when it is http(s) and (unless allow_local) its host is public; UserError otherwise."""
    parts = urlsplit((url or "").strip())
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "no scheme"
        raise UserError(f"Downloads must use http:// or https:// (got {scheme}).", code="invalid_download_url",
                        hint="Paste a Hugging Face, CivitAI or direct https:// link to the model file.")
    host = parts.hostname
    if not host:
        raise UserError("The download URL has no host.", code="invalid_download_url",
                        hint="Paste the whole link, starting with https://.")
    if allow_local:
        return parts.geturl()
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = (resolve_host or _resolve_host)(host)
    if not addresses or not all(_is_public(address) for address in addresses):
        raise UserError(f"Refusing to download from {host}: it is a local or private network address.",
                        code="download_local_refused",
                        hint="Only public hosts are allowed (allow_local is off); copy local files yourself.")
    return parts.geturl()


# -- sites ----------------------------------------------------------------------------------------------------
def _huggingface(url: str, kind: str | None, file_name: str | None) -> DownloadSource:
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.strip("/").split("/")]
    offset = 1 if segments and segments[0] in ("datasets", "spaces") else 0
    repo, rest = segments[offset:offset + 2], segments[offset + 2:]
    if len(repo) < 2 or len(rest) < 3 or rest[0] not in ("blob", "resolve"):
        raise UserError("This Hugging Face link does not point at a file.", code="invalid_download_url",
                        hint="Open the file on huggingface.co and copy its link "
                             "(https://huggingface.co/<user>/<repo>/blob/main/<file>).")
    path = "/".join(quote(s) for s in segments[:offset] + repo + ["resolve"] + rest[1:])
    resolved = urlunsplit(("https", "huggingface.co", "/" + path, "", ""))
    name = validate_file_name(file_name or rest[-1])
    return DownloadSource(url=resolved, file_name=name, site="huggingface", kind=kind or guess_kind(name),
                          page_url=url)


def _fetch_json(url: str) -> Any:
    import requests

    try:
        response = requests.get(url, timeout=30, headers={"Accept": "application/json"})
    except requests.RequestException as error:
        raise UserError(f"Cannot reach CivitAI ({type(error).__name__}).", code="download_unreachable",
                        hint="Check your connection and try again.") from error
    if response.status_code == 404:
        raise UserError("CivitAI has no such model version.", code="download_not_found",
                        hint="Check the link; the version may have been removed.")
    if response.status_code >= 400:
        raise UserError(f"CivitAI answered HTTP {response.status_code}.", code="download_failed",
                        hint="Try again later, or download the file in the browser.")
    try:
        return response.json()
    except ValueError as error:
        raise UserError("CivitAI sent something that is not JSON.", code="download_failed",
                        hint="Try again later.") from error


def _civitai_ids(url: str) -> tuple[str | None, str | None]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    version = (query.get("modelVersionId") or [None])[0]
    match = re.match(r"^/api/download/models/(\d+)", parts.path)
    if match:
        return None, match.group(1)
    match = re.match(r"^/models/(\d+)", parts.path)
    if not match and not version:
        raise UserError("This CivitAI link is not a model page.", code="invalid_download_url",
                        hint="Use a link like https://civitai.com/models/<id>?modelVersionId=<version>.")
    if version and not version.isdigit():
        raise UserError("The CivitAI modelVersionId is not a number.", code="invalid_download_url",
                        hint="Copy the link from the model page again.")
    return (match.group(1) if match else None), version


def _pick_file(files: Any) -> Mapping[str, Any]:
    candidates = [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []
    for test in (lambda f: f.get("primary"), lambda f: f.get("type") == "Model", lambda f: True):
        for item in candidates:
            if test(item):
                return item
    raise UserError("This CivitAI version lists no files.", code="download_not_found",
                    hint="Pick another version of the model.")


def _civitai(url: str, kind: str | None, file_name: str | None, fetch_json: FetchJson) -> DownloadSource:
    model_id, version_id = _civitai_ids(url)
    if version_id:
        version = fetch_json(f"{CIVITAI_API}/model-versions/{version_id}")
        model_type = ((version.get("model") or {}) if isinstance(version, dict) else {}).get("type")
    else:
        model = fetch_json(f"{CIVITAI_API}/models/{model_id}")
        versions = model.get("modelVersions") if isinstance(model, dict) else None
        if not isinstance(versions, list) or not versions or not isinstance(versions[0], dict):
            raise UserError("This CivitAI model has no downloadable version.", code="download_not_found",
                            hint="Open the model page and pick a version.")
        version, model_type = versions[0], model.get("type")
        version_id = str(version.get("id", ""))
    if not isinstance(version, dict) or not str(version_id).isdigit():
        raise UserError("CivitAI's answer has no model version.", code="download_failed", hint="Try again later.")
    chosen = _pick_file(version.get("files"))
    hashes = chosen.get("hashes") if isinstance(chosen.get("hashes"), dict) else {}
    sha256 = str(hashes.get("SHA256") or "").lower() or None
    size_kb = chosen.get("sizeKB")
    size = round(float(size_kb) * 1024) if isinstance(size_kb, int | float) and size_kb > 0 else None
    name = validate_file_name(file_name or str(chosen.get("name") or ""))
    kind = kind or CIVITAI_TYPES.get(str(model_type or "").lower()) or guess_kind(name)
    return DownloadSource(url=f"{CIVITAI_DOWNLOAD}/{version_id}", file_name=name, site="civitai", kind=kind,
                          sha256=sha256 if sha256 and re.fullmatch(r"[0-9a-f]{64}", sha256) else None,
                          size=size, size_tolerance=1024 if size else 0, page_url=url)


def resolve_source(url: str, *, kind: str | None = None, file_name: str | None = None,
                   fetch_json: FetchJson | None = None, allow_local: bool = False,
                   resolve_host: ResolveHost | None = None) -> DownloadSource:
    """Turn what the user pasted into a DownloadSource. `kind` and `file_name` override what the site says;
    the kind must be known in the end (UserError asking the user to pick one otherwise)."""
    checked = check_url(url, allow_local=allow_local, resolve_host=resolve_host)
    if kind is not None and kind not in KINDS:
        raise UserError(f"Unknown model kind {kind!r}.", code="unknown_model_kind", hint=_KIND_HINT)
    host = (urlsplit(checked).hostname or "").lower()
    if host in HF_HOSTS:
        source = _huggingface(checked, kind, file_name)
    elif host in CIVITAI_HOSTS:
        source = _civitai(checked, kind, file_name, fetch_json or _fetch_json)
    else:
        last = unquote(urlsplit(checked).path.rstrip("/").rsplit("/", 1)[-1])
        if not file_name and not last.lower().endswith(MODEL_SUFFIXES):
            raise UserError("Cannot tell the file name from this link.", code="invalid_file_name",
                            hint="Give a file name (e.g. my-model.safetensors) or use a link that ends in one.")
        name = validate_file_name(file_name or last)
        source = DownloadSource(url=checked, file_name=name, site="direct", kind=kind or guess_kind(name),
                                page_url=url)
    if source.kind is None:
        raise UserError(f"Cannot tell what kind of model {source.file_name} is.", code="unknown_model_kind",
                        hint=_KIND_HINT)
    return source
