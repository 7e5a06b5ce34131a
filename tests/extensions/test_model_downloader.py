"""Model downloader: a local HTTP server on 127.0.0.1 with Range support; no network."""

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sdweb.builtin_extensions.model_downloader import (
    KINDS,
    DownloadCancelled,
    DownloadSource,
    download,
    fetch_model,
    folder_for,
    guess_kind,
    partial_path,
    resolve_source,
    token_for,
)
from sdweb.cli import parse_options
from sdweb.config.paths import resolve_paths
from sdweb.core.errors import UserError
from sdweb.models.registry import ModelRegistry
from sdweb.testing.tiny import write_tiny

SECRET = "s3cr3t-token-value-1234"


@dataclass
class ServerState:
    files: dict[str, bytes]
    ranges: bool = True
    cut_next: int | None = None  # send only this many body bytes of the next GET, then drop the connection
    token: str | None = None  # required Bearer token
    redirects: dict[str, str] = field(default_factory=dict)
    linked_etag: str | None = None
    seen: list[dict[str, str]] = field(default_factory=list)
    body_bytes: int = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, status, headers, body=b""):
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        return body

    def do_GET(self):  # noqa: N802 (http.server's name)
        state: ServerState = self.server.state
        state.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        if self.path in state.redirects:
            self._reply(302, {"Location": state.redirects[self.path]})
            return
        if state.token and self.headers.get("Authorization") != f"Bearer {state.token}":
            self._reply(401, {})
            return
        data = state.files.get(self.path)
        if data is None:
            self._reply(404, {})
            return
        extra = {"X-Linked-Etag": f'"{state.linked_etag}"'} if state.linked_etag else {}
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and state.ranges:
            start = int(match.group(1))
            if start >= len(data):
                self._reply(416, {"Content-Range": f"bytes */{len(data)}"})
                return
            body = self._reply(206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}", **extra},
                               data[start:])
        else:
            body = self._reply(200, extra, data)
        if state.cut_next is not None:
            body, state.cut_next = body[:state.cut_next], None
            self.close_connection = True
        self.wfile.write(body)
        self.wfile.flush()
        state.body_bytes += len(body)


@pytest.fixture(scope="module")
def lora_bytes(tmp_path_factory):
    return write_tiny("lora", tmp_path_factory.mktemp("src") / "tiny.safetensors", seed=1).read_bytes()


@pytest.fixture
def server(lora_bytes):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.state = ServerState(files={"/files/tiny-lora.safetensors": lora_bytes})
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def paths(tmp_path):
    data_paths = resolve_paths(parse_options(["--data-dir", str(tmp_path)], {}))
    data_paths.ensure_folders()
    return data_paths


def _source(server, lora_bytes, sha256=True, site="direct", size=None, url=None):
    return DownloadSource(url=url or f"{server.base}/files/tiny-lora.safetensors", file_name="tiny-lora.safetensors",
                          site=site, kind="lora", sha256=hashlib.sha256(lora_bytes).hexdigest() if sha256 else None,
                          size=size)


def _download(source, dest, progress=None, cancel=None, token=None):
    return download(source, dest, token=token, progress=progress or (lambda done, total: None), cancel=cancel,
                    allow_local=True, chunk_size=4096)


def _lora_names(paths):
    registry = ModelRegistry(paths, no_hashing=True)
    registry.refresh_loras()
    return [entry.name for entry in registry.loras]


def test_download_into_lora_folder_with_progress(server, lora_bytes, paths):
    calls = []
    source = resolve_source(f"{server.base}/files/tiny-lora.safetensors", allow_local=True)
    assert source.kind == "lora" and source.site == "direct"
    path = download(source, folder_for(source.kind, paths), progress=lambda d, t: calls.append((d, t)),
                    allow_local=True, chunk_size=4096)
    assert path == paths.lora / "tiny-lora.safetensors" and path.read_bytes() == lora_bytes
    assert calls[0] == (0, len(lora_bytes)) and calls[-1] == (len(lora_bytes), len(lora_bytes))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) > 2
    assert sorted(p.name for p in paths.lora.iterdir()) == ["tiny-lora.safetensors"]
    assert _lora_names(paths) == ["tiny-lora"]
    assert "range" not in server.state.seen[0]


