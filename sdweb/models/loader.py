"""Load A1111 single-file checkpoints (.safetensors, .ckpt) into diffusers pipelines, offline and safely.

The path: read the tensor shapes (a safetensors header, or the safe unpickler for .ckpt) -> detect the
family -> infer the architecture -> write the family's bundled config template with those numbers, the
prediction type and the CLIP tokenizer into a cached config dir -> `Pipeline.from_single_file(path,
config=dir, local_files_only=True)`. Nothing reaches the network; a damaged, unsafe or misplaced file
becomes an `InvalidModelFileError` that names it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import pickle
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy
import safetensors
import safetensors.torch
import torch

from sdweb.core.atomic import make_temp_folder
from sdweb.core.errors import InvalidModelFileError
from sdweb.models.detect import Shapes, detect_family, infer_architecture
from sdweb.models.families import FAMILIES, Family

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

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MAX_HEADER_BYTES = 100 * 1024 * 1024
CONFIGS = resources.files("sdweb.models") / "configs"
TOKENIZER_FILES = ("vocab.json", "merges.txt")
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "C64": 8}  # fmt: skip
_UNSAFE_HINT = "Convert it to .safetensors, or pass --disable-safe-unpickle if you trust where it came from."


@dataclass(frozen=True)
class PredictionChoice:
    prediction_type: str  # "epsilon" or "v_prediction"
    source: str  # "argument", "yaml", "metadata", "file key", "unet test" or "family default"
    zero_snr: bool = False  # the file carries a `ztsnr` key: zero terminal SNR training


@dataclass(frozen=True)
class LoadedCheckpoint:
    pipeline: Any  # a diffusers DiffusionPipeline of family.load_pipeline
    family: Family
    prediction_type: str
    prediction_source: str
    config_dir: Path


# ------------------------------------------------------------------------------------------- reading


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES:
        raise InvalidModelFileError(
            f"{path.name}: unsupported model file type {suffix or '(none)'!r}.",
            hint="Use .safetensors (preferred) or .ckpt.",
        )
    return suffix


def _damaged(path: Path, why: str) -> InvalidModelFileError:
    return InvalidModelFileError(
        f"{path.name} is damaged or not a model file: {why}.",
        code="damaged_model_file",
        hint="Download it again; an interrupted download leaves a truncated file.",
    )


def _safetensors_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Shapes and __metadata__ from the header, after checking that the file can hold what it claims."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _damaged(path, f"{size} bytes, too short for a safetensors file")
            if prefix == b"version ":
                raise _damaged(path, "it is a Git LFS pointer, not the model itself")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
                raise _damaged(path, f"the header claims {header_len} bytes but the file has {size}")
            raw = handle.read(header_len)
    except OSError as exc:
        raise InvalidModelFileError(f"{path.name} cannot be read: {exc.strerror or exc}.") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, "the header is not valid JSON") from exc
    except RecursionError:  # thousands of nested brackets: no real header is nested more than 3 deep
        raise _damaged(path, "the header is nested too deeply to be a safetensors header") from None
    if not isinstance(header, dict):
        raise _damaged(path, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_size = size - 8 - header_len
    shapes = {name: _checked_entry(path, name, entry, data_size) for name, entry in header.items()}
    return shapes, {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def _checked_entry(path: Path, name: str, entry: Any, data_size: int) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (int(o) for o in entry["data_offsets"])
        dtype = str(entry["dtype"])
    except (TypeError, KeyError, ValueError) as exc:
        raise _damaged(path, f"tensor {name!r} has a malformed header entry") from exc
    if any(d < 0 for d in shape) or not 0 <= begin <= end <= data_size:
        raise _damaged(path, f"tensor {name!r} lies outside the file (truncated?)")
    itemsize = _DTYPE_BYTES.get(dtype)
    if itemsize is not None and end - begin != math.prod(shape) * itemsize:
        raise _damaged(path, f"tensor {name!r} has {end - begin} bytes for shape {list(shape)} of {dtype}")
    return shape


class _LightningCallback:
    """Stands in for pytorch_lightning's ModelCheckpoint, which old SD 1.x .ckpt files name as a dict key."""


