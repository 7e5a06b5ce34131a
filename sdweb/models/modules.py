"""Module files (Forge's "VAE / Text encoder" choices): what a loose file is, and which ones a model uses.

Kinds, read from key names and shapes (a safetensors or GGUF header suffices):

- "vae": LDM keys (`encoder.down.N.block…`, `decoder.up…`; bare or under `vae.` / `first_stage_model.`) or
  diffusers keys (`decoder.up_blocks…`); `latent_channels` from `decoder.conv_in` (16: Flux / SD3, 4: SD). A 5-D
  `decoder.conv_in` (diffusers) or Wan's `decoder.conv1` is the Qwen-Image (Wan 2.1) VAE: `vae_class`
  "AutoencoderKLQwenImage", which only a family whose latents are that VAE's takes (and no 2-D VAE serves it).
- "t5xxl": HF T5 encoder keys `encoder.block.N.layer.*` (+ `shared.weight`).
- "clip_l" / "clip_g": HF CLIP text keys (`text_model.encoder.layers.N…`, or the same without `text_model.`).
  Rule: OpenAI CLIP ViT-L/14's text tower has 12 layers, OpenCLIP ViT-bigG/14's 32, so a tower deeper than
  12 layers is CLIP-G and any other CLIP-L. Depth, not width, decides, so the test factory's tiny encoders
  (CLIP-L 8 wide with 2 layers, CLIP-G 16 wide with 32 layers) classify like the real 768 / 1280 ones.
- "qwen3": a Qwen3 decoder (`qwen_3_4b.safetensors`): HF keys `model.layers.N.self_attn.q_norm…` (or without
  `model.`), `embed_tokens`; Qwen3 is the Qwen with per-head q/k norms. `width` tells 4B (2560) from 8B (4096).
- "qwen25vl": Qwen2.5-VL (`qwen_2.5_vl_7b*.safetensors`): a Qwen2 decoder (q/k/v biases, no q/k norms) under
  `model.` (ComfyUI, HF), `model.language_model.` (transformers 5) or bare, with its vision tower (`visual.…`,
  `vision`) or without; `width` 3584 for 7B.

`assign_modules` checks an explicit choice against what a family needs; `resolve_modules` is the
"Automatic" choice (for Flux: a 16-channel VAE named like `ae` + `clip_l` + `t5xxl`, fp16 before fp8).
Both are pure functions of `ModuleFile` records.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.families import Family
from sdweb.models.reading import read_header

__all__ = [
    "MODULE_KINDS",
    "ModuleFile",
    "ModuleInfo",
    "ModuleResolution",
    "assign_modules",
    "carried_components",
    "choose_modules",
    "classify_module",
    "classify_module_file",
    "missing_module_error",
    "needed_slots",
    "resolve_modules",
]

MODULE_KINDS = ("vae", "clip_l", "clip_g", "t5xxl", "qwen3", "qwen25vl")
CLIP_L_MAX_LAYERS = 12  # OpenAI ViT-L/14 text tower; OpenCLIP bigG has 32
_CLIP_PREFIXES = ("", "transformer.")
_T5_PREFIXES = ("", "transformer.")
_QWEN_PREFIXES = ("model.", "")
_VAE_PREFIXES = ("", "vae.", "first_stage_model.")
_PRECISIONS = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F8_E4M3": "fp8_e4m3fn", "F8_E5M2": "fp8_e5m2"}
# Automatic prefers the first; anything else (GGUF text encoders, unknown) comes last.
PRECISION_ORDER = ("fp16", "bf16", "fp32", "fp8_scaled", "fp8_e4m3fn", "fp8_e5m2")


@dataclass(frozen=True)
class ModuleInfo:
    """What a module file holds."""

    kind: str | None  # one of MODULE_KINDS, None when it is none of them
    prefix: str = ""  # where its keys start ("" for the usual loose files)
    precision: str = ""  # "fp16", "bf16", "fp32", "fp8_e4m3fn", "fp8_e5m2", "fp8_scaled", "gguf" or ""
    latent_channels: int = 0  # VAE only
    width: int = 0  # text encoders: hidden size
    layers: int = 0  # text encoders: depth
    vae_class: str = "AutoencoderKL"  # VAE only: "AutoencoderKL" (2-D) or "AutoencoderKLQwenImage" (Wan-style 3-D)
    vision: bool = False  # Qwen2.5-VL only: the file carries the vision tower


@dataclass(frozen=True)
class ModuleFile:
    """A module file and what it holds; `stem` is its name in infotext ("Module 1: ae")."""

    path: Path
    info: ModuleInfo

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        return self.path.stem


def _count(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(m.group(1)) for key in shapes if (m := pattern.match(key))]
    return max(found) + 1 if found else 0


def _precision(shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, str]) -> str:
    if "scaled_fp8" in shapes or any(key.endswith(".scale_weight") for key in shapes):
        return "fp8_scaled"
    counts: dict[str, int] = {}
    for key, shape in shapes.items():
        if len(shape) == 2 and key in dtypes:
            counts[dtypes[key]] = counts.get(dtypes[key], 0) + 1
    if not counts:
        return ""
    dominant = max(counts, key=lambda dtype: counts[dtype])
    return _PRECISIONS.get(dominant, "gguf" if dominant.startswith(("Q", "IQ")) else dominant.lower())


def _clip_info(shapes: Mapping[str, tuple[int, ...]], precision: str) -> ModuleInfo | None:
    for prefix in _CLIP_PREFIXES:
        for inner in (prefix + "text_model.", prefix):
            embedding = shapes.get(inner + "embeddings.token_embedding.weight")
            if embedding is not None and inner + "encoder.layers.0.self_attn.q_proj.weight" in shapes:
                layers = _count(shapes, inner + "encoder.layers.")
                kind = "clip_g" if layers > CLIP_L_MAX_LAYERS else "clip_l"
                return ModuleInfo(kind, prefix, precision, width=embedding[1], layers=layers)
    return None


def _t5_info(shapes: Mapping[str, tuple[int, ...]], precision: str) -> ModuleInfo | None:
    for prefix in _T5_PREFIXES:
        if prefix + "encoder.block.0.layer.0.SelfAttention.q.weight" in shapes:
            embedding = shapes.get(prefix + "shared.weight") or shapes.get(prefix + "encoder.embed_tokens.weight")
            width = embedding[1] if embedding else 0
            return ModuleInfo("t5xxl", prefix, precision, width=width, layers=_count(shapes, prefix + "encoder.block."))
    return None


def _qwen_info(shapes: Mapping[str, tuple[int, ...]], precision: str) -> ModuleInfo | None:
    for prefix in _QWEN_PREFIXES:
        embedding = shapes.get(prefix + "embed_tokens.weight")
        if embedding is not None and prefix + "layers.0.self_attn.q_norm.weight" in shapes:
            return ModuleInfo("qwen3", prefix, precision, width=embedding[1], layers=_count(shapes, prefix + "layers."))
    return None


def _qwen25vl_info(shapes: Mapping[str, tuple[int, ...]], precision: str) -> ModuleInfo | None:
    from sdweb.models.flow_detect import qwen25vl_prefixes

    language, vision = qwen25vl_prefixes(shapes, "")
    embedding = shapes.get(language + "embed_tokens.weight")
    attention = language + "layers.0.self_attn."
    if embedding is None or attention + "q_proj.bias" not in shapes or attention + "q_norm.weight" in shapes:
        return None
    return ModuleInfo("qwen25vl", "", precision, width=embedding[1], layers=_count(shapes, language + "layers."),
                      vision=vision is not None)


def _vae_info(shapes: Mapping[str, tuple[int, ...]], precision: str) -> ModuleInfo | None:
    for prefix in _VAE_PREFIXES:
        for conv in ("conv_in", "conv1"):  # LDM / diffusers; Wan's names (the Qwen-Image VAE)
            conv_in = shapes.get(prefix + f"decoder.{conv}.weight")
            if conv_in is None or prefix + f"encoder.{conv}.weight" not in shapes or len(conv_in) not in (4, 5):
                continue
            kind = "AutoencoderKL" if len(conv_in) == 4 else "AutoencoderKLQwenImage"
            if prefix + "bn.running_mean" in shapes:  # Flux.2's latent batch-norm statistics
                kind = "AutoencoderKLFlux2"
            return ModuleInfo("vae", prefix, precision, latent_channels=conv_in[1], vae_class=kind)
    return None


def classify_module(shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, str]) -> ModuleInfo:
    """What a loose file is (see the module docstring for the rules); kind None when none of MODULE_KINDS."""
    precision = _precision(shapes, dtypes)
    for reader in (_t5_info, _clip_info, _qwen_info, _qwen25vl_info, _vae_info):
        info = reader(shapes, precision)
        if info is not None:
            return info
    return ModuleInfo(None, precision=precision)


def classify_module_file(path: str | os.PathLike[str]) -> ModuleFile:
    """A module file with its kind, from its header (InvalidModelFileError for a damaged file)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidModelFileError(f"module file {path.name} does not exist.", code="model_file_missing",
                                    hint="Put VAEs in models/VAE and text encoders in models/text_encoder.")
    header = read_header(path)
    return ModuleFile(path, classify_module(header.shapes, header.dtypes))


