"""LaunchOptions: every command-line flag's value, typed and frozen, with AUTOMATIC1111's names and defaults.

This class is the one source of each flag's attribute name, type and default; its field metadata holds the
rest of what the command line needs (the flag's group and help, choices, argparse action, a flag name other
than ``--<field-name>``). ``sdweb.cli`` builds the parser from these fields. Annotations are real types (no
``from __future__ import annotations``) so the parser can read them.
"""

import dataclasses
import types
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

NETWORK = "Network and server"
API = "API"
DEVICE = "VRAM, precision and device"
PATHS = "Models and paths"
UI = "UI behaviour, security and extensions"
LAUNCHER = "Launcher (accepted, handled by webui.sh / webui.bat)"
FORGE = ("Forge's flags (accepted: each does what the sdweb flag in its help does; one with no effect here is named "
         "with the reason in the Runtime line at start)")
CONTROLNET = "sd-webui-controlnet's flags (ControlNet is built in; --controlnet-dir is under paths)"
NO_EFFECT = "no effect here"
NOOPS = "Accepted for compatibility (no effect)"

GROUP_ORDER = (NETWORK, API, DEVICE, PATHS, UI, FORGE, CONTROLNET, LAUNCHER, NOOPS)


@dataclass(frozen=True)
class Flag:
    """How one option is spelt on the command line. ``action``: None (from the field's type), "append"
    (repeatable), "store_false", or for accepted no-op flags "noop" / "noop_value"."""

    name: str
    group: str
    help: str = ""
    choices: tuple[str, ...] | None = None
    action: str | None = None


def flag(default: Any, group: str, help: str = "", *, choices: tuple[str, ...] | None = None,
         action: str | None = None, name: str | None = None) -> Any:
    """A LaunchOptions field backed by a flag named ``name`` (default: ``--`` + the field name, dashed)."""
    spec = Flag(name or "", group, help, choices, action)  # name "": derived from the field's name
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata={"flag": spec})
    return dataclasses.field(default=default, metadata={"flag": spec})


