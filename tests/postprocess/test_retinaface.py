"""RetinaFace: the weights layout of detection_Resnet50_Final.pth loads, anchors and decoding, NMS, and the
detector is chosen when the file is present (random weights: detections themselves mean nothing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sdweb.core.errors import InvalidModelFileError
from sdweb.postprocess.faces import RETINAFACE_FILE, default_detector
from sdweb.postprocess.retinaface import (
    RetinaFace,
    RetinaFaceDetector,
    decode_boxes,
    decode_landmarks,
    nms,
    prior_boxes,
)
from sdweb.testing import tiny_postprocess as tiny

# a few of the key names facexlib's file has (ResNet-50 body, FPN, SSH, heads)
FACEXLIB_KEYS = ("body.conv1.weight", "body.layer1.0.downsample.0.weight", "body.layer4.2.bn3.running_var",
                 "fpn.output1.0.weight", "fpn.merge2.1.bias", "ssh1.conv3X3.0.weight", "ssh3.conv7x7_3.1.weight",
                 "ClassHead.0.conv1x1.weight", "BboxHead.2.conv1x1.bias", "LandmarkHead.1.conv1x1.weight")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("GFPGAN")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = {f"module.{key}": value.half() for key, value in RetinaFace().state_dict().items()}
    torch.save(state, folder / RETINAFACE_FILE)  # DataParallel-style prefix, as some copies have
    return folder / RETINAFACE_FILE


def test_layout_matches_facexlib_names():
    keys = set(RetinaFace().state_dict())
    assert set(FACEXLIB_KEYS) <= keys
    assert RetinaFace().state_dict()["ClassHead.0.conv1x1.weight"].shape == (4, 256, 1, 1)
    assert RetinaFace().state_dict()["LandmarkHead.0.conv1x1.weight"].shape == (20, 256, 1, 1)


def test_priors_follow_the_heads_order():
    priors = prior_boxes(64, 32)
    # stride 8: 8x4 positions x 2 anchors, stride 16: 4x2 x 2, stride 32: 2x1 x 2
    assert priors.shape == (64 + 16 + 4, 4)
    assert torch.allclose(priors[0], torch.tensor([4 / 32, 4 / 64, 16 / 32, 16 / 64]))
    assert torch.allclose(priors[1], torch.tensor([4 / 32, 4 / 64, 32 / 32, 32 / 64]))
    assert torch.allclose(priors[2, :2], torch.tensor([12 / 32, 4 / 64]))  # next column, same row


def test_decoding_zero_offsets_gives_the_anchor():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    assert torch.allclose(decode_boxes(torch.zeros(1, 4), priors), torch.tensor([[0.4, 0.3, 0.6, 0.7]]))
    assert torch.allclose(decode_landmarks(torch.zeros(1, 10), priors), torch.full((1, 5, 2), 0.5))
    shifted = decode_boxes(torch.tensor([[10.0, 0.0, 0.0, 0.0]]), priors)
    assert torch.allclose(shifted[0, [0, 2]], torch.tensor([0.6, 0.8]))  # centre + 10 * 0.1 * width


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    assert nms(boxes, torch.tensor([0.9, 0.95, 0.5]), 0.4) == [1, 2]


def test_weights_load_and_the_detector_runs(weights: Path):
    detector = RetinaFaceDetector.from_file(weights)
    detector.threshold = 0.0  # random weights: accept anything to exercise decoding
    faces = detector.detect(np.array(tiny.synthetic_face((96, 80), scale=0.3)))
    assert faces and all(face.landmarks.shape == (5, 2) for face in faces)
    assert all(0 <= face.score <= 1 for face in faces)
    assert [face.score for face in faces] == sorted((face.score for face in faces), reverse=True)


def test_retinaface_is_preferred_when_its_file_is_present(weights: Path, tmp_path: Path):
    assert isinstance(default_detector([tmp_path, weights.parent]), RetinaFaceDetector)
    (tmp_path / RETINAFACE_FILE).write_bytes(b"broken")
    assert not isinstance(default_detector([tmp_path]), RetinaFaceDetector)  # falls back to OpenCV


def test_a_wrong_file_is_a_user_error(tmp_path: Path):
    tiny.save_state_dict(tiny.esrgan_state_dict(layout="old"), tmp_path / RETINAFACE_FILE)
    with pytest.raises(InvalidModelFileError, match="not a RetinaFace"):
        RetinaFaceDetector.from_file(tmp_path / RETINAFACE_FILE)
