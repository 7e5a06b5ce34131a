"""The upscaler registry: None / Lanczos / Nearest, every spandrel model file in the upscaler folders, and any
kind an extension registers; tiled inference and resizing to any scale.

Names follow A1111: built-ins first in their order, then the others sorted by lower-cased name; a model is
named by its file stem, except the standard downloads, which get A1111's names ("R-ESRGAN 4x+", "DAT x2",
"ScuNET GAN", ...) so infotexts from A1111 resolve. Folders are scanned on every listing (a few directory
reads), so the list always matches the folders. A file that cannot be loaded stays listed and fails with an
InvalidModelFileError naming it when it is used.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from sdweb.core.errors import InvalidModelFileError, NotFoundError, UserError
from sdweb.models.file_check import FileChecks
from sdweb.postprocess.spandrel_models import load_model_file, upscaler_dtype
from sdweb.postprocess.tiling import TileProgress, tiled_apply
from sdweb.runtime.memory import free_memory, is_out_of_memory

log = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_NAMES",
    "KNOWN_MODEL_NAMES",
    "SpandrelUpscaler",
    "UpscaleModel",
    "UpscaleOptions",
    "UpscalerEntry",
    "UpscalerFolder",
    "UpscalerKind",
    "UpscalerRegistry",
    "display_name",
    "image_to_tensor",
    "scale_from_name",
    "target_size",
    "tensor_to_image",
]

BUILTIN_NAMES = ("None", "Lanczos", "Nearest")
_RESAMPLERS = {"None": Image.Resampling.LANCZOS, "Lanczos": Image.Resampling.LANCZOS,
               "Nearest": Image.Resampling.NEAREST}
LISTED_SUFFIXES = (".pth", ".pt", ".safetensors")
MAX_PASSES = 3  # native-scale passes before the final resample (a x1 model runs once)
CACHED_MODELS = 2

# lower-cased file stem -> A1111's name for the files its upscalers download
KNOWN_MODEL_NAMES: dict[str, str] = {
    "realesrgan_x4plus": "R-ESRGAN 4x+",
    "realesrgan_x4plus_anime_6b": "R-ESRGAN 4x+ Anime6B",
    "realesr-general-x4v3": "R-ESRGAN General 4xV3",
    "realesr-general-wdn-x4v3": "R-ESRGAN General WDN 4xV3",
    "realesr-animevideov3": "R-ESRGAN AnimeVideo",
    "realesrgan_x2plus": "R-ESRGAN 2x+",
    "dat_x2": "DAT x2",
    "dat_x3": "DAT x3",
    "dat_x4": "DAT x4",
    "scunet_color_real_gan": "ScuNET GAN",
    "scunet_color_real_psnr": "ScuNET PSNR",
    "003_realsr_bsrgan_dfowmfc_s64w8_swinir-l_x4_gan": "SwinIR 4x",
}

# settings keys (tile, overlap) per spandrel architecture id, A1111's names; absent keys fall back to ESRGAN's
_TILE_KEYS = {"SwinIR": ("SWIN_tile", "SWIN_tile_overlap"), "Swin2SR": ("SWIN_tile", "SWIN_tile_overlap"),
              "HAT": ("SWIN_tile", "SWIN_tile_overlap"), "DAT": ("DAT_tile", "DAT_tile_overlap"),
              "SCUNet": ("SCUNET_tile", "SCUNET_tile_overlap")}
_SCALE_RE = re.compile(r"(?:^|[^a-z0-9])(?:x(\d)|(\d)x)(?=[^a-z0-9]|plus|v\d|$)", re.IGNORECASE)


@dataclass(frozen=True)
class UpscalerEntry:
    """One listed upscaler. ``scale`` is the native scale when known (from loading, else guessed from the name)."""

    name: str
    kind: str  # "builtin", "spandrel" or an extension's UpscalerKind.id
    path: Path | None = None
    scale: float | None = None
    folder: str | None = None  # the folder's label: "ESRGAN", "RealESRGAN", ...

    @property
    def model_name(self) -> str | None:
        return self.path.stem if self.path is not None else None


@dataclass(frozen=True)
class UpscalerFolder:
    path: Path
    label: str


@dataclass(frozen=True)
class UpscaleOptions:
    """How a model runs: tile size and overlap in input pixels (0 = untiled), from the A1111 settings."""

    tile: int = 192
    overlap: int = 8

    @staticmethod
    def from_settings(settings: Mapping[str, Any], architecture: str = "ESRGAN") -> UpscaleOptions:
        tile_key, overlap_key = _TILE_KEYS.get(architecture, ("ESRGAN_tile", "ESRGAN_tile_overlap"))
        tile = settings.get(tile_key, settings.get("ESRGAN_tile", 192))
        overlap = settings.get(overlap_key, settings.get("ESRGAN_tile_overlap", 8))
        return UpscaleOptions(tile=max(0, int(tile)), overlap=max(0, int(overlap)))


class UpscaleModel(Protocol):
    """A loaded model: one pass at its native scale."""

    @property
    def scale(self) -> int: ...

    def upscale_once(self, image: Image.Image, settings: Mapping[str, Any],
                     progress: TileProgress | None) -> Image.Image: ...


@dataclass(frozen=True)
class UpscalerKind:
    """An upscaler kind added by an extension: how to list its models and how to load one."""

    id: str
    list_models: Callable[[], Sequence[UpscalerEntry]]
    load: Callable[[UpscalerEntry], UpscaleModel]


def display_name(path: Path) -> str:
    return KNOWN_MODEL_NAMES.get(path.stem.lower(), path.stem)


def scale_from_name(name: str) -> int | None:
    """``4x-UltraSharp`` -> 4, ``RealESRGAN_x2plus`` -> 2, ``DAT x3`` -> 3; None when the name has no scale."""
    match = _SCALE_RE.search(name)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def target_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The size an upscale by ``scale`` gives: each side times scale, rounded down, at least 1."""
    return max(1, int(width * scale)), max(1, int(height * scale))


