import hashlib
import json
import os
import threading

import pytest

from sdweb.cli import parse_options
from sdweb.config.paths import resolve_paths
from sdweb.models.hashing import HashCache, addnet_hash_safetensors, legacy_model_hash, sha256_file
from sdweb.models.registry import ModelRegistry


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def data_dir(tmp_path):
    models = tmp_path / "models" / "Stable-diffusion"
    _write(models / "a.safetensors", os.urandom(1_200_000))
    _write(models / "sub" / "b.ckpt", os.urandom(5000))
    _write(models / "a.vae.safetensors", b"vae")  # a VAE beside a checkpoint is not a checkpoint
    _write(models / "notes.txt", b"x")
    diffusers_dir = models / "my-diffusers"
    _write(diffusers_dir / "model_index.json", b"{}")
    _write(diffusers_dir / "unet" / "diffusion_pytorch_model.safetensors", b"x")
    return tmp_path


def _registry(data_dir, *argv):
    options = parse_options(["--data-dir", str(data_dir), *argv], {})
    registry = ModelRegistry(resolve_paths(options), no_hashing=options.no_hashing, extra_checkpoint=options.ckpt)
    registry.refresh_all()
    registry.wait_for_hashes()
    return registry


def test_hash_formats_match_a1111_definitions(tmp_path):
    data = os.urandom(1_200_000)
    path = _write(tmp_path / "x.bin", data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert legacy_model_hash(path) == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    assert legacy_model_hash(tmp_path / "missing") == "NOFILE"
    header = json.dumps({"__metadata__": {"ss_output_name": "x"}}).encode()
    safetensors = _write(tmp_path / "l.safetensors", len(header).to_bytes(8, "little") + header + b"TENSORDATA")
    assert addnet_hash_safetensors(safetensors) == hashlib.sha256(b"TENSORDATA").hexdigest()


def test_titles_names_and_aliases(data_dir):
    registry = _registry(data_dir)
    by_name = {entry.name: entry for entry in registry.checkpoints}
    assert set(by_name) == {"a.safetensors", "sub/b.ckpt", "my-diffusers"}
    a = by_name["a.safetensors"]
    full = sha256_file(a.path)
    assert a.title == f"a.safetensors [{full[:10]}]"
    assert a.short_title == f"a [{full[:10]}]"
    assert by_name["sub/b.ckpt"].model_name == "sub_b"
    assert by_name["my-diffusers"].title == "my-diffusers"
    for alias in (a.title, "a.safetensors", "a", full, full[:10], a.legacy_hash, f"a.safetensors [{a.legacy_hash}]",
                  f"a [{full[:10]}]", "a.safetensors [0000000000]"):
        assert registry.find_checkpoint(alias) == a, alias
    assert registry.find_checkpoint("b").name == "sub/b.ckpt"
    assert registry.find_checkpoint("nothing-like-it") is None


def test_no_hashing_keeps_titles_bare(data_dir):
    registry = _registry(data_dir, "--no-hashing")
    assert sorted(registry.checkpoint_titles()) == ["a.safetensors", "my-diffusers", "sub/b.ckpt"]


def test_rescan_reads_no_file_content(data_dir):
    first = _registry(data_dir)
    assert first.cache.files_read > 0
    second = _registry(data_dir)
    assert second.cache.files_read == 0
    assert sorted(second.checkpoint_titles()) == sorted(first.checkpoint_titles())


def test_changed_file_is_rehashed(data_dir):
    first = _registry(data_dir)
    path = data_dir / "models" / "Stable-diffusion" / "a.safetensors"
    before = first.find_checkpoint("a").title
    _write(path, os.urandom(1_200_001))
    second = _registry(data_dir)
    assert second.cache.files_read > 0
    assert second.find_checkpoint("a").title != before


def test_ckpt_dir_and_ckpt_flag(data_dir, tmp_path):
    extra = _write(tmp_path / "elsewhere" / "c.safetensors", b"c" * 100)
    other = _write(tmp_path / "more" / "d.safetensors", b"d" * 100)
    registry = _registry(data_dir, "--ckpt-dir", str(tmp_path / "more"), "--ckpt", str(extra))
    names = {entry.name for entry in registry.checkpoints}
    assert {"c.safetensors", "d.safetensors"} <= names
    assert registry.find_checkpoint("d").path == other


def test_vae_lora_embedding_lists(data_dir):
    _write(data_dir / "models" / "VAE" / "vae-ft-mse.safetensors", b"v")
    header = json.dumps({"__metadata__": {"ss_output_name": "cool_style"}}).encode()
    _write(data_dir / "models" / "Lora" / "style" / "my_lora.safetensors",
           len(header).to_bytes(8, "little") + header)
    _write(data_dir / "models" / "LyCORIS" / "lyco.safetensors", b"\x00" * 8)
    _write(data_dir / "embeddings" / "bad-hands.pt", b"e")
    _write(data_dir / "embeddings" / "bad-hands.preview.png", b"p")
    registry = _registry(data_dir)
    assert [v.name for v in registry.vaes] == ["a.vae.safetensors", "vae-ft-mse.safetensors"]
    assert {x.name for x in registry.loras} == {"my_lora", "lyco"}
    assert registry.find_lora("cool_style").name == "my_lora"
    assert [e.name for e in registry.embeddings] == ["bad-hands"]
    a = registry.find_checkpoint("a")
    assert registry.vae_near_checkpoint(a).name == "a.vae.safetensors"


def test_hash_cache_survives_a_broken_cache_file(tmp_path):
    cache_file = _write(tmp_path / "hashes.json", b"{not json")
    path = _write(tmp_path / "f.bin", b"abc")
    cache = HashCache(cache_file)
    assert cache.get(path, "sha256") == hashlib.sha256(b"abc").hexdigest()
    assert HashCache(cache_file).cached(path, "sha256") == hashlib.sha256(b"abc").hexdigest()


def test_a_second_caller_waits_for_the_first_hash_instead_of_reading_again(tmp_path):
    """The first load asks for the sha256 while the background hasher is reading the same file: one read."""
    data = os.urandom(3 * 1024 * 1024)
    path = _write(tmp_path / "model.safetensors", data)
    cache = HashCache(tmp_path / "hashes.json")
    reading, release = threading.Event(), threading.Event()

    def slow_progress(done, total):
        reading.set()
        release.wait(10)

    results = {}
    first = threading.Thread(target=lambda: results.setdefault("first", cache.get(path, "sha256", slow_progress)))
    first.start()
    assert reading.wait(10)
    second = threading.Thread(target=lambda: results.setdefault("second", cache.get(path, "sha256")))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting for the first reader, not reading the file itself
    release.set()
    first.join(10)
    second.join(10)
    assert results == {"first": hashlib.sha256(data).hexdigest(), "second": hashlib.sha256(data).hexdigest()}
    assert cache.files_read == 1


def test_module_files_and_comfyui_checkpoint_folders(data_dir, tmp_path):
    models = data_dir / "models"
    _write(models / "VAE" / "ae.safetensors", b"x")
    _write(models / "text_encoder" / "t5xxl_fp16.safetensors", b"x")
    _write(models / "text_encoder" / "notes.txt", b"x")
    _write(models / "clip" / "clip_l.safetensors", b"x")
    _write(models / "text_encoders" / "t5" / "t5xxl_fp8_e4m3fn.safetensors", b"x")
    _write(models / "text_encoders" / "t5xxl_fp16.safetensors", b"x")  # the same name again: listed once
    _write(tmp_path / "extra-te" / "clip_g.safetensors", b"x")
    _write(models / "diffusion_models" / "flux1-schnell.safetensors", b"x")
    _write(models / "unet" / "flux1-dev-Q8_0.gguf", b"x")
    _write(models / "Stable-diffusion" / "chroma-Q4_K.gguf", b"x")
    _write(models / "unet" / "a.safetensors", b"x")  # a name models/Stable-diffusion already has
    registry = _registry(data_dir, "--no-hashing", "--text-encoder-dir", str(tmp_path / "extra-te"))
    assert [m.name for m in registry.modules] == [
        "ae.safetensors", "clip_g.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors",
        "t5xxl_fp8_e4m3fn.safetensors"]
    assert registry.find_module("t5xxl_fp16").path == models / "text_encoder" / "t5xxl_fp16.safetensors"
    assert registry.find_module("ae.safetensors").path == models / "VAE" / "ae.safetensors"
    assert registry.find_module("missing") is None
    by_name = {entry.name: entry for entry in registry.checkpoints}
    assert {"flux1-schnell.safetensors", "flux1-dev-Q8_0.gguf", "chroma-Q4_K.gguf"} <= set(by_name)
    assert by_name["a.safetensors"].path == models / "Stable-diffusion" / "a.safetensors"
    assert registry.find_checkpoint("flux1-dev-Q8_0").path == models / "unet" / "flux1-dev-Q8_0.gguf"
