"""Face restoration: detection on a synthetic face, alignment, GFPGAN/CodeFormer (random full-size weights),
pasting back only inside the face's crop."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sdweb.core.errors import InvalidModelFileError, NotFoundError, UserError
from sdweb.postprocess.face_detect import HaarFaceDetector, import_cv2
from sdweb.postprocess.faces import CROP, FaceRestoration, align_matrix, default_detector, paste_back
from sdweb.testing import tiny_postprocess as tiny


def _scene() -> Image.Image:
    """A 320x256 picture with one face right of centre and plain background elsewhere."""
    image = Image.new("RGB", (320, 256), (60, 70, 90))
    image.paste(tiny.synthetic_face(scale=0.8), (100, 0))
    return image


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _footprint(face_landmarks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Where the aligned 512 px crop lands in the image (a boolean mask)."""
    cv2 = import_cv2()
    inverse = cv2.invertAffineTransform(align_matrix(face_landmarks))
    mask = cv2.warpAffine(np.ones((CROP, CROP), np.float32), inverse, size, flags=cv2.INTER_NEAREST)
    return cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0


@pytest.fixture(scope="module")
def faces(face_models: Path) -> FaceRestoration:
    return FaceRestoration(face_models / "GFPGAN", face_models / "Codeformer")


def test_opencv_cascade_finds_the_synthetic_face_and_its_eyes():
    found = HaarFaceDetector().detect(np.array(_scene()))
    assert len(found) == 1
    x0, y0, x1, y1 = found[0].box
    assert 150 < (x0 + x1) / 2 < 310 and 60 < (y0 + y1) / 2 < 200
    left_eye, right_eye, nose, mouth_left, mouth_right = found[0].landmarks
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < mouth_left[1]
    assert HaarFaceDetector().detect(np.full((200, 200, 3), 128, np.uint8)) == []


def test_restorers_are_listed_with_their_folders(faces: FaceRestoration, tmp_path: Path):
    listed = {info.name: info for info in faces.restorers()}
    assert list(listed) == ["CodeFormer", "GFPGAN"]
    assert listed["GFPGAN"].model_path.name == "GFPGANv1.4.safetensors"
    assert listed["CodeFormer"].model_path.name == "codeformer-v0.1.0.pth"
    empty = FaceRestoration(tmp_path / "GFPGAN", tmp_path / "Codeformer")
    assert [info.model_path for info in empty.restorers()] == [None, None]


def test_align_and_paste_back_round_trip_is_lossless_outside_and_close_inside():
    cv2 = import_cv2()
    image = np.asarray(_scene(), dtype=np.float32) / 255.0
    landmarks = HaarFaceDetector().detect(np.array(_scene()))[0].landmarks
    matrix = align_matrix(landmarks)
    aligned = cv2.warpAffine(image, matrix, (CROP, CROP), flags=cv2.INTER_LINEAR)
    moved = cv2.transform(landmarks[None], matrix)[0]
    eye_error = np.abs(moved[:2] - np.array([[193.0, 240.0], [319.0, 240.0]])).max()
    assert eye_error < 25  # the eyes land near the FFHQ template's eyes
    pasted = paste_back(image, aligned, matrix)
    footprint = _footprint(landmarks, (image.shape[1], image.shape[0]))
    assert np.array_equal(pasted[~footprint], image[~footprint])
    assert np.abs(pasted - image).max() < 0.2  # resampled twice, never far off


@pytest.fixture(scope="module")
def restored(faces: FaceRestoration) -> Image.Image:
    """The scene, with an alpha channel, through GFPGAN at full visibility (one network run per module)."""
    scene = _scene().convert("RGBA")
    scene.putalpha(200)
    return faces.restore(scene, "GFPGAN", visibility=1.0)


