"""Face restoration with GFPGAN and CodeFormer networks (through spandrel), for Extras and ``restore_faces``.

For each detected face: a similarity transform maps its five landmarks onto the FFHQ 512x512 template, the
aligned crop goes through the network, and the result is warped back and blended in with a feathered mask
that stays inside the crop, so pixels away from faces are never changed. Visibility then blends the whole
result with the input, as A1111 does.

Models: the GFPGAN file in models/GFPGAN (GFPGANv1.4.pth, ...) and the CodeFormer file in models/Codeformer
(codeformer-v0.1.0.pth; its architecture comes from the spandrel-extra-arches package). Face detection:
sdweb.postprocess.face_detect (RetinaFace weights when present, else OpenCV's bundled cascades).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sdweb.core.errors import InvalidModelFileError, NotFoundError, UserError
from sdweb.postprocess.face_detect import DetectedFace, FaceDetector, HaarFaceDetector, import_cv2
from sdweb.postprocess.spandrel_models import load_model_file
from sdweb.runtime.memory import free_memory, is_out_of_memory

log = logging.getLogger(__name__)

__all__ = [
    "FACE_RESTORERS",
    "FFHQ_TEMPLATE_512",
    "FaceRestoration",
    "FaceRestorerInfo",
    "RETINAFACE_FILE",
    "align_matrix",
    "paste_back",
]

FACE_RESTORERS = ("CodeFormer", "GFPGAN")  # A1111's /face-restorers order
CROP = 512
# The FFHQ alignment template at 512 px (eyes, nose, mouth corners), as GFPGAN and CodeFormer were trained on.
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.19360], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float32)
RETINAFACE_FILE = "detection_Resnet50_Final.pth"
# facexlib's helper weights that sit next to the restorers and are not restorers themselves
_HELPER_FILES = {RETINAFACE_FILE.lower(), "parsing_parsenet.pth", "parsing_bisenet.pth",
                 "detection_mobilenet0.25_final.pth", "alignment_wflw_4hg.pth"}
_SUFFIXES = (".pth", ".pt", ".safetensors")
MIN_FACE_PIXELS = 16


@dataclass(frozen=True)
class FaceRestorerInfo:
    name: str  # "CodeFormer" / "GFPGAN"
    cmd_dir: Path  # the folder its model is read from
    model_path: Path | None  # None when the folder has no model yet


def align_matrix(landmarks: np.ndarray) -> np.ndarray:
    """2x3 similarity transform from image pixels to the 512 px aligned crop."""
    cv2 = import_cv2()
    matrix, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), FFHQ_TEMPLATE_512, method=cv2.LMEDS)
    if matrix is None:  # degenerate landmarks: fit the eyes alone
        matrix, _ = cv2.estimateAffinePartial2D(landmarks[:2].astype(np.float32), FFHQ_TEMPLATE_512[:2])
    if matrix is None:
        raise ValueError("face landmarks are degenerate")
    return matrix


def paste_back(base: np.ndarray, restored_crop: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Warp a restored 512 px crop (float RGB) back into ``base`` (float RGB) with a feathered mask.

    The mask is the crop's footprint, eroded and then blurred by the same amount, so nothing outside the
    footprint changes and the seam is soft (about 4% of the face's size).
    """
    cv2 = import_cv2()
    height, width = base.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    face_pixels = CROP * float(np.sqrt(abs(np.linalg.det(inverse[:, :2]))))
    warped = cv2.warpAffine(restored_crop, inverse, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(np.ones((CROP, CROP), np.float32), inverse, (width, height), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    feather = max(1, int(face_pixels * 0.04))
    mask = cv2.erode(mask, np.ones((2 * feather + 3, 2 * feather + 3), np.uint8))
    mask = cv2.GaussianBlur(mask, (2 * feather + 1, 2 * feather + 1), 0)[:, :, None]
    return base * (1.0 - mask) + warped * mask


class _Network:
    """One restorer's loaded network (reloaded when its file changes)."""

    def __init__(self, name: str, folder: Path, device: str) -> None:
        self.name = name
        self.folder = Path(folder)
        self.device = device
        self._loaded: tuple[Path, tuple[int, int], Any] | None = None

    def model_path(self) -> Path | None:
        try:
            files = sorted((p for p in self.folder.rglob("*") if p.suffix.lower() in _SUFFIXES and p.is_file()
                            and p.name.lower() not in _HELPER_FILES), key=lambda p: p.name.lower(), reverse=True)
        except OSError:
            return None
        named = [p for p in files if self.name.lower() in p.name.lower()]
        return (named or files or [None])[0]

    def descriptor(self) -> Any:
        path = self.model_path()
        if path is None:
            raise NotFoundError(f"No {self.name} model in {self.folder}.", code="face_model_missing",
                                hint=f"Put {_DOWNLOAD_NAMES[self.name]} into {self.folder} (no download is "
                                     "made automatically).")
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._loaded is not None and self._loaded[:2] == (path, stamp):
            return self._loaded[2]
        self._loaded = None
        descriptor = load_model_file(path)
        architecture = str(descriptor.architecture.id)
        if architecture != self.name:
            raise InvalidModelFileError(f"{path.name} is a {descriptor.architecture.name} model, not {self.name}.",
                                        hint=f"Only {self.name} models belong in {self.folder}.")
        descriptor.to(device=torch.device(self.device), dtype=torch.float32)
        self._loaded = (path, stamp, descriptor)
        log.info("Loaded %s face restorer from %s", self.name, path.name)
        return descriptor

    def unload(self) -> None:
        self._loaded = None

    def run(self, crop: torch.Tensor, codeformer_weight: float) -> torch.Tensor:
        """(1, 3, 512, 512) in -1..1 -> the restored crop in -1..1."""
        model = self.descriptor().model
        with torch.inference_mode():
            if self.name == "CodeFormer":
                output = model(crop.to(self.device), weight=codeformer_weight, adain=True)[0]
            else:  # fixed noise buffers rather than fresh noise: the same input gives the same face
                output = model(crop.to(self.device), return_rgb=False, randomize_noise=False)[0]
        return output.float().cpu()


_DOWNLOAD_NAMES = {"GFPGAN": "GFPGANv1.4.pth", "CodeFormer": "codeformer-v0.1.0.pth"}


@dataclass
class FaceRestoration:
    """GFPGAN and CodeFormer with one face detector; one per AppState."""

    gfpgan_dir: Path
    codeformer_dir: Path
    gfpgan_device: str = "cpu"
    codeformer_device: str = "cpu"
    detector_factory: Callable[[list[Path]], FaceDetector] | None = None
    _networks: dict[str, _Network] = field(default_factory=dict, repr=False)
    _detector: FaceDetector | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self._networks = {"GFPGAN": _Network("GFPGAN", self.gfpgan_dir, self.gfpgan_device),
                          "CodeFormer": _Network("CodeFormer", self.codeformer_dir, self.codeformer_device)}

    @classmethod
    def from_paths(cls, paths: Any, plan: Any | None = None) -> FaceRestoration:
        return cls(paths.gfpgan, paths.codeformer,
                   gfpgan_device=getattr(plan, "gfpgan_device", "cpu"),
                   codeformer_device=getattr(plan, "codeformer_device", "cpu"))

    def restorers(self) -> list[FaceRestorerInfo]:
        return [FaceRestorerInfo(name, self._networks[name].folder, self._networks[name].model_path())
                for name in FACE_RESTORERS]

    def canonical_name(self, model: str) -> str:
        for name in FACE_RESTORERS:
            if model.strip().lower() == name.lower():
                return name
        raise NotFoundError(f"Face restoration model {model!r} not found.", code="face_model_not_found",
                            hint=f"Use one of: {', '.join(FACE_RESTORERS)}.")

    def require_model(self, model: str) -> Path:
        """The model file ``model`` would use; NotFoundError with what to do when there is none (no loading)."""
        network = self._networks[self.canonical_name(model)]
        path = network.model_path()
        if path is None:
            raise NotFoundError(f"No {network.name} model in {network.folder}.", code="face_model_missing",
                                hint=f"Put {_DOWNLOAD_NAMES[network.name]} into {network.folder} (no download is "
                                     "made automatically).")
        return path

    def detector(self) -> FaceDetector:
        with self._lock:
            if self._detector is None:
                folders = [self.gfpgan_dir, self.codeformer_dir]
                self._detector = (self.detector_factory or default_detector)(folders)
                log.info("Face detector: %s", self._detector.name)
            return self._detector

    def detect(self, image: Image.Image) -> list[DetectedFace]:
        return [face for face in self.detector().detect(np.array(image.convert("RGB")))
                if face.size >= MIN_FACE_PIXELS]

    def restore(self, image: Image.Image, model: str, visibility: float = 1.0,
                codeformer_weight: float = 0.5) -> Image.Image:
        """Every detected face restored with ``model`` ("GFPGAN"/"CodeFormer"), blended by ``visibility``.

        No face found: the image comes back unchanged. Alpha is kept as it was.
        """
        name = self.canonical_name(model)
        if visibility <= 0:
            return image
        with self._lock:
            network = self._networks[name]
            network.descriptor()  # a missing or bad model file fails before any work
            rgb = image.convert("RGB")
            faces = self.detect(rgb)
            if not faces:
                log.info("%s: no face found in a %dx%d image", name, image.width, image.height)
                return image
            try:
                restored = self._restore_faces(np.asarray(rgb, dtype=np.float32) / 255.0, faces, network,
                                               codeformer_weight)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                free_memory(network.device)
                raise UserError(f"Out of memory restoring faces with {name}.", code="out_of_memory",
                                hint=f"Run it on the CPU with --use-cpu {name.lower()}.") from error
        result = Image.fromarray((np.clip(restored, 0, 1) * 255.0).round().astype(np.uint8), "RGB")
        if visibility < 1:
            result = Image.blend(rgb, result, float(visibility))
        if image.mode == "RGBA":
            result.putalpha(image.getchannel("A"))
        return result

    def _restore_faces(self, base: np.ndarray, faces: list[DetectedFace], network: _Network,
                       codeformer_weight: float) -> np.ndarray:
        cv2 = import_cv2()
        for face in faces:
            try:
                matrix = align_matrix(face.landmarks)
            except ValueError:
                continue
            crop = cv2.warpAffine(base, matrix, (CROP, CROP), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT_101)
            tensor = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None] * 2.0 - 1.0
            output = network.run(tensor, codeformer_weight)
            restored = ((output[0].clamp(-1, 1) + 1.0) / 2.0).permute(1, 2, 0).numpy().astype(np.float32)
            base = paste_back(base, restored, matrix)
        return base

    def unload(self) -> None:
        with self._lock:
            for network in self._networks.values():
                network.unload()
        free_memory(self.gfpgan_device)


def default_detector(folders: list[Path]) -> FaceDetector:
    """RetinaFace when its weights are in one of ``folders`` (and load), else OpenCV's cascades."""
    for folder in folders:
        path = Path(folder) / RETINAFACE_FILE
        if path.is_file():
            try:
                from sdweb.postprocess.retinaface import RetinaFaceDetector

                return RetinaFaceDetector.from_file(path)
            except (UserError, ImportError, RuntimeError, KeyError) as error:
                log.warning("RetinaFace weights %s could not be used (%s); using OpenCV's cascades", path, error)
    return HaarFaceDetector()