def image_to_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    mode = {1: "L", 3: "RGB", 4: "RGBA"}.get(channels)
    if mode is None:
        raise UserError(f"Upscaler models with {channels} input channels are not supported.", code="bad_model")
    array = np.array(image.convert(mode), dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    array = (tensor[0].float().clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    if array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], "L")
    return Image.fromarray(array, "RGBA" if array.shape[2] == 4 else "RGB")


class SpandrelUpscaler:
    """A spandrel image model on its device and dtype, run in tiles."""

    def __init__(self, descriptor: Any, name: str, device: str, half_dtype: torch.dtype) -> None:
        self.descriptor = descriptor
        self.name = name
        self.device = device
        self.dtype = upscaler_dtype(descriptor, device, half_dtype)
        descriptor.to(device=torch.device(device), dtype=self.dtype)

    @property
    def scale(self) -> int:
        return int(self.descriptor.scale)

    @property
    def architecture(self) -> str:
        return str(self.descriptor.architecture.id)

    def run_tensor(self, tensor: torch.Tensor, options: UpscaleOptions,
                   progress: TileProgress | None = None) -> torch.Tensor:
        """(1, C, H, W) in 0..1 -> (1, C', H*scale, W*scale) float32 on the CPU."""

        def run(tile: torch.Tensor) -> torch.Tensor:
            return self.descriptor(tile.to(self.device, self.dtype))

        tile = 0 if self.descriptor.tiling.name == "INTERNAL" else options.tile
        try:
            with torch.inference_mode():
                return tiled_apply(run, tensor, self.scale, tile, options.overlap, progress)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            free_memory(self.device)
            raise UserError(f"Out of memory upscaling a {tensor.shape[3]}x{tensor.shape[2]} image with "
                            f"{self.name}.", code="out_of_memory",
                            hint="Lower the upscaler tile size (setting ESRGAN_tile), or run upscalers on the "
                                 "CPU with --use-cpu esrgan.") from error

    def upscale_once(self, image: Image.Image, settings: Mapping[str, Any],
                     progress: TileProgress | None = None) -> Image.Image:
        options = UpscaleOptions.from_settings(settings, self.architecture)
        alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") and self.descriptor.input_channels != 4 \
            else None
        result = tensor_to_image(self.run_tensor(image_to_tensor(image, self.descriptor.input_channels), options,
                                                 progress))
        if alpha is not None:  # the network sees colour only; alpha is resampled alongside
            result = result.convert("RGB")
            result.putalpha(alpha.resize(result.size, Image.Resampling.LANCZOS))
        elif result.mode == "L" and image.mode != "L":
            result = result.convert("RGB")
        return result