# ---------------------------------------------------------------------------------------- choosing

_SLOT_WORDS = {
    "vae": ("a VAE", "models/VAE"),
    "clip_l": ("a CLIP-L text encoder", "models/text_encoder"),
    "clip_g": ("a CLIP-G text encoder", "models/text_encoder"),
    "t5xxl": ("a T5-XXL text encoder", "models/text_encoder"),
    "qwen3": ("a Qwen3 text encoder", "models/text_encoder"),
    "qwen25vl": ("a Qwen2.5-VL text encoder", "models/text_encoder"),
}
_EXAMPLE_FILES = {"clip_l": "clip_l.safetensors", "clip_g": "clip_g.safetensors", "t5xxl": "t5xxl_fp16.safetensors",
                  "qwen3": "qwen_3_4b.safetensors", "qwen25vl": "qwen_2.5_vl_7b_fp8_scaled.safetensors"}
_EXAMPLE_VAES = {"qwenimage": "qwen_image_vae.safetensors", "flux2klein": "flux2-vae.safetensors"}
# The file name users have for each family's VAE (Flux's `ae.safetensors` serves Chroma too); the
# Automatic choice ranks files whose name has one of these words first.
_VAE_NAMES = {"flux": ("ae", "flux"), "chroma": ("ae", "flux", "chroma"), "sd3": ("sd3", "sd35"),
              "zimage": ("ae", "flux", "zimage", "z_image"), "qwenimage": ("qwen_image_vae", "qwen"),
              "flux2klein": ("flux2-vae", "flux2", "ae")}


