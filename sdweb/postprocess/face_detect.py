"""Finding faces and five landmarks (eyes, nose, mouth corners) for face restoration, offline.

Two detectors behind one small interface:
- RetinaFace (``detection_Resnet50_Final.pth``, the file A1111/facexlib download) when that file is in the
  GFPGAN or Codeformer folder: sdweb.postprocess.retinaface.
- Otherwise OpenCV's Haar cascades, which ship inside opencv-python(-headless) (``cv2.data``): a frontal-face
  cascade for boxes and the eye cascade for the eyes; nose and mouth are placed from the face's proportions.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sdweb.core.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["DetectedFace", "FaceDetector", "HaarFaceDetector", "import_cv2", "landmarks_from_box"]

# Where landmarks sit in a frontal-face box, as fractions of its width/height (left eye, right eye, nose,
# left and right mouth corner), measured on OpenCV's frontal-face cascade boxes.
_BOX_LANDMARKS = np.array([[0.31, 0.40], [0.69, 0.40], [0.50, 0.58], [0.36, 0.76], [0.64, 0.76]], dtype=np.float32)


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth corner, right mouth corner
    score: float = 1.0

    @property
    def size(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])


class FaceDetector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]: ...


def import_cv2() -> Any:
    try:
        return importlib.import_module("cv2")
    except ImportError as error:
        raise UserError("Face restoration needs OpenCV, which is not installed.", code="missing_dependency",
                        hint="Install it with: pip install opencv-python-headless") from error


def landmarks_from_box(x: float, y: float, width: float, height: float) -> np.ndarray:
    return _BOX_LANDMARKS * np.array([width, height], dtype=np.float32) + np.array([x, y], dtype=np.float32)


class HaarFaceDetector:
    """OpenCV's bundled frontal-face and eye cascades (no downloaded weights)."""

    name = "OpenCV Haar cascade"

    def __init__(self, min_face: int = 32) -> None:
        cv2 = import_cv2()
        folder = Path(cv2.data.haarcascades)
        self._cv2 = cv2
        self._faces = cv2.CascadeClassifier(str(folder / "haarcascade_frontalface_default.xml"))
        self._eyes = cv2.CascadeClassifier(str(folder / "haarcascade_eye.xml"))
        if self._faces.empty():
            raise UserError("OpenCV's face cascade could not be loaded.", code="missing_dependency",
                            hint="Reinstall opencv-python-headless (its cv2/data folder is incomplete).")
        self.min_face = min_face

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        cv2 = self._cv2
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        boxes = self._faces.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                             minSize=(self.min_face, self.min_face))
        faces = []
        for x, y, w, h in (boxes if len(boxes) else []):
            landmarks = landmarks_from_box(x, y, w, h)
            eyes = self._eye_centres(gray, int(x), int(y), int(w), int(h))
            if eyes is not None:
                landmarks[0], landmarks[1] = eyes
            faces.append(DetectedFace((float(x), float(y), float(x + w), float(y + h)), landmarks))
        faces.sort(key=lambda face: -face.size)
        return faces

    def _eye_centres(self, gray: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The two eyes in the upper half of the face box, if the eye cascade finds a plausible pair."""
        upper = gray[y:y + h // 2 + h // 10, x:x + w]
        found = self._eyes.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=4,
                                            minSize=(max(4, w // 10), max(4, w // 10)))
        centres = [np.array([x + ex + ew / 2, y + ey + eh / 2], dtype=np.float32) for ex, ey, ew, eh in found]
        left = [c for c in centres if c[0] < x + w / 2]
        right = [c for c in centres if c[0] >= x + w / 2]
        if not left or not right:
            return None
        left_eye = min(left, key=lambda c: abs(c[0] - (x + 0.31 * w)))
        right_eye = min(right, key=lambda c: abs(c[0] - (x + 0.69 * w)))
        distance = float(np.linalg.norm(right_eye - left_eye))
        if not 0.25 * w < distance < 0.6 * w or abs(float(right_eye[1] - left_eye[1])) > 0.25 * w:
            return None
        return left_eye, right_eye