def test_interrupted_download_leaves_partial_and_resumes_with_range(server, lora_bytes, paths):
    size = len(lora_bytes)
    server.state.cut_next = size // 2
    with pytest.raises(UserError) as caught:
        _download(_source(server, lora_bytes), paths.lora)
    assert caught.value.code == "download_interrupted" and "resume" in caught.value.hint
    partial = partial_path(paths.lora, "tiny-lora.safetensors")
    assert 0 < partial.stat().st_size < size
    assert not (paths.lora / "tiny-lora.safetensors").exists()
    assert _lora_names(paths) == []  # the registry never lists a .partial file

    have = partial.stat().st_size
    path = _download(_source(server, lora_bytes), paths.lora)
    assert path.read_bytes() == lora_bytes and not partial.exists()
    assert server.state.seen[-1]["range"] == f"bytes={have}-"
    assert server.state.body_bytes < 2 * size


def test_cancel_leaves_partial_and_the_next_call_resumes(server, lora_bytes, paths):
    cancel = threading.Event()

    def progress(done, total):
        if done >= 8192:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        _download(_source(server, lora_bytes), paths.lora, progress=progress, cancel=cancel)
    partial = partial_path(paths.lora, "tiny-lora.safetensors")
    assert partial.stat().st_size == 8192
    path = _download(_source(server, lora_bytes), paths.lora)
    assert path.read_bytes() == lora_bytes
    assert server.state.seen[-1]["range"] == "bytes=8192-"


def test_server_without_range_support_starts_again(server, lora_bytes, paths):
    server.state.ranges = False
    partial = partial_path(paths.lora, "tiny-lora.safetensors")
    partial.write_bytes(b"\xff" * 1000)  # not a prefix of the file: a 200 reply must replace it
    path = _download(_source(server, lora_bytes), paths.lora)
    assert path.read_bytes() == lora_bytes and not partial.exists()


def test_complete_partial_is_verified_and_published_after_416(server, lora_bytes, paths):
    partial_path(paths.lora, "tiny-lora.safetensors").write_bytes(lora_bytes)
    path = _download(_source(server, lora_bytes), paths.lora)
    assert path.read_bytes() == lora_bytes and server.state.body_bytes == 0


def test_wrong_sha256_is_rejected_and_nothing_is_left(server, lora_bytes, paths):
    source = DownloadSource(url=f"{server.base}/files/tiny-lora.safetensors", file_name="tiny-lora.safetensors",
                            site="direct", kind="lora", sha256="0" * 64)
    with pytest.raises(UserError) as caught:
        _download(source, paths.lora)
    actual = hashlib.sha256(lora_bytes).hexdigest()
    message = caught.value.message
    assert caught.value.code == "download_hash_mismatch"
    assert "tiny-lora.safetensors" in message and "0" * 64 in message and actual in message
    assert list(paths.lora.iterdir()) == []


def test_huggingface_linked_etag_is_checked(server, lora_bytes, paths):
    server.state.linked_etag = "1" * 64
    with pytest.raises(UserError, match="1" * 64):
        _download(_source(server, lora_bytes, sha256=False, site="huggingface"), paths.lora)
    assert list(paths.lora.iterdir()) == []


def test_size_disagreeing_with_metadata_is_refused(server, lora_bytes, paths):
    with pytest.raises(UserError) as caught:
        _download(_source(server, lora_bytes, size=len(lora_bytes) + 10_000), paths.lora)
    assert caught.value.code == "download_size_mismatch" and list(paths.lora.iterdir()) == []


def test_existing_file_is_not_overwritten(server, lora_bytes, paths):
    (paths.lora / "tiny-lora.safetensors").write_bytes(b"mine")
    with pytest.raises(UserError) as caught:
        _download(_source(server, lora_bytes), paths.lora)
    assert caught.value.code == "file_exists"
    assert (paths.lora / "tiny-lora.safetensors").read_bytes() == b"mine"
    assert server.state.seen == []


def test_missing_file_is_a_clear_error(server, lora_bytes, paths):
    with pytest.raises(UserError) as caught:
        _download(_source(server, lora_bytes, url=f"{server.base}/files/nope.safetensors"), paths.lora)
    assert caught.value.code == "download_not_found" and list(paths.lora.iterdir()) == []


@pytest.mark.parametrize("url", ["file:///etc/passwd.safetensors", "ftp://example.com/x.safetensors",
                                 "javascript:alert(1)", "x.safetensors", "http:///x.safetensors"])
