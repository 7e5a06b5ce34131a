"""RetinaFace (ResNet-50 backbone) for ``detection_Resnet50_Final.pth``, the face detector A1111's GFPGAN and
CodeFormer use (through facexlib); written here in plain torch, without torchvision.

The network: a ResNet-50 (``body.*``), a three-level feature pyramid (``fpn.*``), one SSH context module per
level (``ssh1..3``) and 1x1 heads per level for face/background, box offsets and five landmarks
(``ClassHead``, ``BboxHead``, ``LandmarkHead``). Two anchors per position, sizes 16/32, 64/128, 256/512 at
strides 8, 16, 32; offsets are decoded with variances 0.1 / 0.2. Input: BGR pixels minus (104, 117, 123).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sdweb.core.errors import InvalidModelFileError
from sdweb.postprocess.face_detect import DetectedFace, import_cv2
from sdweb.postprocess.spandrel_models import read_state_dict

__all__ = ["RetinaFace", "RetinaFaceDetector", "decode_boxes", "decode_landmarks", "nms", "prior_boxes"]

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
BGR_MEAN = (104.0, 117.0, 123.0)
MIN_SHORT_SIDE = 640
PRE_NMS_TOP_K = 1000


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False),
                               nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Bottleneck(nn.Module):
    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * 4
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class _ResNet50(nn.Module):
    """ResNet-50 up to layer4 (no classifier), returning layer2, layer3 and layer4 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        channels = 64
        for index, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
            layer = []
            for block in range(blocks):
                layer.append(_Bottleneck(channels, width, stride if block == 0 else 1))
                channels = width * 4
            setattr(self, f"layer{index}", nn.Sequential(*layer))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


class _FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], out_ch: int) -> None:
        super().__init__()
        self.output1 = _conv_bn(in_channels[0], out_ch, 1)
        self.output2 = _conv_bn(in_channels[1], out_ch, 1)
        self.output3 = _conv_bn(in_channels[2], out_ch, 1)
        self.merge1 = _conv_bn(out_ch, out_ch, 3)
        self.merge2 = _conv_bn(out_ch, out_ch, 3)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        p1, p2, p3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        p2 = self.merge2(p2 + F.interpolate(p3, size=p2.shape[2:], mode="nearest"))
        p1 = self.merge1(p1 + F.interpolate(p2, size=p1.shape[2:], mode="nearest"))
        return [p1, p2, p3]