@dataclass
class _Cached:
    stamp: tuple[int, int]
    model: UpscaleModel


@dataclass
class UpscalerRegistry:
    """Every upscaler this install can use. One per AppState; extensions add folders or kinds."""

    folders: list[UpscalerFolder]
    device: str = "cpu"
    half_dtype: torch.dtype = torch.float32
    kinds: dict[str, UpscalerKind] = field(default_factory=dict)
    _cache: OrderedDict[Path, _Cached] = field(default_factory=OrderedDict, repr=False)
    _scales: dict[Path, int] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _checks: FileChecks = field(default_factory=FileChecks, repr=False)

    @classmethod
    def from_paths(cls, paths: Any, device: str = "cpu", half_dtype: torch.dtype = torch.float32
                   ) -> UpscalerRegistry:
        """The A1111 folders of a DataPaths (ESRGAN, RealESRGAN, SwinIR, DAT, ScuNET, HAT)."""
        folders = [UpscalerFolder(paths.esrgan, "ESRGAN"), UpscalerFolder(paths.realesrgan, "RealESRGAN"),
                   UpscalerFolder(paths.swinir, "SwinIR"), UpscalerFolder(paths.dat, "DAT"),
                   UpscalerFolder(paths.scunet, "ScuNET"), UpscalerFolder(paths.models_dir / "HAT", "HAT")]
        return cls(folders=folders, device=device, half_dtype=half_dtype)

    # ------------------------------------------------------------------------------------------- registering

    def register_folder(self, path: Path, label: str) -> None:
        """Scan another folder for spandrel models (an extension's models/<Name>)."""
        with self._lock:
            if all(folder.path != Path(path) for folder in self.folders):
                self.folders.append(UpscalerFolder(Path(path), label))

    def register_kind(self, kind: UpscalerKind) -> None:
        """Add a kind of upscaler that is not a spandrel file (an extension's own loader)."""
        with self._lock:
            if kind.id in self.kinds or kind.id in ("builtin", "spandrel"):
                raise ValueError(f"upscaler kind {kind.id!r} is already registered")
            self.kinds[kind.id] = kind

    # ------------------------------------------------------------------------------------------------ listing

    def entries(self) -> list[UpscalerEntry]:
        """Built-ins, then every model sorted by lower-cased name (names unique: a clash gets its folder)."""
        models: list[UpscalerEntry] = []
        taken = set(BUILTIN_NAMES)
        for folder in list(self.folders):
            for path in _model_files(folder.path):
                name = display_name(path)
                if name in taken:
                    name = f"{name} ({folder.label})"
                if name in taken:
                    continue
                taken.add(name)
                scale = self._scales.get(path) or scale_from_name(name) or scale_from_name(path.stem)
                models.append(UpscalerEntry(name, "spandrel", path, scale, folder.label))
        for kind in list(self.kinds.values()):
            for entry in _listed(kind):
                if entry.name not in taken:
                    taken.add(entry.name)
                    models.append(replace(entry, kind=kind.id))
        models.sort(key=lambda entry: entry.name.lower())
        return [UpscalerEntry(name, "builtin", scale=4) for name in BUILTIN_NAMES] + models  # A1111 lists 4

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries()]

    def problems(self) -> dict[str, str]:
        """Upscaler name -> what is wrong with its model file, for the listed files that cannot be read (each
        is logged once; using one gives an InvalidModelFileError naming it)."""
        return {entry.name: problem for entry in self.entries() if entry.kind == "spandrel" and entry.path
                and (problem := self._checks.problem(entry.path, "Upscaler"))}

    def in_folder(self, label: str) -> list[UpscalerEntry]:
        """The models from one folder (``/realesrgan-models`` lists the "RealESRGAN" folder)."""
        return [entry for entry in self.entries() if entry.folder == label]

    def find(self, name: str) -> UpscalerEntry:
        """By name, else by file stem, else case-insensitively; NotFoundError lists what exists."""
        entries = self.entries()
        for matches in (lambda e: e.name == name, lambda e: e.model_name == name,
                        lambda e: e.name.lower() == name.lower()):
            for entry in entries:
                if matches(entry):
                    return entry
        raise NotFoundError(f"Upscaler {name!r} not found.", code="upscaler_not_found",
                            hint=f"Use one of: {', '.join(e.name for e in entries)}. Model upscalers are files in "
                                 f"{', '.join('models/' + f.label for f in self.folders)}.")

    # ------------------------------------------------------------------------------------------------ loading

    def load(self, entry: UpscalerEntry) -> UpscaleModel:
        """The loaded model (the last two are kept); InvalidModelFileError names a bad file."""
        if entry.kind == "builtin":
            raise ValueError("built-in upscalers are resamplers, not models")
        if entry.kind != "spandrel":
            return self.kinds[entry.kind].load(entry)
        assert entry.path is not None
        stamp = _stamp(entry.path)
        with self._lock:
            cached = self._cache.get(entry.path)
            if cached is not None and cached.stamp == stamp:
                self._cache.move_to_end(entry.path)
                return cached.model
            descriptor = load_model_file(entry.path)
            if descriptor.purpose == "FaceSR":
                raise InvalidModelFileError(
                    f"{entry.path.name} is a face restoration model ({descriptor.architecture.name}), "
                    "not an upscaler.", hint="Put GFPGAN models in models/GFPGAN and CodeFormer models in "
                                             "models/Codeformer.")
            model = SpandrelUpscaler(descriptor, entry.name, self.device, self.half_dtype)
            self._scales[entry.path] = model.scale
            self._cache[entry.path] = _Cached(stamp, model)
            while len(self._cache) > CACHED_MODELS:
                self._cache.popitem(last=False)
            log.info("Loaded upscaler %s: %s x%d (%s)", entry.name, model.architecture, model.scale,
                     str(model.dtype).removeprefix("torch."))
            return model

    def unload(self) -> None:
        with self._lock:
            self._cache.clear()
        free_memory(self.device)

    # ---------------------------------------------------------------------------------------------- upscaling

    def upscale_to(self, image: Image.Image, name: str, width: int, height: int,
                   settings: Mapping[str, Any], progress: TileProgress | None = None) -> Image.Image:
        """Resize to exactly width x height: a model runs at its native scale as often as needed (up to 3
        passes, until both sides reach the target; a x1 model once), then the result is Lanczos-resampled."""
        entry = self.find(name)
        if entry.kind == "builtin":
            if image.size == (width, height):
                return image
            return image.resize((width, height), _RESAMPLERS[entry.name])
        model = self.load(entry)
        for index in range(MAX_PASSES):
            reached = image.width >= width and image.height >= height
            if reached and not (model.scale == 1 and index == 0):  # a x1 (restoration) model always runs once
                break
            before = image.size
            image = model.upscale_once(image, settings, progress)
            if image.size == before or model.scale == 1:
                break
        if image.size == (width, height):
            return image
        return image.resize((width, height), Image.Resampling.LANCZOS)

    def upscale_by(self, image: Image.Image, name: str, scale: float, settings: Mapping[str, Any],
                   progress: TileProgress | None = None) -> Image.Image:
        width, height = target_size(image.width, image.height, scale)
        return self.upscale_to(image, name, width, height, settings, progress)


def _listed(kind: UpscalerKind) -> Sequence[UpscalerEntry]:
    try:
        return list(kind.list_models())
    except Exception as error:  # a failing extension is reported, not fatal
        log.warning("Upscaler kind %s could not list its models: %s", kind.id, error)
        return []


def _model_files(folder: Path) -> list[Path]:
    try:
        candidates = sorted(folder.rglob("*"))
    except OSError:
        return []
    return [path for path in candidates
            if path.suffix.lower() in LISTED_SUFFIXES and not path.name.startswith(".") and path.is_file()]


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError as error:
        raise InvalidModelFileError(f"{path.name} could not be read: {error.strerror}.",
                                    hint="The file was moved or deleted: refresh the upscaler list.") from error
    return stat.st_mtime_ns, stat.st_size