def needed_slots(family: Family) -> tuple[str, ...]:
    """The module slots a family's pipeline is built from: "vae" and its text encoders, in pipeline order."""
    return ("vae", *(spec.slot for spec in family.text_encoders))


def _example(family: Family, slot: str) -> str:
    if slot == "vae":
        if family.base in _EXAMPLE_VAES:
            return _EXAMPLE_VAES[family.base]
        return "ae.safetensors" if "ae" in _VAE_NAMES.get(family.base, ()) else f"the {family.label} VAE"
    return _EXAMPLE_FILES.get(slot, slot)


def _needs_vision(family: Family, slot: str) -> bool:
    return any(spec.slot == slot and spec.vision for spec in family.text_encoders)


def missing_module_error(family: Family, slot: str) -> InvalidModelFileError:
    what, folder = _SLOT_WORDS[slot]
    if _needs_vision(family, slot):
        what += " with its vision tower (the full file, as ComfyUI's)"
    return InvalidModelFileError(
        f"{family.label} needs {what}: put {_example(family, slot)} in {folder}.",
        code="module_missing",
        hint="Then choose it under VAE / Text encoder (or leave that on Automatic).",
    )


def _kind_words(info: ModuleInfo, family: Family) -> str:
    if info.kind == "vae":
        what = "a VAE"
        if info.vae_class != family.latent.vae_class:  # same channels, another architecture
            what = {"AutoencoderKLQwenImage": "a Qwen-Image (Wan) VAE", "AutoencoderKLFlux2": "a Flux.2 VAE"}.get(
                info.vae_class, "an SD / Flux-style VAE")
        return f"{what} with {info.latent_channels} latent channels"
    if info.kind == "qwen25vl" and not info.vision:
        return "a Qwen2.5-VL text encoder without its vision tower"
    return _SLOT_WORDS[info.kind or "vae"][0]


def _wrong_module_error(family: Family, module: ModuleFile, missing: Sequence[str]) -> InvalidModelFileError:
    needs = " and ".join(_SLOT_WORDS[slot][0].split(" ", 1)[1] for slot in needed_slots(family))
    if family.latent.vae_class != "AutoencoderKL":
        needs = needs.replace("VAE", f"{family.label} VAE", 1)
    fix = (f"Choose {_SLOT_WORDS[missing[0]][0]} instead: put {_example(family, missing[0])} in "
           f"{_SLOT_WORDS[missing[0]][1]}." if missing else "Remove it from the VAE / Text encoder choice.")
    if module.info.kind is None:
        what = ("a GGUF file: sdweb reads GGUF for transformers only (use a .safetensors text encoder)"
                if module.info.precision == "gguf" else "neither a VAE nor a CLIP / T5 / Qwen text encoder")
        return InvalidModelFileError(f"{module.name} is {what}.", code="module_wrong_kind", hint=fix)
    return InvalidModelFileError(
        f"{module.name} is {_kind_words(module.info, family)}, which {family.label} does not use (it uses {needs}).",
        code="module_wrong_kind", hint=fix)


def _fits(family: Family, module: ModuleFile) -> bool:
    info = module.info
    if info.kind == "vae":
        return info.latent_channels == family.latent.vae_channels and info.vae_class == family.latent.vae_class
    if info.kind is not None and _needs_vision(family, info.kind) and not info.vision:
        return False
    return info.kind in needed_slots(family)


