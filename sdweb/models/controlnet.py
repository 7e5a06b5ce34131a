"""ControlNet model files: A1111/sd-webui-controlnet single files (`control_model.*` LDM keys, .safetensors or
safely unpickled .pth/.ckpt) and diffusers folders, loaded offline into diffusers' ControlNetModel.

The architecture (SD1 / SD2 / SDXL, block widths, layers, attention depths, hint-encoder widths) is read from
the file's tensor shapes, so tiny test files and real 1.4 GB files go through the same code.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.build_lock import MODEL_BUILD_LOCK
from sdweb.models.loader import read_shapes, read_state_dict

PREFIX = "control_model."
Shapes = dict[str, tuple[int, ...]]


def _count(shapes: Shapes, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(match.group(1)) for key in shapes if (match := pattern.match(key))]
    return max(found) + 1 if found else 0


def _need(shapes: Shapes, key: str, path: Path) -> tuple[int, ...]:
    if key not in shapes:
        raise InvalidModelFileError(f"{path.name} is not a ControlNet: it has no {key}.", code="not_a_controlnet",
                                    hint="Put ControlNet models (control_*.safetensors) in models/ControlNet.")
    return shapes[key]


def _levels(shapes: Shapes) -> list[list[tuple[int, int]]]:
    """Per down level: (resnet width, transformer depth) per layer."""
    levels: list[list[tuple[int, int]]] = [[]]
    for index in range(1, _count(shapes, PREFIX + "input_blocks.")):
        path = f"{PREFIX}input_blocks.{index}."
        if f"{path}0.op.weight" in shapes:
            levels.append([])
            continue
        width = shapes.get(path + "0.out_layers.3.weight", (0,))[0]
        levels[-1].append((width, _count(shapes, path + "1.transformer_blocks.")))
    return [level for level in levels if level]


def _heads(width: int, family: str) -> int:
    wanted = 8 if family == "sd1" else max(1, width // 64)  # SD1: 8 heads; SD2/SDXL: 64 wide heads
    while width % wanted:
        wanted -= 1
    return wanted


def _norm_groups(widths: list[int]) -> int:
    groups = 32
    while groups > 1 and any(width % groups or width < 4 * groups for width in widths):
        groups //= 2
    return groups


def controlnet_config(shapes: Shapes, path: Path) -> tuple[str, dict[str, Any]]:
    """(family base, ControlNetModel config) from a single file's shapes."""
    conv_in = _need(shapes, PREFIX + "input_blocks.0.0.weight", path)
    hint = [shapes[f"{PREFIX}input_hint_block.{i}.weight"] for i in range(0, 32)
            if f"{PREFIX}input_hint_block.{i}.weight" in shapes]
    levels = _levels(shapes)
    if not hint or not levels:
        raise InvalidModelFileError(f"{path.name}: unsupported ControlNet layout.", code="not_a_controlnet")
    widths = [level[-1][0] for level in levels]
    depths = [level[0][1] for level in levels]
    context = next((shapes[k][1] for k in shapes if k.endswith("attn2.to_k.weight")), None)
    sdxl = PREFIX + "label_emb.0.0.weight" in shapes
    family = "sdxl" if sdxl else "sd2" if context == 1024 else "sd1"
    proj = next((shapes[k] for k in shapes if k.endswith("proj_in.weight")), None)
    config: dict[str, Any] = {
        "_class_name": "ControlNetModel",
        "in_channels": conv_in[1],
        "conditioning_channels": hint[0][1],
        "conditioning_embedding_out_channels": [shape[0] for shape in hint[:-1:2]],
        "block_out_channels": widths,
        "layers_per_block": len(levels[0]),
        "down_block_types": ["CrossAttnDownBlock2D" if depth else "DownBlock2D" for depth in depths],
        "attention_head_dim": [_heads(width, family) for width in widths] if family != "sd1"
        else _heads(widths[0], family),
        "cross_attention_dim": context,
        "norm_num_groups": _norm_groups(widths),
        "use_linear_projection": proj is not None and len(proj) == 2,
        "transformer_layers_per_block": [max(1, depth) for depth in depths],
    }
    if sdxl:  # SDXL's micro-conditioning: 6 time ids x 256 + the pooled text width
        config.update({"addition_embed_type": "text_time", "addition_time_embed_dim": 256,
                       "projection_class_embeddings_input_dim": shapes[PREFIX + "label_emb.0.0.weight"][1]})
    return family, config


def load_controlnet(path: str | Path, *, config_cache: Path, dtype: torch.dtype = torch.float32,
                    device: str = "cpu", allow_unsafe_pickle: bool = False) -> tuple[str, Any]:
    """(family base, ControlNetModel) for a single file or a diffusers folder, offline."""
    from diffusers import ControlNetModel

    path = Path(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InvalidModelFileError(f"{path.name} is a folder without config.json.", code="not_a_controlnet")
        model = ControlNetModel.from_pretrained(path, local_files_only=True, torch_dtype=dtype)
        cross = model.config.cross_attention_dim
        family = "sdxl" if model.config.addition_embed_type == "text_time" else "sd2" if cross == 1024 else "sd1"
        return family, model.to(device).eval()
    shapes = read_shapes(path, allow_unsafe_pickle=allow_unsafe_pickle)
    family, config = controlnet_config(shapes, path)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    folder = config_cache / f"controlnet-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    try:
        with MODEL_BUILD_LOCK:
            model = ControlNetModel.from_single_file(state, config=str(folder), local_files_only=True,
                                                     torch_dtype=dtype)
    except (ValueError, RuntimeError, KeyError) as error:
        raise InvalidModelFileError(f"{path.name} could not be loaded as a ControlNet: {str(error)[:200]}",
                                    code="not_a_controlnet") from error
    return family, model.to(device).eval()