def test_file_and_other_schemes_are_refused(url, paths):
    with pytest.raises(UserError) as caught:
        resolve_source(url, kind="lora", allow_local=True)
    assert caught.value.code == "invalid_download_url"
    source = DownloadSource(url=url, file_name="x.safetensors", site="direct", kind="lora")
    with pytest.raises(UserError):
        download(source, paths.lora, progress=lambda d, t: None, allow_local=True)
    assert list(paths.lora.iterdir()) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x.safetensors", "http://localhost/x.safetensors",
                                 "http://[::1]/x.safetensors", "http://[::ffff:127.0.0.1]/x.safetensors",
                                 "http://10.1.2.3/x.safetensors", "http://169.254.169.254/x.safetensors",
                                 "http://0.0.0.0/x.safetensors", "http://lan-host/x.safetensors"])
def test_local_targets_are_refused_unless_allowed(url):
    def resolve(host):
        return ["192.168.1.20"] if host == "lan-host" else ["127.0.0.1"]

    with pytest.raises(UserError) as caught:
        resolve_source(url, kind="lora", resolve_host=resolve)
    assert caught.value.code == "download_local_refused"
    assert resolve_source(url, kind="lora", allow_local=True).url == url


def test_redirect_to_a_local_target_is_refused(server, lora_bytes, paths):
    server.state.redirects["/go"] = f"{server.base}/files/tiny-lora.safetensors"
    source = DownloadSource(url=f"{server.base}/go", file_name="x.safetensors", site="direct", kind="lora")
    resolve_public = {"public.example": ["93.184.216.34"]}
    with pytest.raises(UserError) as caught:
        download(source, paths.lora, progress=lambda d, t: None, allow_local=False,
                 resolve_host=lambda host: resolve_public.get(host, ["127.0.0.1"]))
    assert caught.value.code == "download_local_refused" and server.state.seen == []


def test_token_is_sent_but_never_logged_or_shown(server, lora_bytes, paths, caplog):
    caplog.set_level(logging.DEBUG)
    server.state.token = "right-token"
    source = _source(server, lora_bytes, site="huggingface")
    with pytest.raises(UserError) as caught:
        _download(source, paths.lora, token=SECRET)
    error = caught.value
    assert error.code == "download_forbidden" and "model_downloader_hf_token" in error.hint
    assert server.state.seen[-1]["authorization"] == f"Bearer {SECRET}"
    path = _download(source, paths.lora, token="right-token")
    assert path.read_bytes() == lora_bytes
    for text in (str(error), error.message, error.hint, repr(error.args), caplog.text):
        assert SECRET not in text and "right-token" not in text


def test_token_is_not_sent_to_another_host_after_a_redirect(server, lora_bytes, paths):
    port = server.server_address[1]
    server.state.redirects["/hop"] = f"http://localhost:{port}/files/tiny-lora.safetensors"
    source = DownloadSource(url=f"{server.base}/hop", file_name="tiny-lora.safetensors", site="huggingface",
                            kind="lora")
    path = _download(source, paths.lora, token=SECRET)
    assert path.read_bytes() == lora_bytes
    first, second = server.state.seen
    assert first["authorization"] == f"Bearer {SECRET}" and "authorization" not in second


def test_fetch_model_picks_folder_and_token_from_settings(server, lora_bytes, paths):
    server.state.files["/files/sd15-pruned.ckpt"] = lora_bytes
    path = fetch_model(f"{server.base}/files/sd15-pruned.ckpt", paths=paths, settings={},
                       progress=lambda d, t: None, allow_local=True)
    assert path == paths.checkpoints / "sd15-pruned.ckpt"


# -- sources (pure, metadata injected) --------------------------------------------------------------------------
def test_huggingface_blob_link_becomes_resolve():
    source = resolve_source("https://huggingface.co/user/repo/blob/main/sub/my_lora.safetensors?download=true",
                            resolve_host=lambda host: ["18.0.0.1"])
    assert source.url == "https://huggingface.co/user/repo/resolve/main/sub/my_lora.safetensors"
    assert (source.site, source.file_name, source.kind) == ("huggingface", "my_lora.safetensors", "lora")
    vae = resolve_source("https://huggingface.co/stabilityai/sdxl-vae/resolve/main/sdxl_vae.safetensors",
                         resolve_host=lambda host: ["18.0.0.1"])
    assert vae.kind == "vae" and vae.url.endswith("/resolve/main/sdxl_vae.safetensors")
    with pytest.raises(UserError, match="does not point at a file"):
        resolve_source("https://huggingface.co/user/repo", kind="lora", resolve_host=lambda host: ["18.0.0.1"])


CIVITAI_VERSION = {
    "id": 456, "model": {"name": "Cool", "type": "LORA"},
    "files": [
        {"name": "cool-training-data.zip", "type": "Training Data", "sizeKB": 10, "hashes": {}},
        {"name": "cool.safetensors", "type": "Model", "primary": True, "sizeKB": 36.5,
         "hashes": {"SHA256": "AB" * 32, "AutoV2": "ABABABABAB"}},
    ],
}


