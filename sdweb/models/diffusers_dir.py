"""Diffusers model folders (model_index.json + one subfolder per component) -> family and pipeline, offline.

The family comes from `model_index.json`'s pipeline class and the component configs: SD 1.x vs 2.x by the
text encoder's activation (OpenAI CLIP quick_gelu, OpenCLIP gelu), inpainting by 9 UNet input channels,
v-prediction by the scheduler config, the SDXL refiner by its missing first text encoder, Flux dev vs
schnell by `guidance_embeds`, SD 3 / 3.5 medium / large by dual attention layers and qk-norm.
Loading is `Pipeline.from_pretrained(folder, local_files_only=True)`; weights saved only as the `fp16`
variant are found too. Safety checkers are never loaded (A1111 has none).
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

import torch

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.families import FAMILIES, Family

__all__ = ["detect_diffusers_family", "is_diffusers_dir", "load_diffusers_dir"]

log = logging.getLogger(__name__)

MODEL_INDEX = "model_index.json"


def is_diffusers_dir(path: Path) -> bool:
    return path.is_dir() and (path / MODEL_INDEX).is_file()


def _json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelFileError(f"{folder.name}: {path.relative_to(folder)} is unreadable ({exc}).",
                                    code="damaged_model_file", hint="Download the model folder again.") from exc
    if not isinstance(data, dict):
        raise InvalidModelFileError(f"{folder.name}: {path.relative_to(folder)} is not a JSON object.",
                                    code="damaged_model_file", hint="Download the model folder again.")
    return data


def _config(folder: Path, component: str) -> dict[str, Any]:
    return _json(folder / component / ("scheduler_config.json" if component == "scheduler" else "config.json"), folder)


def _present(index: dict[str, Any], component: str) -> bool:
    entry = index.get(component)
    return isinstance(entry, list) and len(entry) == 2 and entry[0] is not None


def _sd_family(folder: Path, index: dict[str, Any], xl: bool) -> str:
    unet = _config(folder, "unet")
    inpaint = unet.get("in_channels") == 9
    if xl:
        if not _present(index, "text_encoder"):
            return "sdxl-refiner"
        return "sdxl-inpaint" if inpaint else "sdxl"
    sd2 = _config(folder, "text_encoder").get("hidden_act") == "gelu"
    if inpaint:
        return "sd2-inpaint" if sd2 else "sd1-inpaint"
    if sd2:
        return "sd2-v" if _config(folder, "scheduler").get("prediction_type") == "v_prediction" else "sd2"
    return "sd1"


def _family_name(folder: Path, index: dict[str, Any]) -> str | None:
    pipeline = str(index.get("_class_name", ""))
    if pipeline.startswith("StableDiffusionXL"):
        return _sd_family(folder, index, xl=True)
    if pipeline.startswith("StableDiffusion") and not pipeline.startswith("StableDiffusion3"):
        return _sd_family(folder, index, xl=False)
    transformer = _config(folder, "transformer")
    if pipeline == "FluxFillPipeline":
        return "flux-fill"
    if pipeline.startswith("FluxKontext"):
        return "flux-kontext"
    if pipeline.startswith("ZImage"):
        return "z-image"
    if pipeline.startswith("Flux") and not pipeline.startswith("Flux2"):
        return "flux-dev" if transformer.get("guidance_embeds") else "flux-schnell"
    if pipeline.startswith("Chroma"):
        return "chroma"
    if pipeline.startswith("StableDiffusion3"):
        if transformer.get("dual_attention_layers"):
            return "sd35-medium"
        return "sd35-large" if transformer.get("qk_norm") else "sd3"
    return None


def detect_diffusers_family(folder: str | Path) -> Family:
    """The family of a diffusers folder, from its JSON files only."""
    folder = Path(folder)
    if not is_diffusers_dir(folder):
        raise InvalidModelFileError(f"{folder.name} is not a diffusers model folder (no {MODEL_INDEX}).",
                                    code="model_file_missing")
    index = _json(folder / MODEL_INDEX, folder)
    name = _family_name(folder, index)
    if name is None:
        raise InvalidModelFileError(
            f"{folder.name} is a diffusers {index.get('_class_name') or 'model'} folder, which sdweb cannot load.",
            code="unsupported_family",
            hint="sdweb loads SD 1.x, SD 2.x, SDXL, Flux.1, Chroma and SD 3 / 3.5 folders.")
    return FAMILIES[name]


def _variant(folder: Path, index: dict[str, Any]) -> str | None:
    """"fp16" when the weights exist only as the fp16 variant (`*.fp16.safetensors`)."""
    for component in index:
        if component.startswith("_") or not _present(index, component) or not (folder / component).is_dir():
            continue
        files = [p.name for p in (folder / component).iterdir()]
        plain = any(n.endswith((".safetensors", ".bin")) and ".fp16." not in n for n in files)
        if not plain and any(".fp16." in n for n in files):
            return "fp16"
    return None


def load_diffusers_dir(folder: str | Path, *, dtype: torch.dtype = torch.float32) -> tuple[Any, Family, str]:
    """(pipeline on the CPU in `dtype`, family, prediction type) of a diffusers folder."""
    import diffusers

    folder = Path(folder)
    family = detect_diffusers_family(folder)
    index = _json(folder / MODEL_INDEX, folder)
    pipeline_class = getattr(diffusers, str(index["_class_name"]), None) or getattr(diffusers, family.load_pipeline)
    options: dict[str, Any] = {}
    parameters = inspect.signature(pipeline_class.__init__).parameters
    for name, value in (("safety_checker", None), ("feature_extractor", None), ("requires_safety_checker", False)):
        if name in parameters and name in index:
            options[name] = value
    try:
        pipeline = pipeline_class.from_pretrained(str(folder), local_files_only=True, torch_dtype=dtype,
                                                  variant=_variant(folder, index), **options)
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as exc:  # diffusers and transformers raise many types for a broken folder
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InvalidModelFileError(f"{folder.name} could not be loaded: {first_line}", code="model_load_failed",
                                    hint="A component's weights may be missing or damaged.") from exc
    prediction = family.prediction_type
    if family.engine == "unet":
        prediction = str(_config(folder, "scheduler").get("prediction_type") or family.prediction_type)
    log.info("loaded diffusers folder %s as %s", folder.name, family.name)
    return pipeline, family, prediction