def _ckpt_safe_globals() -> list[Any]:
    # What A1111's safe unpickler also accepts in real SD checkpoints: numpy scalars and dtypes
    # (training metadata) and the Lightning callback class. None of them runs code from the file.
    core = getattr(numpy, "_core", None) or numpy.core
    allowed: list[Any] = [
        (core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        (core.multiarray.scalar, "numpy._core.multiarray.scalar"),
        numpy.dtype,
        (_LightningCallback, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
    ]
    allowed += [type(numpy.dtype(code)) for code in ("f2", "f4", "f8", "i4", "i8", "u1", "b1")]
    return allowed


@contextlib.contextmanager
def _safe_unpickling() -> Iterator[None]:
    with torch.serialization.safe_globals(_ckpt_safe_globals()):
        yield


# How torch's weights_only unpickler words a refused global or call (as opposed to a damaged stream).
_REFUSED_SIGNS = (
    "GLOBAL",
    "allowlist this global",
    "unrecognized function",
    "Can only build",
    "Can only create",
)


def _pickle_problem(path: Path) -> str:
    with contextlib.suppress(OSError), path.open("rb") as handle:
        if handle.read(40).startswith(b"version https://git-lfs"):
            return "it is a Git LFS pointer, not the model itself"
    return "the pickle stream is unreadable"


def _torch_load(path: Path, allow_unsafe_pickle: bool) -> Any:
    try:
        mmap = zipfile.is_zipfile(path)
        with _safe_unpickling():
            return torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle, mmap=mmap)
    except MemoryError:
        raise
    except pickle.UnpicklingError as exc:
        if any(sign in str(exc) for sign in _REFUSED_SIGNS):
            raise InvalidModelFileError(
                f"{path.name} contains code or objects that safe loading refuses.",
                code="unsafe_pickle",
                hint=_UNSAFE_HINT,
            ) from exc
        raise _damaged(path, _pickle_problem(path)) from exc
    except Exception as exc:  # torch.load raises many types for damaged files (RuntimeError, EOFError, ...)
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        raise _damaged(path, f"unreadable ({type(exc).__name__}: {first_line})") from exc


def _flatten_tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a loaded pickle, `{"state_dict": ...}` unwrapped, nested dicts joined with dots."""
    while isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    found: dict[str, torch.Tensor] = {}
    if not isinstance(obj, Mapping):
        return found
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            found[name] = value
        elif isinstance(value, Mapping) and not prefix:  # one level: {"string_to_param": {"*": t}}
            found |= _flatten_tensors(value, f"{name}.")
    return found


def read_shapes(
    path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False
) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape. For .safetensors only the header is read; .ckpt files are unpickled safely."""
    path = Path(path)
    if _suffix(path) in SAFETENSORS_SUFFIXES:
        return _safetensors_header(path)[0]
    tensors = _flatten_tensors(_torch_load(path, allow_unsafe_pickle))
    return {name: tuple(tensor.shape) for name, tensor in tensors.items()}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """A safetensors file's __metadata__ ({} for other formats)."""
    path = Path(path)
    return _safetensors_header(path)[1] if _suffix(path) in SAFETENSORS_SUFFIXES else {}


def read_state_dict(
    path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False
) -> dict[str, torch.Tensor]:
    """All tensors of a model file on the CPU (`{"state_dict": ...}` unwrapped)."""
    path = Path(path)
    if _suffix(path) in PICKLE_SUFFIXES:
        return _flatten_tensors(_torch_load(path, allow_unsafe_pickle))
    _safetensors_header(path)  # validates sizes before safetensors maps the file
    try:
        return safetensors.torch.load_file(path, device="cpu")
    except (safetensors.SafetensorError, OSError, ValueError) as exc:
        raise _damaged(path, str(exc)[:200]) from exc


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


def _read_file_info(
    path: Path, allow_unsafe_pickle: bool
) -> tuple[dict[str, tuple[int, ...]], dict[str, str], bool]:
    """Shapes, safetensors metadata, and whether only the unsafe unpickler can read the file."""
    if not path.is_file():
        raise InvalidModelFileError(
            f"{path.name} does not exist or is not a file.", code="model_file_missing"
        )
    if _suffix(path) in SAFETENSORS_SUFFIXES:
        return (*_safetensors_header(path), False)
    try:
        return read_shapes(path), {}, False
    except InvalidModelFileError as exc:
        if not allow_unsafe_pickle or exc.code != "unsafe_pickle":
            raise
    return read_shapes(path, allow_unsafe_pickle=True), {}, True


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


def _from_single_file(
    pipeline_class: Any,
    path: Path,
    source: Path,
    config_dir: Path,
    dtype: torch.dtype,
    components: Mapping[str, Any],
) -> Any:
    """from_single_file on `source` (the file, or a converted copy of it); errors name `path`."""
    try:
        with _safe_unpickling():  # diffusers loads .ckpt with torch.load(weights_only=True) itself
            pipeline = pipeline_class.from_single_file(
                str(source), config=str(config_dir), local_files_only=True, torch_dtype=dtype, **components
            )
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as exc:  # diffusers and transformers raise many types for an unloadable file
        raise _wrap_load_error(path, exc) from exc
    missing = _meta_leftovers(pipeline)
    if missing:
        raise InvalidModelFileError(
            f"{path.name} lacks weights for {', '.join(missing)}.",
            hint="The file may be damaged or an architecture variant sdweb does not support.",
        )
    return pipeline


@contextlib.contextmanager
def _loadable_copy(path: Path, unsafe_only: bool, scratch: Path) -> Iterator[Path]:
    """The path diffusers should read: the file itself, or for a trusted pickle that only the unsafe
    unpickler reads, a temporary .safetensors copy (diffusers loads pickles with weights_only=True)."""
    if not unsafe_only:
        yield path
        return
    scratch.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".safetensors", dir=scratch)
    os.close(handle)
    copy = Path(name)
    try:
        tensors = read_state_dict(path, allow_unsafe_pickle=True)
        # clone: safetensors refuses tensors that share storage, which pickles allow
        safetensors.torch.save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, copy)
        del tensors
        yield copy
    finally:
        copy.unlink(missing_ok=True)


