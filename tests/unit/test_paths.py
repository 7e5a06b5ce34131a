from pathlib import Path

from sdweb.cli import parse_options
from sdweb.config.paths import resolve_paths


def test_default_layout_under_data_dir(tmp_path):
    paths = resolve_paths(parse_options(["--data-dir", str(tmp_path)], {}))
    assert paths.data_dir == tmp_path.resolve()
    assert paths.checkpoints == tmp_path.resolve() / "models" / "Stable-diffusion"
    assert paths.vae == tmp_path.resolve() / "models" / "VAE"
    assert paths.lora == tmp_path.resolve() / "models" / "Lora"
    assert paths.embeddings == tmp_path.resolve() / "embeddings"
    assert paths.config_file == tmp_path.resolve() / "config.json"
    assert paths.styles_files == (tmp_path.resolve() / "styles.csv",)


def test_flags_override_folders(tmp_path):
    argv = ["--data-dir", str(tmp_path / "d"), "--models-dir", str(tmp_path / "m"), "--ckpt-dir",
            str(tmp_path / "ck"), "--vae-dir", str(tmp_path / "v"), "--lora-dir", str(tmp_path / "l"),
            "--embeddings-dir", str(tmp_path / "e"), "--esrgan-models-path", str(tmp_path / "es"),
            "--text-encoder-dir", str(tmp_path / "te")]
    paths = resolve_paths(parse_options(argv, {}))
    assert paths.checkpoints == (tmp_path / "m" / "Stable-diffusion").resolve()
    assert paths.extra_checkpoint_dir == (tmp_path / "ck").resolve()
    assert paths.extra_vae_dir == (tmp_path / "v").resolve()
    assert paths.lora == (tmp_path / "l").resolve()
    assert paths.embeddings == (tmp_path / "e").resolve()
    assert paths.esrgan == (tmp_path / "es").resolve()
    assert paths.extra_text_encoder_dir == (tmp_path / "te").resolve()
    assert paths.text_encoder == (tmp_path / "m" / "text_encoder").resolve()
    assert paths.diffusion_models == ((tmp_path / "m" / "diffusion_models").resolve(), (tmp_path / "m" / "unet").resolve())
    assert paths.outputs == (tmp_path / "d" / "outputs").resolve()


def test_ensure_folders_creates_a1111_folders(tmp_path):
    paths = resolve_paths(parse_options(["--data-dir", str(tmp_path)], {}))
    paths.ensure_folders()
    for name in ("models/Stable-diffusion", "models/VAE", "models/text_encoder", "models/Lora", "models/ESRGAN",
                 "embeddings", "outputs", "extensions"):
        assert (tmp_path / name).is_dir(), name


def test_repository_keeps_the_empty_folders():
    root = Path(__file__).resolve().parents[2]
    for name in ("Stable-diffusion", "VAE", "text_encoder", "Lora", "ESRGAN", "RealESRGAN", "SwinIR", "GFPGAN",
                 "Codeformer", "ControlNet"):
        assert (root / "models" / name / ".gitkeep").is_file(), name
    for name in ("embeddings", "outputs", "extensions"):
        assert (root / name / ".gitkeep").is_file(), name