class _SSH(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(channels, channels // 2, 3, relu=False)
        self.conv5X5_1 = _conv_bn(channels, channels // 4, 3)
        self.conv5X5_2 = _conv_bn(channels // 4, channels // 4, 3, relu=False)
        self.conv7X7_2 = _conv_bn(channels // 4, channels // 4, 3)
        self.conv7x7_3 = _conv_bn(channels // 4, channels // 4, 3, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        five = self.conv5X5_1(x)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(five), self.conv7x7_3(self.conv7X7_2(five))], 1))


class _Head(nn.Module):
    def __init__(self, channels: int, outputs: int) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(channels, outputs, 1)

    def forward(self, x: torch.Tensor, per_anchor: int) -> torch.Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, per_anchor)


class RetinaFace(nn.Module):
    def __init__(self, channels: int = 256, anchors: int = 2) -> None:
        super().__init__()
        self.body = _ResNet50()
        self.fpn = _FPN((512, 1024, 2048), channels)
        self.ssh1, self.ssh2, self.ssh3 = _SSH(channels), _SSH(channels), _SSH(channels)
        self.ClassHead = nn.ModuleList([_Head(channels, anchors * 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(channels, anchors * 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(channels, anchors * 10) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(box offsets (B, N, 4), face probability (B, N), landmark offsets (B, N, 10))."""
        levels = self.fpn(self.body(x))
        levels = [self.ssh1(levels[0]), self.ssh2(levels[1]), self.ssh3(levels[2])]
        boxes = torch.cat([head(level, 4) for head, level in zip(self.BboxHead, levels, strict=True)], 1)
        scores = torch.cat([head(level, 2) for head, level in zip(self.ClassHead, levels, strict=True)], 1)
        landmarks = torch.cat([head(level, 10) for head, level in zip(self.LandmarkHead, levels, strict=True)], 1)
        return boxes, scores.softmax(-1)[..., 1], landmarks


def prior_boxes(height: int, width: int) -> torch.Tensor:
    """(N, 4) anchors as (centre x, centre y, width, height), relative to the image, in the heads' order."""
    anchors = []
    for sizes, step in zip(MIN_SIZES, STEPS, strict=True):
        for row, col in itertools.product(range(math.ceil(height / step)), range(math.ceil(width / step))):
            for size in sizes:
                anchors.append(((col + 0.5) * step / width, (row + 0.5) * step / height, size / width,
                                size / height))
    return torch.tensor(anchors, dtype=torch.float32)


def decode_boxes(offsets: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """(N, 4) x0, y0, x1, y1 relative to the image."""
    centres = priors[:, :2] + offsets[:, :2] * VARIANCES[0] * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(offsets[:, 2:] * VARIANCES[1])
    return torch.cat([centres - sizes / 2, centres + sizes / 2], 1)


def decode_landmarks(offsets: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """(N, 5, 2) landmark positions relative to the image."""
    points = offsets.reshape(-1, 5, 2)
    return priors[:, None, :2] + points * VARIANCES[0] * priors[:, None, 2:]


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best first."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    while order.numel():
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:], boxes[rest, 2:])
        overlap = (bottom_right - top_left).clamp(min=0).prod(1)
        iou = overlap / (areas[best] + areas[rest] - overlap + 1e-9)
        order = rest[iou <= threshold]
    return keep


class RetinaFaceDetector:
    name = "RetinaFace (ResNet-50)"

    def __init__(self, network: RetinaFace, device: str = "cpu", threshold: float = 0.97,
                 nms_threshold: float = 0.4) -> None:
        self.network = network.eval().to(device)
        self.device = device
        self.threshold = threshold
        self.nms_threshold = nms_threshold

    @classmethod
    def from_file(cls, path: Path, device: str = "cpu") -> RetinaFaceDetector:
        state = read_state_dict(Path(path))
        network = RetinaFace()
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise InvalidModelFileError(f"{Path(path).name} is not a RetinaFace ResNet-50 model.",
                                        hint="Use facexlib's detection_Resnet50_Final.pth, or remove the file "
                                             "(OpenCV's detector is used then).") from error
        return cls(network, device)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces above the score threshold after NMS; small images are first enlarged to a 640 px short side,
        as facexlib does, and the results mapped back."""
        original_h, original_w = rgb.shape[:2]
        enlarge = max(1.0, MIN_SHORT_SIDE / max(1, min(original_h, original_w)))
        if enlarge > 1:
            cv2 = import_cv2()
            rgb = cv2.resize(rgb, (int(original_w * enlarge), int(original_h * enlarge)),
                             interpolation=cv2.INTER_LINEAR)
        height, width = rgb.shape[:2]
        bgr = torch.from_numpy(np.ascontiguousarray(rgb[:, :, ::-1], dtype=np.float32))
        bgr = (bgr - torch.tensor(BGR_MEAN)).permute(2, 0, 1)[None].to(self.device)
        with torch.inference_mode():
            offsets, scores, landmark_offsets = self.network(bgr)
        priors = prior_boxes(height, width)
        scores = scores[0].float().cpu()
        keep = scores > self.threshold
        if not keep.any():
            return []
        scale = torch.tensor([width, height], dtype=torch.float32) / enlarge
        boxes = decode_boxes(offsets[0].float().cpu()[keep], priors[keep]) * scale.repeat(2)
        points = decode_landmarks(landmark_offsets[0].float().cpu()[keep], priors[keep]) * scale
        kept_scores = scores[keep]
        if kept_scores.numel() > PRE_NMS_TOP_K:
            best = kept_scores.topk(PRE_NMS_TOP_K).indices
            boxes, points, kept_scores = boxes[best], points[best], kept_scores[best]
        faces = []
        for index in nms(boxes, kept_scores, self.nms_threshold):
            x0, y0, x1, y1 = (float(v) for v in boxes[index])
            faces.append(DetectedFace((x0, y0, x1, y1), points[index].numpy().astype(np.float32),
                                      float(kept_scores[index])))
        return faces
