"""Load checkpoints into diffusers pipelines, offline and safely: `load_checkpoint` is the one entry.

SD 1.x / 2.x / SDXL single files (.safetensors, .ckpt): read the tensor shapes (a safetensors header, or the
safe unpickler for .ckpt) -> detect the family -> infer the architecture -> write the family's bundled
config template with those numbers, the prediction type and the CLIP tokenizer into a cached config dir -> each
component built on its own from just its tensors, as `Pipeline.from_single_file(path, config=dir)` builds it but
without holding the whole file (sdweb.models.sd_components).
Flow-matching families (Flux, Chroma, SD 3/3.5; all-in-one, transformer-only + module files, GGUF, fp8):
`sdweb.models.flow_loader`. Diffusers folders: `sdweb.models.diffusers_dir`.
Nothing reaches the network; a damaged, unsafe or misplaced file becomes an `InvalidModelFileError` that
names it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from sdweb.core.atomic import make_temp_folder
from sdweb.core.errors import InvalidModelFileError
from sdweb.models.build_lock import MODEL_BUILD_LOCK, import_lazy_packages
from sdweb.models.detect import Shapes, detect_family, infer_architecture
from sdweb.models.families import FAMILIES, Family
from sdweb.models.reading import (
    FileHeader,
    read_header,
    read_metadata,
    read_shapes,
    read_state_dict,
)
from sdweb.models.sd_components import build_pipeline, load_clip_text_encoder, load_unet, load_vae
from sdweb.models.weights import TensorFile, open_tensor_file
from sdweb.runtime.memory import trim_heap

# Before huggingface_hub is imported (diffusers is imported lazily below): no hub look-ups.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = [
    "LoadedCheckpoint",
    "PredictionChoice",
    "choose_prediction",
    "config_files",
    "default_config_cache_dir",
    "load_checkpoint",
    "load_single_file",
    "prediction_from_yaml",
    "read_metadata",
    "read_shapes",
    "read_state_dict",
    "write_config_dir",
]

log = logging.getLogger(__name__)

CONFIGS = resources.files("sdweb.models") / "configs"
TOKENIZER_FILES = ("vocab.json", "merges.txt")


@dataclass(frozen=True)
class PredictionChoice:
    prediction_type: str  # "epsilon" or "v_prediction"
    source: str  # "argument", "yaml", "metadata", "file key", "unet test" or "family default"
    zero_snr: bool = False  # the file carries a `ztsnr` key: zero terminal SNR training


@dataclass(frozen=True)
class LoadedCheckpoint:
    pipeline: Any  # a diffusers DiffusionPipeline of family.load_pipeline
    family: Family
    prediction_type: str  # "epsilon", "v_prediction" or "flow"
    prediction_source: str
    config_dir: Path | None  # the filled config dir (None for a diffusers folder: the folder is its own)
    # Module files used (VAE / text encoders), in the order given: stems for the infotext ("Module 1: ae")
    modules: tuple[str, ...] = ()
    module_paths: tuple[Path, ...] = ()


# ---------------------------------------------------------------------------------------- prediction


def prediction_from_yaml(checkpoint: str | os.PathLike[str]) -> str | None:
    """The prediction type an A1111-style `<stem>.yaml` beside the checkpoint declares, if any."""
    import yaml

    candidate = Path(checkpoint).with_suffix(".yaml")
    if not candidate.is_file():
        return None
    try:
        text = candidate.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        log.warning("ignoring %s: %s", candidate.name, exc)
        return None
    params = data.get("model", {}).get("params", {}) if isinstance(data, dict) else {}
    if not isinstance(params, dict):
        return None
    if params.get("parameterization") == "v" or "VScaling" in text:  # LDM (SD1/2) and sgm (SDXL) spellings
        return "v_prediction"
    if "parameterization" in params or "denoiser_config" in params:
        return "epsilon"
    return None


def _prediction_from_file(shapes: Shapes, metadata: Mapping[str, str]) -> str | None:
    declared = metadata.get("modelspec.prediction_type", "").strip().lower()
    if declared in ("v", "v_prediction", "v-prediction"):
        return "v_prediction"
    if declared == "epsilon":
        return "epsilon"
    if metadata.get("modelspec.architecture", "").endswith("-768-v"):  # kohya: stable-diffusion-v2-768-v
        return "v_prediction"
    return None


def choose_prediction(
    path: Path, shapes: Shapes, metadata: Mapping[str, str], family: Family, prediction_type: str | None
) -> PredictionChoice | None:
    """Explicit argument > .yaml beside the file > file metadata > `v_pred` key > family default.
    None for a plain SD2 file with no hint: only running its UNet can tell 512-base from 768-v."""
    zero_snr = "ztsnr" in shapes
    if prediction_type is not None:
        if prediction_type not in ("epsilon", "v_prediction"):
            raise InvalidModelFileError(f"unknown prediction type {prediction_type!r} for {path.name}.")
        return PredictionChoice(prediction_type, "argument", zero_snr)
    from_yaml = prediction_from_yaml(path)
    if from_yaml is not None:
        return PredictionChoice(from_yaml, "yaml", zero_snr)
    from_metadata = _prediction_from_file(shapes, metadata)
    if from_metadata is not None:
        return PredictionChoice(from_metadata, "metadata", zero_snr)
    if "v_pred" in shapes:
        return PredictionChoice("v_prediction", "file key", zero_snr)
    if family.v_variant is not None:
        return None
    return PredictionChoice(family.prediction_type, "family default", zero_snr)


def _unet_predicts_v(unet: torch.nn.Module) -> bool:
    """A1111's test for SD2 files: at the last timestep an epsilon model returns about its input, a
    v model something far below it."""
    config = unet.config
    param = next(unet.parameters())
    sample = torch.full((1, config.in_channels, 8, 8), 0.5, dtype=param.dtype, device=param.device)
    context = torch.full((1, 2, config.cross_attention_dim), 0.5, dtype=param.dtype, device=param.device)
    with torch.no_grad():
        out = unet(sample, torch.tensor([999], device=param.device), encoder_hidden_states=context).sample
    return (out.float() - sample.float()).mean().item() < -1


# -------------------------------------------------------------------------------------- config dirs


def _template(family: Family, relative: str) -> dict[str, Any]:
    return json.loads((CONFIGS / family.template / relative).read_text(encoding="utf-8"))


def _tokenizer_config() -> dict[str, dict[str, Any]]:
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        # A1111 pads OpenCLIP prompts with id 0; prompt conditioning does that itself (Family.pad_token_ids),
        # since declaring "!" the pad token would change how prompts containing "!" tokenize.
        "pad_token": "<|endoftext|>",
    }
    return {
        "special_tokens_map.json": special,
        "tokenizer_config.json": special
        | {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True},
    }


def config_files(
    family: Family, overrides: Mapping[str, Mapping[str, Any]], scheduler: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Relative path -> JSON content of the filled config dir (tokenizer vocab and merges not included)."""
    files = {"model_index.json": _template(family, "model_index.json")}
    components = ["unet", "vae", *(["text_encoder"] if not family.only_text_encoder_2 else [])]
    components += ["text_encoder_2"] if family.has_text_encoder_2 else []
    for component in components:
        files[f"{component}/config.json"] = _template(family, f"{component}/config.json") | dict(
            overrides.get(component, {})
        )
    files["scheduler/scheduler_config.json"] = _template(family, "scheduler/scheduler_config.json") | dict(
        scheduler
    )
    tokenizers = (["tokenizer"] if not family.only_text_encoder_2 else []) + (
        ["tokenizer_2"] if family.has_text_encoder_2 else []
    )
    for tokenizer in tokenizers:
        files |= {f"{tokenizer}/{name}": content for name, content in _tokenizer_config().items()}
    return files