def test_civitai_page_uses_version_metadata():
    asked = []

    def fetch(url):
        asked.append(url)
        if url.endswith("/model-versions/456"):
            return CIVITAI_VERSION
        return {"type": "Checkpoint", "modelVersions": [{**CIVITAI_VERSION, "id": 789}]}

    public = {"resolve_host": lambda host: ["104.18.0.1"], "fetch_json": fetch}
    source = resolve_source("https://civitai.com/models/123/cool?modelVersionId=456", **public)
    assert asked == ["https://civitai.com/api/v1/model-versions/456"]
    assert source.url == "https://civitai.com/api/download/models/456"
    assert (source.file_name, source.kind, source.sha256) == ("cool.safetensors", "lora", "ab" * 32)
    assert source.size == 37376 and source.site == "civitai"
    latest = resolve_source("https://civitai.com/models/123", **public)
    assert asked[-1] == "https://civitai.com/api/v1/models/123"
    assert latest.url.endswith("/models/789") and latest.kind == "checkpoint"
    direct = resolve_source("https://civitai.com/api/download/models/456", kind="embedding", **public)
    assert direct.kind == "embedding"  # the user's choice wins


@pytest.mark.parametrize(("name", "kind"), [
    ("sdxl_vae.safetensors", "vae"), ("kl-f8-anime2.vae.pt", "vae"), ("add_detail_lora.safetensors", "lora"),
    ("control_v11p_sd15_canny.pth", "controlnet"), ("4x-UltraSharp.pth", "upscaler"),
    ("RealESRGAN_x4plus.pth", "upscaler"), ("v1-5-pruned-emaonly.safetensors", "checkpoint"),
    ("model.ckpt", "checkpoint"), ("mystery.safetensors", None), ("unknown.bin", None),
])
def test_guess_kind_table(name, kind):
    assert guess_kind(name) == kind


def test_unknown_kind_asks_the_user(server):
    with pytest.raises(UserError) as caught:
        resolve_source(f"{server.base}/files/mystery.safetensors", allow_local=True)
    assert caught.value.code == "unknown_model_kind" and "checkpoint" in caught.value.hint
    with pytest.raises(UserError, match="file name"):
        resolve_source(f"{server.base}/download?id=3", kind="lora", allow_local=True)
    with pytest.raises(UserError):
        resolve_source(f"{server.base}/files/x.safetensors", kind="hypernet", allow_local=True)


def test_kind_folders_match_data_paths(paths):
    expected = {"checkpoint": paths.models_dir / "Stable-diffusion", "vae": paths.models_dir / "VAE",
                "lora": paths.models_dir / "Lora", "controlnet": paths.models_dir / "ControlNet",
                "upscaler": paths.models_dir / "ESRGAN", "embedding": paths.data_dir / "embeddings"}
    assert {kind: folder_for(kind, paths) for kind in KINDS} == expected


def test_token_for_settings_and_environment():
    hf = DownloadSource(url="https://huggingface.co/a/b/resolve/main/x.safetensors", file_name="x.safetensors",
                        site="huggingface")
    civitai = DownloadSource(url="https://civitai.com/api/download/models/1", file_name="x.safetensors",
                             site="civitai")
    direct = DownloadSource(url="https://example.com/x.safetensors", file_name="x.safetensors", site="direct")
    settings = {"model_downloader_hf_token": " hf-tok ", "model_downloader_civitai_token": ""}
    env = {"CIVITAI_API_TOKEN": "env-civ", "HF_TOKEN": "env-hf"}
    assert token_for(hf, settings, env) == "hf-tok"
    assert token_for(civitai, settings, env) == "env-civ"
    assert token_for(civitai, settings, {}) is None
    assert token_for(direct, settings, env) is None


@pytest.mark.parametrize("name", ["../x.safetensors", ".hidden.safetensors", "a/b.safetensors", "a\\b.safetensors",
                                  "c:x.safetensors", "notes.txt", "x\n.safetensors"])
def test_unsafe_file_names_are_refused(name, server):
    with pytest.raises(UserError) as caught:
        resolve_source(f"{server.base}/files/x.safetensors", kind="lora", file_name=name, allow_local=True)
    assert caught.value.code == "invalid_file_name"
    ok = resolve_source(f"{server.base}/files/x.safetensors", kind="lora", file_name="a..b.safetensors",
                        allow_local=True)
    assert ok.file_name == "a..b.safetensors"
