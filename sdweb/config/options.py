"""The settings table: A1111's option keys with their defaults, sections and allowed values (data only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A1111's UniPC settings (uni_pc_variant / uni_pc_skip_type; the sampler reads them): the first is the default.
UNIPC_VARIANTS = ("bh1", "bh2", "vary_coeff")
UNIPC_SKIP_TYPES = ("time_uniform", "time_quadratic", "logSNR")


@dataclass(frozen=True)
class OptionInfo:
    """One setting. ``kind``: bool, int, float, str, choice, list, dict."""

    key: str
    default: Any
    section: str
    label: str
    kind: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    restricted: bool = False  # folder/file-name settings locked by --hide-ui-dir-config
    restrict_api: bool = False  # never settable through POST /sdapi/v1/options
    secret: bool = False  # a token or password: never returned by GET /sdapi/v1/options, a password box in the UI
    # Read-only on a server reachable from other machines (sdweb.config.exposure) unless the operator trusts
    # everyone there: settings that decide which code runs, and settings that choose where files go.
    runs_code: bool = False
    is_path: bool = False

    @property
    def exposure_locked(self) -> bool:
        return self.runs_code or self.is_path


SAVING = "Saving images/grids"
PATHS = "Paths for saving"
SD = "Stable Diffusion"
SDXL = "SDXL"
VAE = "VAE"
IMG2IMG = "img2img"
OPTIM = "Optimizations"
COMPAT = "Compatibility"
SAMPLER = "Sampler parameters"
PREVIEW = "Live previews"
INFOTEXT = "Infotext"
UI = "User interface"
EXTRA_NETWORKS = "Extra Networks"
UPSCALING = "Upscaling"
FACES = "Face restoration"
EXTENSIONS = "Extensions"
API_SECTION = "API"

_FORMATS = ("png", "jpg", "jpeg", "webp", "avif")


def _o(key: str, default: Any, section: str, label: str, kind: str | None = None, *,
       choices: tuple[str, ...] = (), minimum: float | None = None, maximum: float | None = None,
       restricted: bool = False, restrict_api: bool = False, secret: bool = False, runs_code: bool = False,
       is_path: bool = False) -> OptionInfo:
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}[type(default)]
    return OptionInfo(key, default, section, label, kind, choices, minimum, maximum, restricted, restrict_api,
                      secret, runs_code, is_path)


OPTIONS: tuple[OptionInfo, ...] = (
    # Saving
    _o("samples_save", True, SAVING, "Always save all generated images"),
    _o("samples_format", "png", SAVING, "File format for images", "choice", choices=_FORMATS),
    _o("samples_filename_pattern", "", SAVING, "Images filename pattern", restricted=True, is_path=True),
    _o("save_images_add_number", True, SAVING, "Add number to filename when saving", restricted=True),
    _o("save_images_replace_action", "Replace", SAVING, "Saving the image to an existing file", "choice",
       choices=("Replace", "Add number suffix"), restricted=True),
    _o("grid_save", True, SAVING, "Always save all generated image grids"),
    _o("grid_format", "png", SAVING, "File format for grids", "choice", choices=_FORMATS),
    _o("grid_extended_filename", False, SAVING, "Add extended info to grid file names"),
    _o("grid_only_if_multiple", True, SAVING, "Do not save grids consisting of one picture"),
    _o("grid_prevent_empty_spots", False, SAVING, "Prevent empty spots in grid"),
    _o("n_rows", -1, SAVING, "Grid row count; -1 for autodetect and 0 for it to be same as batch size",
       minimum=-1, maximum=16),
    _o("save_txt", False, SAVING, "Create a text file with infotext next to every image"),
    _o("save_images_before_face_restoration", False, SAVING, "Save a copy before face restoration"),
    _o("save_images_before_highres_fix", False, SAVING, "Save a copy before applying highres fix"),
    _o("save_incomplete_images", False, SAVING, "Save incomplete images (interrupted jobs)"),
    _o("save_init_img", False, SAVING, "Save init images when using img2img"),
    _o("jpeg_quality", 80, SAVING, "Quality for saved jpeg and avif images", minimum=1, maximum=100),
    _o("webp_lossless", False, SAVING, "Use lossless compression for webp images"),
    _o("export_for_4chan", True, SAVING, "Save copy of large images as JPG"),
    _o("enable_pnginfo", True, SAVING, "Save text information about generation parameters as chunks"),
    _o("use_original_name_batch", True, SAVING, "Use original name for output filename during batch process"),
    # Paths
    _o("outdir_samples", "", PATHS, "Output directory for images; if empty, defaults to three below",
       restricted=True, is_path=True),
    _o("outdir_txt2img_samples", "outputs/txt2img-images", PATHS, "Output directory for txt2img images",
       restricted=True, is_path=True),
    _o("outdir_img2img_samples", "outputs/img2img-images", PATHS, "Output directory for img2img images",
       restricted=True, is_path=True),
    _o("outdir_extras_samples", "outputs/extras-images", PATHS, "Output directory for images from extras tab",
       restricted=True, is_path=True),
    _o("outdir_grids", "", PATHS, "Output directory for grids; if empty, defaults to two below",
       restricted=True, is_path=True),
    _o("outdir_txt2img_grids", "outputs/txt2img-grids", PATHS, "Output directory for txt2img grids",
       restricted=True, is_path=True),
    _o("outdir_img2img_grids", "outputs/img2img-grids", PATHS, "Output directory for img2img grids",
       restricted=True, is_path=True),
    _o("outdir_save", "log/images", PATHS, "Directory for saving images using the Save button", restricted=True,
       is_path=True),
    _o("outdir_init_images", "outputs/init-images", PATHS, "Directory for saving init images", restricted=True,
       is_path=True),
    _o("save_to_dirs", True, PATHS, "Save images to a subdirectory", restricted=True),
    _o("grid_save_to_dirs", True, PATHS, "Save grids to a subdirectory", restricted=True),
    _o("directories_filename_pattern", "[date]", PATHS, "Directory name pattern", restricted=True, is_path=True),
    _o("directories_max_prompt_words", 8, PATHS, "Max prompt words for [prompt_words] pattern",
       minimum=1, maximum=20, restricted=True),
    # Stable Diffusion
    _o("sd_model_checkpoint", "", SD, "Stable Diffusion checkpoint"),
    _o("sd_checkpoint_hash", "", SD, "SHA256 hash of the current checkpoint"),
    _o("sd_checkpoints_limit", 1, SD, "Maximum number of checkpoints loaded at the same time",
       minimum=1, maximum=10),
    _o("sd_checkpoints_keep_in_cpu", True, SD, "Only keep one model on device"),
    _o("sd_unet", "Automatic", SD, "SD Unet"),
    _o("CLIP_stop_at_last_layers", 1, SD, "Clip skip", minimum=1, maximum=12),
    _o("flow_shift", 0.0, SD, "Shift for flow-matching models (Flux, Chroma, SD 3); 0 = the model's own",
       minimum=0, maximum=100),
    _o("enable_emphasis", True, SD, "Enable emphasis"),
    _o("emphasis", "Original", SD, "Emphasis mode", "choice",
       choices=("None", "Ignore", "Original", "No norm")),
    _o("comma_padding_backtrack", 20, SD, "Prompt word wrap length limit", minimum=0, maximum=74),
    _o("tiling", False, SD, "Tiling"),
    _o("randn_source", "GPU", SD, "Random number generator source (GPU: the device's, CPU: same image on any device, NV: NVIDIA's numbers on any device)", "choice", choices=("GPU", "CPU", "NV")),
    _o("sd_noise_schedule", "Default", SD, "Noise schedule for sampling", "choice",
       choices=("Default", "Zero Terminal SNR")),
    _o("upcast_attn", False, SD, "Upcast cross attention layer to float32"),
    _o("auto_vae_precision", True, SD, "Automatically revert VAE to 32-bit floats on NaN"),
    _o("sd_model_prediction_types", {}, SD, "Per-checkpoint prediction type override (epsilon / v_prediction)"),
    _o("hide_samplers", [], SD, "Hide samplers in user interface"),
    # SDXL
    _o("sdxl_crop_top", 0, SDXL, "crop top coordinate", minimum=0, maximum=4096),
    _o("sdxl_crop_left", 0, SDXL, "crop left coordinate", minimum=0, maximum=4096),
    _o("sdxl_refiner_low_aesthetic_score", 2.5, SDXL, "SDXL low aesthetic score", minimum=0, maximum=10),
    _o("sdxl_refiner_high_aesthetic_score", 6.0, SDXL, "SDXL high aesthetic score", minimum=0, maximum=10),
    # VAE
    _o("sd_vae", "Automatic", VAE, "SD VAE"),
    # Forge's "VAE / Text Encoder": module files (VAE, CLIP-L, CLIP-G, T5-XXL) loaded with the checkpoint;
    # [] = Automatic (the matching files present, for a checkpoint that lacks them)
    _o("forge_additional_modules", [], VAE, "VAE / Text Encoder"),
    _o("sd_vae_overrides_per_model_preferences", True, VAE, "Selected VAE overrides per-model preferences"),
    _o("sd_vae_encode_method", "Full", VAE, "VAE type for encode", "choice", choices=("Full", "TAESD")),
    _o("sd_vae_decode_method", "Full", VAE, "VAE type for decode", "choice", choices=("Full", "TAESD")),
    # img2img
    _o("inpainting_mask_weight", 1.0, IMG2IMG, "Inpainting conditioning mask strength", minimum=0, maximum=1),
    _o("initial_noise_multiplier", 1.0, IMG2IMG, "Noise multiplier for img2img", minimum=0, maximum=1.5),
    _o("img2img_color_correction", False, IMG2IMG, "Apply color correction to img2img results"),
    _o("img2img_fix_steps", False, IMG2IMG, "With img2img, do exactly the amount of steps the slider specifies"),
    _o("mask_apply_overlay", True, IMG2IMG, "Apply the original image over the unmasked area"),
    _o("upscaler_for_img2img", "", IMG2IMG, "Upscaler for img2img"),
    _o("return_mask", False, IMG2IMG, "For inpainting, include the greyscale mask in results"),
    _o("return_mask_composite", False, IMG2IMG, "For inpainting, include masked composite in results"),
    # Optimizations
    _o("cross_attention_optimization", "Automatic", OPTIM, "Cross attention optimization", "choice",
       choices=("Automatic", "xformers", "sdp-no-mem", "sdp", "sub-quadratic", "V1", "InvokeAI", "Doggettx",
                "None")),
    _o("token_merging_ratio", 0.0, OPTIM, "Token merging ratio", minimum=0, maximum=0.9),
    _o("batch_cond_uncond", True, OPTIM, "Batch cond/uncond"),
    # Compatibility
    _o("use_old_scheduling", False, COMPAT, "Use old prompt editing timelines"),
    _o("use_old_emphasis_implementation", False, COMPAT, "Use old emphasis implementation"),
    _o("hires_fix_use_firstpass_conds", False, COMPAT, "For hires fix, calculate conds of second pass using "
       "extra networks of first pass"),
    # Sampler parameters
    _o("eta_ancestral", 1.0, SAMPLER, "Eta for k-diffusion samplers", minimum=0, maximum=1),
    _o("eta_ddim", 0.0, SAMPLER, "Eta for DDIM", minimum=0, maximum=1),
    _o("eta_noise_seed_delta", 0, SAMPLER, "Eta noise seed delta", minimum=0),
    _o("s_churn", 0.0, SAMPLER, "sigma churn", minimum=0, maximum=100),
    _o("s_tmin", 0.0, SAMPLER, "sigma tmin", minimum=0, maximum=10),
    _o("s_tmax", 0.0, SAMPLER, "sigma tmax", minimum=0, maximum=999),
    _o("s_noise", 1.0, SAMPLER, "sigma noise", minimum=0, maximum=1.1),
    _o("s_min_uncond", 0.0, SAMPLER, "Negative Guidance minimum sigma", minimum=0, maximum=15),
    _o("s_min_uncond_all", False, SAMPLER, "Negative Guidance minimum sigma all steps"),
    _o("skip_early_cond", 0.0, SAMPLER, "Ignore negative prompt during early sampling", minimum=0, maximum=1),
    _o("sigma_min", 0.0, SAMPLER, "sigma min (0 = default)", minimum=0),
    _o("sigma_max", 0.0, SAMPLER, "sigma max (0 = default)", minimum=0),
    _o("rho", 0.0, SAMPLER, "rho (0 = default)", minimum=0),
    _o("always_discard_next_to_last_sigma", False, SAMPLER, "Always discard next-to-last sigma"),
    _o("sgm_noise_multiplier", False, SAMPLER, "SGM noise multiplier"),
    _o("uni_pc_variant", UNIPC_VARIANTS[0], SAMPLER, "UniPC variant", "choice", choices=UNIPC_VARIANTS),
    _o("uni_pc_skip_type", UNIPC_SKIP_TYPES[0], SAMPLER, "UniPC skip type", "choice", choices=UNIPC_SKIP_TYPES),
    _o("uni_pc_order", 3, SAMPLER, "UniPC order", minimum=1, maximum=50),
    _o("uni_pc_lower_order_final", True, SAMPLER, "UniPC lower order final"),
    # Live previews
    _o("live_previews_enable", True, PREVIEW, "Show live previews of the created image"),
    _o("show_progress_every_n_steps", 10, PREVIEW, "Live preview display period (steps); -1 = end of batch",
       minimum=-1, maximum=32),
    _o("show_progress_type", "Approx NN", PREVIEW, "Live preview method", "choice",
       choices=("Full", "Approx NN", "Approx cheap", "TAESD")),
    _o("live_preview_content", "Prompt", PREVIEW, "Live preview subject", "choice",
       choices=("Combined", "Prompt", "Negative prompt")),
    _o("live_preview_refresh_period", 1000, PREVIEW, "Progressbar and preview update period (ms)",
       minimum=100, maximum=10000),
    _o("interrupt_after_current", True, PREVIEW, "Don't Interrupt in the middle"),
    # Infotext
    _o("add_model_hash_to_info", True, INFOTEXT, "Add model hash to infotext"),
    _o("add_model_name_to_info", True, INFOTEXT, "Add model name to infotext"),
    _o("add_user_name_to_info", False, INFOTEXT, "Add user name to infotext when authenticated"),
    _o("add_version_to_infotext", True, INFOTEXT, "Add program version to infotext"),
    _o("add_vae_name_to_info", True, INFOTEXT, "Add VAE name to infotext"),
    _o("add_vae_hash_to_info", True, INFOTEXT, "Add VAE hash to infotext"),
    _o("infotext_styles", "Apply if any", INFOTEXT, "Infer styles from prompts of pasted infotext", "choice",
       choices=("Ignore", "Apply", "Discard", "Apply if any")),
    _o("send_seed", True, INFOTEXT, "Send seed when sending prompt or image to other interface"),
    _o("send_size", True, INFOTEXT, "Send size when sending prompt or image to another interface"),
    _o("disable_weights_auto_swap", True, INFOTEXT, "Disregard checkpoint information from pasted infotext"),
    # UI
    _o("quicksettings_list", ["sd_model_checkpoint"], UI, "Quicksettings list"),
    _o("return_grid", True, UI, "Show grid in gallery"),
    _o("samples_log_stdout", False, UI, "Always print all generation info to standard output"),
    _o("lora_preferred_name", "Alias from file", EXTRA_NETWORKS, "When adding to prompt, refer to Lora by",
       "choice", choices=("Alias from file", "Filename")),
    _o("extra_networks_default_multiplier", 1.0, EXTRA_NETWORKS, "Default multiplier for extra networks",
       minimum=0, maximum=2),
    # Upscaling and faces
    _o("ESRGAN_tile", 192, UPSCALING, "Tile size for ESRGAN upscalers; 0 = no tiling", minimum=0, maximum=512),
    _o("ESRGAN_tile_overlap", 8, UPSCALING, "Tile overlap for ESRGAN upscalers", minimum=0, maximum=48),
    _o("face_restoration", False, FACES, "Restore faces"),
    _o("face_restoration_model", "CodeFormer", FACES, "Face restoration model"),
    _o("code_former_weight", 0.5, FACES, "CodeFormer weight; 0 = maximum effect", minimum=0, maximum=1),
    # Extensions
    _o("disabled_extensions", [], EXTENSIONS, "Disabled extensions", runs_code=True),
    _o("disable_all_extensions", "none", EXTENSIONS, "Disable all extensions", "choice",
       choices=("none", "extra", "all"), runs_code=True),
    # API
    _o("api_enable_requests", True, API_SECTION, "Allow http:// and https:// URLs for input images",
       restrict_api=True),
    _o("api_forbid_local_requests", True, API_SECTION, "Forbid URLs to local resources", restrict_api=True),
    _o("api_useragent", "", API_SECTION, "User agent for requests", restrict_api=True),
)

OPTIONS_BY_KEY: dict[str, OptionInfo] = {option.key: option for option in OPTIONS}


def make_option(key: str, default: Any, section: str, label: str, kind: str | None = None, *,
                choices: tuple[str, ...] = (), minimum: float | None = None,
                maximum: float | None = None, secret: bool = False, is_path: bool = False) -> OptionInfo:
    """An OptionInfo for a setting defined outside this table (extensions); kind from the default if None."""
    return _o(key, default, section, label, kind, choices=choices, minimum=minimum, maximum=maximum, secret=secret,
              is_path=is_path)


def defaults() -> dict[str, Any]:
    """A fresh dict of every known key's default (lists and dicts copied)."""
    return {option.key: _copy(option.default) for option in OPTIONS}


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