def default_config_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "sdweb-model-configs"


def write_config_dir(
    family: Family, files: Mapping[str, Mapping[str, Any]], cache_dir: Path | None = None
) -> Path:
    """Write `files` (plus the CLIP vocab and merges beside each tokenizer config) into a folder named
    by a hash of the content, once; later calls with the same content reuse it."""
    cache_root = Path(cache_dir) if cache_dir is not None else default_config_cache_dir()
    blob = json.dumps(files, sort_keys=True).encode()
    target = cache_root / f"{family.name}-{hashlib.sha256(blob).hexdigest()[:16]}"
    if (target / "model_index.json").is_file():
        return target
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = make_temp_folder(cache_root, f".{target.name}.")  # the umask's mode, kept by the rename
    try:
        for relative, content in files.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_text(
                json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
        for tokenizer_dir in {
            Path(relative).parent for relative in files if relative.startswith("tokenizer")
        }:
            for name in TOKENIZER_FILES:
                with (
                    (CONFIGS / "clip_tokenizer" / name).open("rb") as src,
                    (staging / tokenizer_dir / name).open("wb") as dst,
                ):
                    shutil.copyfileobj(src, dst)
        # The rename makes the folder appear whole; a concurrent writer of the same content may win.
        os.rename(staging, target)
    except OSError:
        if not (target / "model_index.json").is_file():
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


# ------------------------------------------------------------------------------------------- loading


def _read_file_info(path: Path, allow_unsafe_pickle: bool) -> tuple[FileHeader, bool]:
    """The file's header, and whether only the unsafe unpickler can read it."""
    if not path.is_file():
        raise InvalidModelFileError(
            f"{path.name} does not exist or is not a file.", code="model_file_missing"
        )
    try:
        return read_header(path), False
    except InvalidModelFileError as exc:
        if not allow_unsafe_pickle or exc.code != "unsafe_pickle":
            raise
    return read_header(path, allow_unsafe_pickle=True), True


def _scheduler_overrides(choice: PredictionChoice) -> dict[str, Any]:
    scheduler: dict[str, Any] = {"prediction_type": choice.prediction_type}
    if choice.zero_snr:
        scheduler |= {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
    return scheduler


def _inferred_architecture(path: Path, shapes: Shapes, family: Family) -> dict[str, dict[str, Any]]:
    try:
        return infer_architecture(shapes, family)
    except InvalidModelFileError as exc:
        raise InvalidModelFileError(
            f"{path.name}: {exc.message}",
            code=exc.code,
            hint="The file may be damaged or an architecture variant sdweb does not support.",
        ) from exc


def _wrap_load_error(path: Path, exc: Exception) -> InvalidModelFileError:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return InvalidModelFileError(
        f"{path.name} could not be loaded: {first_line}",
        code="model_load_failed",
        hint="The file may be damaged or an architecture variant sdweb does not support.",
    )


def _meta_leftovers(pipeline: Any) -> list[str]:
    """Components with parameters the file did not fill (they stay on the meta device)."""
    missing = []
    for name, component in pipeline.components.items():
        if isinstance(component, torch.nn.Module) and any(
            p.device.type == "meta" for p in component.parameters()
        ):
            missing.append(name)
    return missing


@contextlib.contextmanager
def _load_errors_named(path: Path) -> Iterator[None]:
    """Errors of diffusers' and transformers' conversion and model code name the file (our own pass through)."""
    try:
        yield
    except (MemoryError, torch.OutOfMemoryError, InvalidModelFileError):
        raise
    except Exception as exc:  # diffusers and transformers raise many types for an unloadable file
        raise _wrap_load_error(path, exc) from exc


def _encoder_components(family: Family) -> list[tuple[str, str]]:
    """(diffusers component, LDM key prefix) of the family's text encoders."""
    components = ("text_encoder_2",) if family.only_text_encoder_2 else ("text_encoder", "text_encoder_2")
    return list(zip(components, family.text_encoder_prefixes, strict=False))


def _load_sd_models(file: TensorFile, family: Family, config_dir: Path, dtype: torch.dtype,
                    index: Mapping[str, Any], unet: Any) -> dict[str, Any]:
    """The text encoders, the VAE and (unless given) the UNet, one after the other (sdweb.models.sd_components)."""
    models: dict[str, Any] = {}
    for component, prefix in _encoder_components(family):
        models[component] = load_clip_text_encoder(file, prefix, prefix in family.open_clip_prefixes,
                                                   index[component][1], config_dir, component, dtype)
    models["vae"] = load_vae(file, config_dir, dtype)
    models["unet"] = unet if unet is not None else load_unet(file, config_dir, dtype)
    return models


def check_checkpoint(path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False) -> Family:
    """What load_checkpoint checks before it builds anything: the file exists, is not damaged (every tensor
    lies inside it), loads safely and is a checkpoint of a known family whose architecture sdweb can build.
    Cheap: headers only (.safetensors, .gguf) or the JSON files of a diffusers folder. InvalidModelFileError
    naming the file otherwise. Module files are checked when loading."""
    from sdweb.models.diffusers_dir import detect_diffusers_family, is_diffusers_dir

    path = Path(path)
    if is_diffusers_dir(path):
        return detect_diffusers_family(path)
    header, _ = _read_file_info(path, allow_unsafe_pickle)
    family = detect_family(header.shapes, path.name)
    if family.engine == "flow":
        from sdweb.models.flow_loader import check_flow_checkpoint

        check_flow_checkpoint(path, header, family)
    else:
        _inferred_architecture(path, header.shapes, family)
    return family


def _with_vae_modules(loaded: LoadedCheckpoint, modules: Sequence[Path], allow_unsafe_pickle: bool) -> LoadedCheckpoint:
    """A checkpoint that carries its text encoders takes only a VAE module file (it replaces the VAE)."""
    from sdweb.models.modules import classify_module_file
    from sdweb.models.vae import read_vae_file

    files = [classify_module_file(m) for m in modules]
    wrong = [m for m in files if m.info.kind != "vae"]
    if wrong or len(files) > 1:
        what = f"{wrong[0].name} is not a VAE" if wrong else "only one VAE can be chosen"
        raise InvalidModelFileError(
            f"{what}: a {loaded.family.label} checkpoint takes only a VAE as module.", code="module_wrong_kind",
            hint="Text encoders can be chosen for transformer-only Flux, Chroma and SD 3 files.")
    pipeline = loaded.pipeline
    vae = read_vae_file(files[0].path, loaded.family, dict(pipeline.vae.config), allow_unsafe_pickle=allow_unsafe_pickle)
    pipeline.vae = vae.to(dtype=pipeline.vae.dtype)
    return replace(loaded, modules=(files[0].stem,), module_paths=(files[0].path,))


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    prediction_type: str | None = None,
    config_cache_dir: Path | None = None,
    allow_unsafe_pickle: bool = False,
    modules: Sequence[str | os.PathLike[str]] = (),
) -> LoadedCheckpoint:
    """Load a checkpoint as the diffusers pipeline of its family: an A1111 single file (SD 1.x / 2.x /
    SDXL), a Flux / Chroma / SD 3 file (all-in-one, transformer-only, GGUF, fp8), or a diffusers folder.

    prediction_type: the per-model user override ("epsilon" / "v_prediction") for SD files; None decides
    from a .yaml beside the file, the file's metadata and keys, and for plain SD2 files A1111's UNet test.
    modules: VAE and text-encoder files (Forge's "VAE / Text encoder" choice; pick them with
    `sdweb.models.modules.resolve_modules` for "Automatic"). Each replaces what the checkpoint carries for
    its slot; a flow family's missing or wrong component is an InvalidModelFileError naming the file and
    the fix. `LoadedCheckpoint.modules` holds the stems used, for the infotext.
    """
    import_lazy_packages()  # never half-imported beside another thread's first import (models/build_lock.py)
    with MODEL_BUILD_LOCK:  # accelerate's init_empty_weights patches torch process-wide (models/build_lock.py)
        return _load_checkpoint(path, device=device, dtype=dtype, prediction_type=prediction_type,
                                config_cache_dir=config_cache_dir, allow_unsafe_pickle=allow_unsafe_pickle,
                                modules=modules)


def _load_checkpoint(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    prediction_type: str | None = None,
    config_cache_dir: Path | None = None,
    allow_unsafe_pickle: bool = False,
    modules: Sequence[str | os.PathLike[str]] = (),
) -> LoadedCheckpoint:
    from sdweb.models.diffusers_dir import is_diffusers_dir, load_diffusers_dir

    path = Path(path)
    cache_dir = config_cache_dir if config_cache_dir is not None else default_config_cache_dir()
    module_paths = [Path(m) for m in modules]
    if is_diffusers_dir(path):
        pipeline, family, prediction = load_diffusers_dir(path, dtype=dtype)
        loaded = LoadedCheckpoint(pipeline, family, prediction, "folder config", None)
    else:
        header, unsafe_only = _read_file_info(path, allow_unsafe_pickle)
        family = detect_family(header.shapes, path.name)
        if family.engine == "flow":
            from sdweb.models.flow_loader import load_flow_checkpoint

            loaded = load_flow_checkpoint(path, header, family, module_paths, dtype=dtype, cache_dir=cache_dir,
                                          allow_unsafe_pickle=allow_unsafe_pickle)
            module_paths = []
        else:
            loaded = _load_sd_single_file(path, header, unsafe_only, family, dtype, prediction_type, cache_dir)
    if module_paths:
        loaded = _with_vae_modules(loaded, module_paths, allow_unsafe_pickle)
    trim_heap()  # the read buffers were freed in the heap's middle: hand those pages back to the OS
    if torch.device(device).type != "cpu":
        loaded.pipeline.to(device)
    return loaded


def _load_sd_single_file(path: Path, header: FileHeader, unsafe_only: bool, family: Family, dtype: torch.dtype,
                         prediction_type: str | None, cache_dir: Path) -> LoadedCheckpoint:
    import diffusers

    shapes = header.shapes
    overrides = _inferred_architecture(path, shapes, family)
    choice = choose_prediction(path, shapes, header.metadata, family, prediction_type)
    unet = None
    with open_tensor_file(path, header, allow_unsafe_pickle=unsafe_only) as file, _load_errors_named(path):
        if choice is None:  # a plain SD2 file with no hint: A1111's UNet test; the UNet is kept for the pipeline
            probe_dir = write_config_dir(family, config_files(family, overrides, {}), cache_dir)
            unet = load_unet(file, probe_dir, dtype)
            choice = PredictionChoice("v_prediction" if _unet_predicts_v(unet) else "epsilon", "unet test",
                                      "ztsnr" in shapes)
        if choice.prediction_type == "v_prediction" and family.v_variant is not None:
            family = FAMILIES[family.v_variant]
        files = config_files(family, overrides, _scheduler_overrides(choice))
        config_dir = write_config_dir(family, files, cache_dir)
        models = _load_sd_models(file, family, config_dir, dtype, files["model_index.json"], unet)
        del unet
        pipeline = build_pipeline(getattr(diffusers, family.load_pipeline), config_dir, models)
    missing = _meta_leftovers(pipeline)
    if missing:
        raise InvalidModelFileError(
            f"{path.name} lacks weights for {', '.join(missing)}.",
            hint="The file may be damaged or an architecture variant sdweb does not support.",
        )
    log.info("loaded %s as %s (%s from %s)", path.name, family.name, choice.prediction_type, choice.source)
    return LoadedCheckpoint(pipeline, family, choice.prediction_type, choice.source, config_dir)


def load_single_file(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    prediction_type: str | None = None,
    config_cache_dir: Path | None = None,
) -> Any:
    """`load_checkpoint(...).pipeline`."""
    loaded = load_checkpoint(
        path, device=device, dtype=dtype, prediction_type=prediction_type, config_cache_dir=config_cache_dir
    )
    return loaded.pipeline
