"""Hostile files in the model folders and hostile images in requests, through the API of a real app: each one
gives a 4xx whose message names the file or the field, no pickle code ever runs, the next plain txt2img on the
tiny model works, and no user file is renamed, changed or deleted."""

from __future__ import annotations

import base64
import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import safetensors.torch
import torch
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from sdweb.cli import parse_options
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client
from sdweb.testing.tiny import save_tiny_file, tiny_file_content, write_tiny

SMALL = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2, "sampler_name": "Euler", "seed": 5}


class RunsCode:
    """Unpickling this writes the marker file (what a malicious .ckpt does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def _png(size=(64, 64), color=(90, 120, 200), text: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A few hundred bytes whose header claims 30000x30000 RGB (2.7 GB decoded), like a decompression bomb."""
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 4, 9)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", rows) + _chunk(b"IEND", b""))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _safetensors_bytes(header: dict, data: bytes = b"") -> bytes:
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + data


def _zip_bomb_ckpt(good_ckpt: bytes) -> bytes:
    """A torch zip whose entries are deflated, plus one 256 MB entry of zeros that compresses to ~250 KB."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good_ckpt)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        prefix = source.namelist()[0].split("/")[0]
        for name in source.namelist():
            bomb.writestr(name, source.read(name))
        with bomb.open(f"{prefix}/data/bomb", "w", force_zip64=True) as entry:
            chunk = b"\x00" * (1 << 20)
            for _ in range(256):
                entry.write(chunk)
    return out.getvalue()


@dataclass
class Case:
    name: str  # also what the error message must contain
    send: Callable[[TestClient], object]


class Folders:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.checkpoints = root / "models" / "Stable-diffusion"
        self.vae = root / "models" / "VAE"
        self.lora = root / "models" / "Lora"
        self.marker = root / "CODE-RAN"


def _write_hostile_files(folders: Folders, good: Path) -> None:
    data = good.read_bytes()
    ck = folders.checkpoints
    (ck / "zero-bytes.safetensors").write_bytes(b"")
    (ck / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    header_len = struct.unpack("<Q", data[:8])[0]
    flipped = bytearray(data)
    for offset in range(12, 8 + header_len, 97):  # bit flips all over the JSON header
        flipped[offset] ^= 0x20
    (ck / "bit-flipped.safetensors").write_bytes(bytes(flipped))
    (ck / "length-flipped.safetensors").write_bytes(bytes([data[0] ^ 0x01, *data[1:7], data[7] ^ 0x40]) + data[8:])
    huge = {"model.diffusion_model.input_blocks.0.0.weight": {"dtype": "F16", "shape": [10**6, 10**6],
                                                             "data_offsets": [0, 10**12]}}
    (ck / "claims-a-terabyte.safetensors").write_bytes(_safetensors_bytes(huge, b"\x00" * 64))
    (ck / "header-only.safetensors").write_bytes(data[: 8 + header_len])
    (ck / "not-json.safetensors").write_bytes(struct.pack("<Q", 64) + bytes(range(64)) + b"\x00" * 64)
    (ck / "lfs-pointer.safetensors").write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:00\n"
                                                 b"size 2132625894\n")
    torch.save({"state_dict": {"weight": torch.zeros(2), "payload": RunsCode(folders.marker)}}, ck / "runs-code.ckpt")
    with (ck / "runs-code-legacy.ckpt").open("wb") as handle:  # the pre-zip pickle format
        torch.save({"state_dict": RunsCode(folders.marker)}, handle, _use_new_zipfile_serialization=False)
    good_ckpt = io.BytesIO()
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, good_ckpt)
    (ck / "zip-bomb.ckpt").write_bytes(_zip_bomb_ckpt(good_ckpt.getvalue()))
    write_tiny("lora", ck / "a-lora.safetensors")
    write_tiny("vae", ck / "a-vae.safetensors")
    write_tiny("controlnet", ck / "a-controlnet.safetensors")
    save_tiny_file(tiny_file_content("esrgan"), ck / "an-upscaler.safetensors")
    safetensors.torch.save_file({"blocks.0.attn.qkv.weight": torch.zeros(4, 4), "head.bias": torch.zeros(4)},
                                ck / "unknown-architecture.safetensors")
    folders.vae.mkdir(parents=True, exist_ok=True)
    vae = folders.vae / "tiny.vae.safetensors"
    write_tiny("vae", vae)
    (folders.vae / "truncated-vae.safetensors").write_bytes(vae.read_bytes()[:300])
    folders.lora.mkdir(parents=True, exist_ok=True)
    lora = write_tiny("lora", folders.lora / "good-lora.safetensors")
    (folders.lora / "truncated-lora.safetensors").write_bytes(lora.read_bytes()[:500])


def _options_then_txt2img(name: str) -> Callable[[TestClient], object]:
    def send(client: TestClient) -> list:
        return [client.post("/sdapi/v1/options", json={"sd_model_checkpoint": name}),
                client.post("/sdapi/v1/txt2img", json=SMALL)]
    return send


def _override(name: str, key: str = "sd_model_checkpoint") -> Callable[[TestClient], object]:
    return lambda client: client.post("/sdapi/v1/txt2img", json={**SMALL, "override_settings": {key: name}})


CHECKPOINT_FILES = ["zero-bytes.safetensors", "truncated.safetensors", "bit-flipped.safetensors",
                    "length-flipped.safetensors", "claims-a-terabyte.safetensors", "header-only.safetensors",
                    "not-json.safetensors", "lfs-pointer.safetensors", "runs-code.ckpt", "runs-code-legacy.ckpt",
                    "zip-bomb.ckpt", "a-lora.safetensors", "a-vae.safetensors", "a-controlnet.safetensors",
                    "an-upscaler.safetensors", "unknown-architecture.safetensors"]
GOOD_INIT = _b64(_png())


def _cases() -> list[Case]:
    cases = [Case(name, _options_then_txt2img(name)) for name in CHECKPOINT_FILES]
    cases += [Case(name, _override(name)) for name in ("truncated.safetensors", "runs-code.ckpt", "a-lora.safetensors")]
    cases += [
        Case("truncated-vae.safetensors", _override("truncated-vae.safetensors", "sd_vae")),
        Case("truncated-lora", lambda c: c.post("/sdapi/v1/txt2img",
                                                json={**SMALL, "prompt": "a cat <lora:truncated-lora:1>"})),
        Case("<lora:good-lora:abc>", lambda c: c.post("/sdapi/v1/txt2img",
                                                      json={**SMALL, "prompt": "a cat <lora:good-lora:abc>"})),
        Case("image", lambda c: c.post("/sdapi/v1/png-info", json={"image": _b64(_bomb_png())})),
        Case("init_images[0]", lambda c: c.post("/sdapi/v1/img2img", json={**SMALL, "init_images": [_b64(_bomb_png())]})),
        Case("image", lambda c: c.post("/sdapi/v1/png-info",
                                       json={"image": _b64(_png(text={"parameters": "x" * (10 << 20)}))})),
        Case("init_images[0]", lambda c: c.post("/sdapi/v1/img2img",
                                                json={**SMALL, "init_images": [_b64(_png()[:-40])]})),
        Case("mask", lambda c: c.post("/sdapi/v1/img2img", json={**SMALL, "init_images": [GOOD_INIT],
                                                                  "mask": _b64(_png((32, 48), (255, 255, 255))[:50])})),
        Case("mask", lambda c: c.post("/sdapi/v1/img2img", json={**SMALL, "init_images": [GOOD_INIT],
                                                                  "mask": _b64(_png((32, 48), (255, 255, 255)))})),
    ]
    return cases


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted((root / "models").rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folders = Folders(tmp_path_factory.mktemp("hostile"))
    good = write_tiny("sd1", folders.checkpoints / "good.safetensors", seed=1)
    _write_hostile_files(folders, good)
    (folders.root / "config.json").write_text(json.dumps({"sd_model_checkpoint": good.name}))
    state = build_app_state(parse_options(["--data-dir", str(folders.root), "--nowebui"], {}))
    client = local_client(create_app(state), raise_server_exceptions=False)
    first = client.post("/sdapi/v1/txt2img", json=SMALL)
    assert first.status_code == 200, first.text
    yield client, folders
    state.queue.shutdown()


def _text(answer) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text
    return json.dumps(body) if not isinstance(body, dict) else " ".join(str(v) for v in body.values())


def test_hostile_inputs_give_clear_errors_and_leave_everything_as_it_was(app, summary):
    client, folders = app
    before = _snapshot(folders.root)
    cases = _cases()
    problems: list[str] = []
    clean = resized = 0
    for case in cases:
        sent = case.send(client)
        answers = sent if isinstance(sent, list) else [sent]
        statuses = [a.status_code for a in answers]
        refused = [a for a in answers if a.status_code >= 400]
        if case.name == "mask" and all(s == 200 for s in statuses):
            resized += 1  # a whole mask of another size is resized to the image, as in A1111
        elif any(s >= 500 for s in statuses) or not refused:
            problems.append(f"{case.name}: statuses {statuses}: {[_text(a)[:200] for a in answers]}")
        elif not all(case.name in _text(a) for a in refused):
            problems.append(f"{case.name}: not named in {[_text(a)[:300] for a in refused]}")
        else:
            clean += 1
        after = client.post("/sdapi/v1/txt2img", json=SMALL)
        if after.status_code != 200:
            problems.append(f"after {case.name}: the next txt2img failed: {_text(after)[:300]}")
    assert not folders.marker.exists(), "a pickle ran code"
    assert _snapshot(folders.root) == before, "a user file was changed, renamed or deleted"
    assert not problems, "\n".join(problems)
    assert len(cases) >= 20
    summary("hostile files", f"{clean + resized}/{len(cases)} handled ({clean} clean errors naming the file or field, "
                             f"{resized} resized like A1111), 0 code executed, 0 user files touched, "
                             f"{len(cases)} next txt2img ok")