def _probe_sd2_prediction(
    path: Path,
    source: Path,
    family: Family,
    overrides: Mapping[str, Any],
    dtype: torch.dtype,
    cache_dir: Path,
) -> tuple[str, Any]:
    """Load the UNet alone and run A1111's v-prediction test on it; the UNet is reused for the pipeline."""
    import diffusers

    probe_dir = write_config_dir(family, config_files(family, overrides, {}), cache_dir)
    try:
        with _safe_unpickling():
            unet = diffusers.UNet2DConditionModel.from_single_file(
                str(source), config=str(probe_dir), subfolder="unet", local_files_only=True, torch_dtype=dtype
            )
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as exc:  # as in _from_single_file
        raise _wrap_load_error(path, exc) from exc
    return ("v_prediction" if _unet_predicts_v(unet) else "epsilon"), unet


def check_checkpoint(path: str | os.PathLike[str], *, allow_unsafe_pickle: bool = False) -> Family:
    """What load_checkpoint checks before it builds anything: the file exists, is not damaged (every tensor
    lies inside it), loads safely and is a checkpoint of a known family. Cheap for .safetensors (header only).
    InvalidModelFileError naming the file otherwise."""
    path = Path(path)
    shapes, _, _ = _read_file_info(path, allow_unsafe_pickle)
    family = detect_family(shapes, path.name)
    _inferred_architecture(path, shapes, family)
    return family


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    prediction_type: str | None = None,
    config_cache_dir: Path | None = None,
    allow_unsafe_pickle: bool = False,
) -> LoadedCheckpoint:
    """Load an A1111 single-file checkpoint as the diffusers pipeline of its family.

    prediction_type: the per-model user override ("epsilon" / "v_prediction"); None decides from a
    .yaml beside the file, the file's metadata and keys, and for plain SD2 files A1111's UNet test.
    """
    import diffusers

    path = Path(path)
    shapes, metadata, unsafe_only = _read_file_info(path, allow_unsafe_pickle)
    family = detect_family(shapes, path.name)
    overrides = _inferred_architecture(path, shapes, family)
    choice = choose_prediction(path, shapes, metadata, family, prediction_type)
    cache_dir = config_cache_dir if config_cache_dir is not None else default_config_cache_dir()
    components: dict[str, Any] = {}
    with _loadable_copy(path, unsafe_only, cache_dir / "tmp") as source:
        if choice is None:  # a plain SD2 file with no hint
            prediction, components["unet"] = _probe_sd2_prediction(
                path, source, family, overrides, dtype, cache_dir
            )
            choice = PredictionChoice(prediction, "unet test", "ztsnr" in shapes)
        if choice.prediction_type == "v_prediction" and family.v_variant is not None:
            family = FAMILIES[family.v_variant]
        files = config_files(family, overrides, _scheduler_overrides(choice))
        config_dir = write_config_dir(family, files, cache_dir)
        pipeline_class = getattr(diffusers, family.load_pipeline)
        pipeline = _from_single_file(pipeline_class, path, source, config_dir, dtype, components)
    if torch.device(device).type != "cpu":
        pipeline.to(device)
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