@dataclass(frozen=True)
class LaunchOptions:
    """Every flag's value after parsing, frozen. Attribute names are A1111's argparse dests."""

    # Network and server
    listen: bool = flag(False, NETWORK, "bind 0.0.0.0 instead of 127.0.0.1 (makes the server non-local)")
    port: int | None = flag(None, NETWORK, "port; default 7860 (7861 with --nowebui), first free one upward")
    server_name: str | None = flag(None, NETWORK, "explicit bind host (overrides --listen)")
    share: bool = flag(False, NETWORK, "Gradio public share link (needs network; refused offline)")
    ngrok: str | None = flag(None, NETWORK, "ngrok auth token (tunnels are not supported offline)")
    ngrok_options: dict[str, Any] = flag({}, NETWORK, "ngrok options as JSON")
    gradio_auth: str | None = flag(None, NETWORK, 'UI login "user:pass,user2:pass2"')
    gradio_auth_path: str | None = flag(None, NETWORK, "file with user:pass entries, one or more per line")
    tls_keyfile: str | None = flag(None, NETWORK, "TLS key file (HTTPS needs both key and cert)")
    tls_certfile: str | None = flag(None, NETWORK, "TLS certificate file")
    disable_tls_verify: bool | None = flag(None, NETWORK,
        "allow self-signed certificates", action="store_false")
    subpath: str | None = flag(None, NETWORK, "serve under /<subpath> behind a reverse proxy")
    cors_allow_origins: str | None = flag(None, NETWORK,
        "comma-separated CORS origins; pages from them may also send POST/PUT/DELETE here")
    cors_allow_origins_regex: str | None = flag(None, NETWORK, "CORS origin regex (same meaning as the list)")
    allowed_hosts: str | None = flag(None, NETWORK,
        "sdweb: more host names this server answers to, comma-separated (requests for other names are "
        "refused against DNS rebinding; loopback, --server-name and, with --listen, IP addresses and this"
        " machine's name are always allowed); * turns the Host and Origin checks off")
    gradio_allowed_path: tuple[str, ...] = flag((), NETWORK,
        "extra folder the UI may serve files from", action="append")
    no_gradio_queue: bool = flag(False, NETWORK, "disable the Gradio queue")
    gradio_debug: bool = flag(False, NETWORK, "Gradio debug mode")
    timeout_keep_alive: int = flag(30, NETWORK, "uvicorn keep-alive seconds")
    autolaunch: bool = flag(False, NETWORK, "open the browser at start")
    theme: str | None = flag(None, NETWORK, "force the UI theme", choices=("light", "dark"))

    # API
    api: bool = flag(False, API, "serve /sdapi/v1 on the same port as the UI")
    api_auth: str | None = flag(None, API, 'HTTP Basic auth for the API "user:pass,user2:pass2"')
    api_log: bool = flag(False, API, "log one line per API request")
    nowebui: bool = flag(False, API, "API only, no UI (default port 7861)")
    api_server_stop: bool = flag(False, API, "enable /sdapi/v1/server-kill, -restart, -stop")
    skip_load_model_at_start: bool = flag(False, API, "do not load a checkpoint at start")

    # VRAM, precision and device
    medvram: bool = flag(False, DEVICE, "keep text encoder, VAE and UNet in RAM; move each to the GPU to run")
    medvram_sdxl: bool = flag(False, DEVICE, "--medvram only for SDXL models")
    lowvram: bool = flag(False, DEVICE, "like --medvram and also offload the UNet block by block (slow)")
    lowvram_offload: str = flag("sequential", DEVICE,
        "sdweb: how --lowvram offloads: sequential (per layer, lowest VRAM) or group (per block, with "
        "CUDA streams prefetching the next block)", choices=("sequential", "group"))
    lowram: bool = flag(False, DEVICE, "load checkpoint weights straight to VRAM")
    xformers: bool = flag(False, DEVICE, "prefer xformers attention (CUDA only, if installed)")
    force_enable_xformers: bool = flag(False, DEVICE, "use xformers without the capability check")
    xformers_flash_attention: bool = flag(False, DEVICE, "xformers flash attention (SD2)")
    opt_sdp_attention: bool = flag(False, DEVICE, "prefer torch scaled-dot-product attention")
    opt_sdp_no_mem_attention: bool = flag(False, DEVICE, "SDPA without the memory-efficient kernel")
    opt_split_attention: bool = flag(False, DEVICE, "split attention (sliced)")
    opt_split_attention_v1: bool = flag(False, DEVICE, "older split attention (sliced)")
    opt_split_attention_invokeai: bool = flag(False, DEVICE, "InvokeAI split attention (sliced)")
    opt_sub_quad_attention: bool = flag(False, DEVICE, "sub-quadratic attention (sliced)")
    sub_quad_q_chunk_size: int = flag(1024, DEVICE, "sub-quadratic query chunk size")
    sub_quad_kv_chunk_size: int | None = flag(None, DEVICE, "sub-quadratic key/value chunk size")
    sub_quad_chunk_threshold: int | None = flag(None, DEVICE, "sub-quadratic VRAM threshold (percent)")
    disable_opt_split_attention: bool = flag(False, DEVICE, "no attention optimisation")
    no_half: bool = flag(False, DEVICE, "keep the model in fp32 (VAE too)")
    no_half_vae: bool = flag(False, DEVICE, "keep the VAE in fp32")
    precision: str = flag("autocast", DEVICE,
        "full: fp32 compute; half: fp16 everywhere; autocast: default", choices=("full", "half", "autocast"))
    upcast_sampling: bool = flag(False, DEVICE, "fp16 weights, sampling math in fp32 (Mac/AMD)")
    use_cpu: tuple[str, ...] = flag((), DEVICE,
        "run modules on CPU: sd interrogate gfpgan esrgan codeformer all")
    skip_torch_cuda_test: bool = flag(False, DEVICE, "do not require CUDA at start")
    device_id: str | None = flag(None, DEVICE, "use cuda:N")
    device_ids: str | None = flag(None, DEVICE,
        "sdweb: one worker per listed device, comma-separated (0,1,2); without a GPU each id is one more "
        "CPU worker. Default: one worker per visible GPU (--device-id: that one only)")
    workers_per_device: int = flag(1, DEVICE,
        "sdweb: workers on each device, each with its own copy of the model (2 overlaps one job's text "
        "encoding, decoding and saving with another's sampling; needs the VRAM for two copies)")
    workers: str = flag("local", DEVICE,
        "sdweb: where jobs run: local (this process, default), ray (a private one-box Ray cluster, one "
        "actor per GPU; needs pip install 'sdweb[ray]') or ray:HOST:PORT (join that Ray cluster)")
    scheduling: str = flag("affinity", DEVICE,
        "sdweb: with several workers, affinity prefers the worker that holds a job's checkpoint (fewer "
        "loads, bounded wait); fifo starts jobs strictly in order", choices=("affinity", "fifo"))
    worker_retries: int = flag(2, DEVICE,
        "sdweb: --workers ray: how often a job is retried after its worker process died")
    use_ipex: bool = flag(False, DEVICE, "Intel XPU")
    opt_channelslast: bool = flag(False, DEVICE, "channels_last memory format")
    compile: bool = flag(False, DEVICE,
        "sdweb: torch.compile the UNet and VAE decoder (first image of each size compiles, then faster; "
        "falls back to eager if compiling fails)")
    opt_fused_qkv: bool = flag(False, DEVICE,
        "sdweb: fuse the UNet's q/k/v attention projections (undone while a LoRA is loaded)")
    disable_nan_check: bool = flag(False, DEVICE, "skip NaN checks of UNet/VAE output")
    disable_model_loading_ram_optimization: bool = flag(False, DEVICE, "disable the RAM-saving load path")

    # Models and paths
    data_dir: str | None = flag(None, PATHS,
        "base for models/, outputs/, extensions/, embeddings/, config.json")
    models_dir: str | None = flag(None, PATHS, "base for all model folders (default <data-dir>/models)")
    ckpt: str | None = flag(None, PATHS, "add this checkpoint to the list and load it at start")
    ckpt_dir: str | None = flag(None, PATHS, "extra checkpoint folder")
    config: str | None = flag(None, PATHS, "LDM config (ignored: the architecture is read from the file)")
    vae_dir: str | None = flag(None, PATHS, "extra VAE folder")
    vae_path: str | None = flag(None, PATHS, "force this VAE (disables the VAE setting)")
    text_encoder_dir: str | None = flag(None, PATHS,
        "extra text encoder folder (Forge; default models/text_encoder)")
    lora_dir: str | None = flag(None, PATHS, "LoRA folder (default models/Lora)")
    lyco_dir_backcompat: str | None = flag(None, PATHS, "LyCORIS folder (default models/LyCORIS)")
    embeddings_dir: str | None = flag(None, PATHS, "textual inversion folder (default <data-dir>/embeddings)")
    hypernetwork_dir: str | None = flag(None, PATHS, "hypernetwork folder (default models/hypernetworks)")
    codeformer_models_path: str | None = flag(None, PATHS, "CodeFormer folder")
    gfpgan_models_path: str | None = flag(None, PATHS, "GFPGAN folder")
    esrgan_models_path: str | None = flag(None, PATHS, "ESRGAN folder")
    bsrgan_models_path: str | None = flag(None, PATHS, "BSRGAN folder")
    realesrgan_models_path: str | None = flag(None, PATHS, "RealESRGAN folder")
    dat_models_path: str | None = flag(None, PATHS, "DAT folder")
    scunet_models_path: str | None = flag(None, PATHS, "ScuNET folder")
    swinir_models_path: str | None = flag(None, PATHS, "SwinIR folder")
    ldsr_models_path: str | None = flag(None, PATHS, "LDSR folder")
    controlnet_dir: str | None = flag(None, PATHS, "extra ControlNet model folder")
    clip_models_path: str | None = flag(None, PATHS, "CLIP interrogator models folder")
    gfpgan_dir: str | None = flag(None, PATHS, "legacy GFPGAN source folder")
    gfpgan_model: str | None = flag(None, PATHS, "legacy GFPGAN model name")
    textual_inversion_templates_dir: str | None = flag(None, PATHS, "textual inversion templates folder")
    localizations_dir: str | None = flag(None, PATHS, "localizations folder")
    ui_config_file: str | None = flag(None, PATHS, "UI defaults file (default <data-dir>/ui-config.json)")
    ui_settings_file: str | None = flag(None, PATHS, "settings file (default <data-dir>/config.json)")
    styles_file: tuple[str, ...] = flag((), PATHS,
        "prompt styles CSV (repeatable, globs ok)", action="append")
    no_download_sd_model: bool = flag(False, PATHS,
        "with no checkpoint at all, do not download SD 1.5 (about 4 GB from huggingface.co) at the first "
        "start, as A1111 would; the built-in demo model is used instead")
    do_not_download_clip: bool = flag(False, PATHS, "never download CLIP (sdweb never does)")
    no_hashing: bool = flag(False, PATHS, "never compute sha256 of checkpoints")
    disable_safe_unpickle: bool = flag(False, PATHS, "allow arbitrary pickles in .ckpt/.pt (unsafe)")

    # UI behaviour, security and extensions
    enable_insecure_extension_access: bool = flag(False, UI, "allow installing extensions when non-local")
    disable_all_extensions: bool = flag(False, UI, "load no extensions")
    disable_extra_extensions: bool = flag(False, UI, "load only built-in extensions")
    update_all_extensions: bool = flag(False, UI, "git pull every extension at start")
    allow_code: bool = flag(False, UI, "enable the Custom code script")
    hide_ui_dir_config: bool = flag(False, UI, "hide and lock folder settings")
    freeze_settings: bool = flag(False, UI, "make all settings read-only")
    freeze_settings_in_sections: str | None = flag(None, UI, "read-only settings sections, comma-separated")
    freeze_specific_settings: str | None = flag(None, UI, "read-only setting keys, comma-separated")
    administrator: bool = flag(False, UI, "administrator rights (readable by extensions)")
    use_textbox_seed: bool = flag(False, UI, "seed as a textbox (long seeds)")
    no_prompt_history: bool = flag(False, UI, "do not write params.txt")
    unix_filenames_sanitization: bool = flag(False, UI, "only / is invalid in file names")
    filenames_max_length: int = flag(128, UI, "max length of each file name part")
    ui_debug_mode: bool = flag(False, UI, "do not load a model")
    disable_console_progressbars: bool = flag(False, UI, "no progress bars in the console")
    no_progressbar_hiding: bool = flag(False, UI, "keep the UI progress bar visible")
    loglevel: str | None = flag(None, UI, "log level: DEBUG INFO WARNING ERROR CRITICAL")
    log_startup: bool = flag(False, UI, "log start-up timings")
    dump_sysinfo: bool = flag(False, UI, "write system information to a file and exit")

    # Forge's flags: sdweb.config.forge_flags says what each does here
    gpu_device_id: int | None = flag(None, FORGE, "as --device-id")
    all_in_fp32: bool = flag(False, FORGE, "as --no-half --no-half-vae")
    all_in_fp16: bool = flag(False, FORGE, "as --precision half")
    unet_in_bf16: bool = flag(False, FORGE, "UNet in bf16 (a CUDA GPU with bf16)")
    unet_in_fp16: bool = flag(False, FORGE, NO_EFFECT)
    unet_in_fp8_e4m3fn: bool = flag(False, FORGE, NO_EFFECT)
    unet_in_fp8_e5m2: bool = flag(False, FORGE, NO_EFFECT)
    vae_in_fp16: bool = flag(False, FORGE, NO_EFFECT)
    vae_in_fp32: bool = flag(False, FORGE, "as --no-half-vae")
    vae_in_bf16: bool = flag(False, FORGE, "VAE in bf16 (a CUDA GPU with bf16)")
    vae_in_cpu: bool = flag(False, FORGE, NO_EFFECT)
    clip_in_fp8_e4m3fn: bool = flag(False, FORGE, NO_EFFECT)
    clip_in_fp8_e5m2: bool = flag(False, FORGE, NO_EFFECT)
    clip_in_fp16: bool = flag(False, FORGE, NO_EFFECT)
    clip_in_fp32: bool = flag(False, FORGE, NO_EFFECT)
    attention_split: bool = flag(False, FORGE, "as --opt-split-attention")
    attention_quad: bool = flag(False, FORGE, "as --opt-sub-quad-attention")
    attention_pytorch: bool = flag(False, FORGE, "as --opt-sdp-attention")
    force_upcast_attention: bool = flag(False, FORGE, NO_EFFECT)
    disable_attention_upcast: bool = flag(False, FORGE, NO_EFFECT)
    disable_xformers: bool = flag(False, FORGE, NO_EFFECT)
    disable_ipex_hijack: bool = flag(False, FORGE, NO_EFFECT)
    always_gpu: bool = flag(False, FORGE, NO_EFFECT)
    always_high_vram: bool = flag(False, FORGE, NO_EFFECT)
    always_normal_vram: bool = flag(False, FORGE, NO_EFFECT)
    always_low_vram: bool = flag(False, FORGE, "as --medvram")
    always_no_vram: bool = flag(False, FORGE, "as --lowvram")
    always_cpu: bool = flag(False, FORGE, "as --use-cpu all")
    always_offload_from_vram: bool = flag(False, FORGE, "as --medvram")
    pytorch_deterministic: bool = flag(False, FORGE, "torch's deterministic algorithms (warnings where an op has none)")
    cuda_malloc: bool = flag(False, FORGE, "PyTorch's cudaMallocAsync allocator (PYTORCH_CUDA_ALLOC_CONF)")
    cuda_stream: bool = flag(False, FORGE, NO_EFFECT)
    pin_shared_memory: bool = flag(False, FORGE, NO_EFFECT)
    forge_ref_a1111_home: str | None = flag(None, FORGE,
        "an A1111 checkout: its model, VAE, LoRA, embedding, hypernetwork and ControlNet folders are used where "
        "the folder flags are not given")
    controlnet_preprocessor_models_dir: str | None = flag(None, FORGE, NO_EFFECT)

    # sd-webui-controlnet's flags (its models folder flag, --controlnet-dir, is under paths)
    controlnet_annotator_models_path: str | None = flag(None, CONTROLNET, NO_EFFECT)
    no_half_controlnet: bool = flag(False, CONTROLNET, NO_EFFECT)
    controlnet_preprocessor_cache_size: int = flag(16, CONTROLNET, NO_EFFECT)
    controlnet_loglevel: str = flag("INFO", CONTROLNET, NO_EFFECT,
                                    choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
    controlnet_tracemalloc: bool = flag(False, CONTROLNET, NO_EFFECT)

    # Launcher (accepted, handled by webui.sh / webui.bat)
    skip_python_version_check: bool = flag(False, LAUNCHER)
    reinstall_xformers: bool = flag(False, LAUNCHER)
    reinstall_torch: bool = flag(False, LAUNCHER)
    update_check: bool = flag(False, LAUNCHER)
    test_server: bool = flag(False, LAUNCHER)
    skip_prepare_environment: bool = flag(False, LAUNCHER)
    skip_install: bool = flag(False, LAUNCHER)
    exit: bool = flag(False, LAUNCHER, "quit after installing")
    uv: bool = flag(False, LAUNCHER)
    allow_root: bool = flag(False, LAUNCHER, "allow running as root", name="-f")

    # Derived by sdweb.cli.parse_options from the flags above (no flag of their own)
    webui_is_non_local: bool = False
    disable_extension_access: bool = False
    # Flags that installed A1111 extensions' preload.py declare, with their values, as given: parsed by each
    # extension's own parser when its preload runs
    extension_args: tuple[str, ...] = ()


def field_flag(field: dataclasses.Field) -> Flag | None:
    """The flag behind one LaunchOptions field, or None for a derived field."""
    spec = field.metadata.get("flag")
    if spec is None or spec.name:
        return spec
    return dataclasses.replace(spec, name="--" + field.name.replace("_", "-"))


def value_type(annotation: Any) -> type:
    """The type a flag's value is parsed to: ``int | None`` -> int, ``tuple[str, ...]`` -> tuple."""
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
    return get_origin(annotation) or annotation