def test_gfpgan_changes_only_the_face_region(faces: FaceRestoration, restored: Image.Image):
    scene = _scene()
    assert restored.size == scene.size and restored.mode == "RGBA"
    assert set(np.asarray(restored.getchannel("A")).flatten()) == {200}  # alpha kept as it was
    found = faces.detect(scene)
    footprint = _footprint(found[0].landmarks, scene.size)
    difference = np.abs(_pixels(restored) - _pixels(scene)).max(axis=2)
    assert difference[~footprint].max() == 0
    x0, y0, x1, y1 = (int(v) for v in found[0].box)
    assert difference[y0:y1, x0:x1].mean() > 10  # random weights: the face is replaced by something else
    assert footprint.mean() < 0.6


def test_visibility_blends_with_the_input_and_is_deterministic(faces: FaceRestoration, restored: Image.Image):
    scene = _scene()
    half = _pixels(faces.restore(scene, "gfpgan", visibility=0.5))
    assert np.abs(half - (_pixels(restored) + _pixels(scene)) / 2).max() <= 1  # fixed noise: same face again
    assert faces.restore(scene, "GFPGAN", visibility=0.0) is scene


@pytest.mark.slow  # CI time (30 min for everything); ./run-tests.sh -m slow runs it
def test_codeformer_runs_and_changes_only_the_face_region(faces: FaceRestoration):
    scene = _scene()
    restored = faces.restore(scene, "CodeFormer", visibility=1.0, codeformer_weight=0.5)
    found = faces.detect(scene)
    difference = np.abs(_pixels(restored) - _pixels(scene)).max(axis=2)
    assert difference[~_footprint(found[0].landmarks, scene.size)].max() == 0
    x0, y0, x1, y1 = (int(v) for v in found[0].box)
    assert difference[y0:y1, x0:x1].mean() > 10


def test_an_image_without_faces_comes_back_unchanged(faces: FaceRestoration):
    plain = Image.new("RGB", (128, 96), (30, 140, 60))
    assert faces.restore(plain, "GFPGAN") is plain


def test_missing_model_says_where_to_put_it(tmp_path: Path):
    empty = FaceRestoration(tmp_path / "GFPGAN", tmp_path / "Codeformer")
    with pytest.raises(NotFoundError, match="No GFPGAN model") as error:
        empty.restore(_scene(), "GFPGAN")
    assert "GFPGANv1.4.pth" in error.value.hint and str(tmp_path / "GFPGAN") in error.value.hint
    with pytest.raises(NotFoundError, match="codeformer-v0.1.0.pth|No CodeFormer"):
        empty.require_model("CodeFormer")
    with pytest.raises(NotFoundError, match="'RestoreFormer'"):
        empty.restore(_scene(), "RestoreFormer")


def test_a_wrong_model_in_the_folder_is_a_user_error(tmp_path: Path):
    tiny.save_state_dict(tiny.esrgan_state_dict(layout="old"), tmp_path / "GFPGAN" / "GFPGANv9.pth")
    restoration = FaceRestoration(tmp_path / "GFPGAN", tmp_path / "Codeformer")
    with pytest.raises(InvalidModelFileError, match="GFPGANv9.pth is a ESRGAN model, not GFPGAN"):
        restoration.restore(_scene(), "GFPGAN")


def test_helper_weights_are_not_taken_for_the_restorer(tmp_path: Path, face_models: Path):
    shutil.copytree(face_models / "GFPGAN", tmp_path / "GFPGAN")
    (tmp_path / "GFPGAN" / "parsing_parsenet.pth").write_bytes(b"x")
    (tmp_path / "GFPGAN" / "detection_Resnet50_Final.pth").write_bytes(b"x")
    restoration = FaceRestoration(tmp_path / "GFPGAN", tmp_path / "Codeformer")
    assert restoration.require_model("GFPGAN").name == "GFPGANv1.4.safetensors"


def test_the_default_detector_is_opencv_without_retinaface_weights(tmp_path: Path):
    assert isinstance(default_detector([tmp_path]), HaarFaceDetector)


def test_without_opencv_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(UserError, match="needs OpenCV") as error:
        import_cv2()
    assert "opencv-python-headless" in error.value.hint