def assign_modules(family: Family, carried: frozenset[str] | set[str],
                   modules: Sequence[ModuleFile]) -> dict[str, ModuleFile]:
    """slot -> the chosen module file for it. Module files replace what the checkpoint carries for their slot
    (`carried`: "vae", "clip_l", ... as `FileComponents.components` says). InvalidModelFileError naming the
    file and the fix for a file the family cannot use, two files for one slot, or a slot nothing fills."""
    needed = needed_slots(family)
    given_kinds = {m.info.kind for m in modules if _fits(family, m)}
    missing = [slot for slot in needed if slot not in carried and slot not in given_kinds]
    assigned: dict[str, ModuleFile] = {}
    for module in modules:
        if not _fits(family, module):
            raise _wrong_module_error(family, module, missing)
        slot = module.info.kind or ""
        if slot in assigned:
            raise InvalidModelFileError(
                f"{assigned[slot].name} and {module.name} are both {_SLOT_WORDS[slot][0]}; choose one.",
                code="module_conflict", hint="Remove one of them from the VAE / Text encoder choice.")
        assigned[slot] = module
    if missing:
        raise missing_module_error(family, missing[0])
    return assigned


@dataclass(frozen=True)
class ModuleResolution:
    """The Automatic choice: the files to load, in slot order, and the slots no present file fills."""

    chosen: tuple[ModuleFile, ...]
    missing: tuple[str, ...]


def _vae_rank(family: Family, module: ModuleFile) -> tuple[int, str]:
    """0: named exactly like the family's VAE (`ae`), 1: the name has one of its words, 2: any other."""
    stem = module.stem.lower()
    names = _VAE_NAMES.get(family.base, ())
    words = set(re.split(r"[^a-z0-9]+", stem))
    if names and stem == names[0]:
        return 0, module.name
    if any(name in words or (len(name) > 2 and name in stem) for name in names):
        return 1, module.name
    return 2, module.name


def _encoder_rank(module: ModuleFile) -> tuple[int, str]:
    precision = module.info.precision
    return (PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER)), module.name


def resolve_modules(family: Family, carried: frozenset[str] | set[str], available: Sequence[ModuleFile],
                    widths: Mapping[str, int] | None = None) -> ModuleResolution:
    """Forge's "Automatic": for each slot the family needs and the checkpoint does not carry, the best
    present file (VAE: right latent channels, named like the family's VAE first; text encoders: of the width the
    transformer takes (`widths`, per slot) first, then fp16, bf16, fp32, then fp8; ties by name)."""
    chosen, missing = [], []
    for slot in needed_slots(family):
        if slot in carried:
            continue
        candidates = [m for m in available if m.info.kind == slot and _fits(family, m)]
        if not candidates:
            missing.append(slot)
            continue
        wanted = (widths or {}).get(slot)
        if slot == "vae":
            chosen.append(min(candidates, key=lambda m: _vae_rank(family, m)))
        else:
            chosen.append(min(candidates, key=lambda m: (bool(wanted) and m.info.width != wanted, _encoder_rank(m))))
    return ModuleResolution(tuple(chosen), tuple(missing))


def carried_components(path: str | os.PathLike[str]) -> frozenset[str]:
    """The parts a flow checkpoint file carries itself besides the transformer ("vae", "clip_l", ...)."""
    from sdweb.models.flow_detect import file_components

    return file_components(read_header(Path(path)).shapes).components - {"transformer"}


def choose_modules(family: Family, checkpoint: str | os.PathLike[str], chosen: Sequence[Path],
                   available: Sequence[Path]) -> list[Path]:
    """The module files to load with `checkpoint`: the user's choice (`chosen`, checked when loading), or
    for a flow family with none chosen Forge's Automatic among `available`: the parts the file lacks, each
    a clear InvalidModelFileError (naming what to put where) when no present file fits. An SD checkpoint
    with nothing chosen takes none (its VAE follows the SD VAE setting)."""
    if chosen or family.engine != "flow" or Path(checkpoint).is_dir():  # a diffusers folder has its own parts
        return list(chosen)
    files = []
    for path in available:
        try:
            files.append(classify_module_file(path))
        except InvalidModelFileError:
            continue  # a damaged file in the folder is shown as such in the lists, never picked
    from sdweb.models.flow_detect import encoder_widths

    shapes = read_header(Path(checkpoint)).shapes
    resolution = resolve_modules(family, carried_components(checkpoint), files, encoder_widths(shapes, family))
    if resolution.missing:
        raise missing_module_error(family, resolution.missing[0])
    return [module.path for module in resolution.chosen]
