"""The data-dir layout (A1111's folders) resolved once from the flags into one frozen DataPaths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdweb.config.launch_options import LaunchOptions

CHECKOUT_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """The checkout root when running from a clone (as A1111 does), else the current folder."""
    if (CHECKOUT_ROOT / "models").is_dir() and (CHECKOUT_ROOT / "sdweb").is_dir():
        return CHECKOUT_ROOT
    return Path.cwd()


@dataclass(frozen=True)
class DataPaths:
    data_dir: Path
    models_dir: Path
    checkpoints: Path
    extra_checkpoint_dir: Path | None
    vae: Path
    extra_vae_dir: Path | None
    text_encoder: Path  # Forge's models/text_encoder (clip_l, clip_g, t5xxl files)
    text_encoder_more: tuple[Path, ...]  # ComfyUI's names, read when present: models/clip, models/text_encoders
    extra_text_encoder_dir: Path | None  # Forge's --text-encoder-dir
    diffusion_models: tuple[Path, ...]  # ComfyUI's models/diffusion_models, models/unet: more checkpoint folders
    lora: Path
    lycoris: Path
    embeddings: Path
    hypernetworks: Path
    esrgan: Path
    realesrgan: Path
    swinir: Path
    dat: Path
    scunet: Path
    bsrgan: Path
    ldsr: Path
    gfpgan: Path
    codeformer: Path
    controlnet: Path
    extra_controlnet_dir: Path | None
    blip: Path
    vae_approx: Path
    vae_taesd: Path
    outputs: Path
    extensions: Path
    config_file: Path
    ui_config_file: Path
    styles_files: tuple[Path, ...]
    params_file: Path
    cache_dir: Path
    log_dir: Path
    tmp_dir: Path

    def model_folders(self) -> tuple[Path, ...]:
        """Every folder the app creates at start so users see where to put files."""
        return (self.checkpoints, self.vae, self.text_encoder, self.lora, self.embeddings, self.esrgan,
                self.realesrgan, self.swinir, self.gfpgan, self.codeformer, self.controlnet, self.outputs,
                self.extensions)

    def ensure_folders(self) -> None:
        for folder in self.model_folders():
            folder.mkdir(parents=True, exist_ok=True)
        for folder in (self.cache_dir, self.tmp_dir):
            folder.mkdir(parents=True, exist_ok=True)


def _opt_path(value: str | None) -> Path | None:
    return Path(value).expanduser().resolve() if value else None


def _or(value: str | None, fallback: Path) -> Path:
    return Path(value).expanduser().resolve() if value else fallback


def data_dir_from(flag_value: str | None) -> Path:
    """The data dir `--data-dir` names, or the default."""
    return _or(flag_value, default_data_dir().resolve())


def extensions_dir(data_dir: Path) -> Path:
    return data_dir / "extensions"


def resolve_paths(options: LaunchOptions) -> DataPaths:
    """Build DataPaths from the folder flags (A1111's defaults for those not given)."""
    data = data_dir_from(options.data_dir)
    models = _or(options.models_dir, data / "models")
    styles = tuple(Path(p).expanduser() for p in options.styles_file) or (data / "styles.csv",)
    return DataPaths(
        data_dir=data,
        models_dir=models,
        checkpoints=models / "Stable-diffusion",
        extra_checkpoint_dir=_opt_path(options.ckpt_dir),
        vae=models / "VAE",
        extra_vae_dir=_opt_path(options.vae_dir),
        text_encoder=models / "text_encoder",
        text_encoder_more=(models / "clip", models / "text_encoders"),
        extra_text_encoder_dir=_opt_path(options.text_encoder_dir),
        diffusion_models=(models / "diffusion_models", models / "unet"),
        lora=_or(options.lora_dir, models / "Lora"),
        lycoris=_or(options.lyco_dir_backcompat, models / "LyCORIS"),
        embeddings=_or(options.embeddings_dir, data / "embeddings"),
        hypernetworks=_or(options.hypernetwork_dir, models / "hypernetworks"),
        esrgan=_or(options.esrgan_models_path, models / "ESRGAN"),
        realesrgan=_or(options.realesrgan_models_path, models / "RealESRGAN"),
        swinir=_or(options.swinir_models_path, models / "SwinIR"),
        dat=_or(options.dat_models_path, models / "DAT"),
        scunet=_or(options.scunet_models_path, models / "ScuNET"),
        bsrgan=_or(options.bsrgan_models_path, models / "BSRGAN"),
        ldsr=_or(options.ldsr_models_path, models / "LDSR"),
        gfpgan=_or(options.gfpgan_models_path, models / "GFPGAN"),
        codeformer=_or(options.codeformer_models_path, models / "Codeformer"),
        controlnet=models / "ControlNet",
        extra_controlnet_dir=_opt_path(options.controlnet_dir),
        blip=_or(options.clip_models_path, models / "BLIP"),
        vae_approx=models / "VAE-approx",
        vae_taesd=models / "VAE-taesd",
        outputs=data / "outputs",
        extensions=extensions_dir(data),
        config_file=_or(options.ui_settings_file, data / "config.json"),
        ui_config_file=_or(options.ui_config_file, data / "ui-config.json"),
        styles_files=styles,
        params_file=data / "params.txt",
        cache_dir=data / "cache",
        log_dir=data / "log",
        tmp_dir=data / "tmp",
    )
