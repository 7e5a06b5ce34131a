"""LoRAs from `<lora:name:te[:unet]>` tags, applied through diffusers' peft integration (DESIGN rule 9).

Per loaded model a `LoraCache` keeps the adapters already injected (`load_lora_weights(state_dict,
adapter_name=...)`), so a LoRA used again is not read again; a job activates exactly the LoRAs it names
with `set_adapters(names, [{"unet": w_unet, "text_encoder": w_te, ...}])` (diffusers supports a weight per
component, so A1111's separate TE and UNet multipliers are exact), and after the job `disable_lora()`
makes every LoRA layer compute its base layer alone: the next job without tags is bit-identical to no LoRA.

Names resolve as A1111: file stem, then alias (`ss_output_name`). An unknown name is skipped with a note
("Lora not found: x"), as A1111 warns and generates anyway. A LoRA for another family, or one that matches
no layer of the model, is a UserError that names the file. Infotext: `Lora hashes: "name: <12 hex>"`
(the addnet hash, or `sshs_model_hash` from the file's metadata).

Not supported: LyCORIS LoHa/IA3/OFT files and LoKr except for families whose diffusers loader converts it
(`Features.lokr`: Z-Image's ai-toolkit LoKr); diffusers cannot load the others (refused clearly) and `dyn`.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sdweb.core.errors import InvalidModelFileError
from sdweb.models.families import Family
from sdweb.models.loader import read_metadata, read_state_dict
from sdweb.models.lora_slot import CompiledLoraSlot, LoraLayers, take_layers
from sdweb.models.registry import ModelRegistry, NamedModelFile
from sdweb.prompts.parser import LoraCall
from sdweb.runtime.compile import compiled_forward, note_structure_change

__all__ = ["ADAPTERS_KEPT", "AppliedLoras", "LoraCache", "lora_base_of", "lora_fits", "lora_module_count"]

# Flux LoRA key names: kohya (lora_unet_double_blocks_0_...), ai-toolkit / ComfyUI (diffusion_model.double_blocks),
# XLabs (double_blocks.0.processor...), diffusers / peft (transformer.single_transformer_blocks...)
_FLUX_LORA_KEY = re.compile(r"(double_blocks|single_blocks|single_transformer_blocks)")
# Flux.2: names only its layers have (diffusers' fused single-block projection and gated MLPs, the shared
# modulations); its BFL / kohya names are Flux.1's (`double_blocks`, `single_blocks`), so those fit either
_FLUX2_LORA_KEY = re.compile(r"(to_qkv_mlp_proj|ff(_context)?\.linear_(in|out)|_stream_modulation)")
# Z-Image: layers / noise_refiner / context_refiner blocks with `attention` and `feed_forward` (dots or kohya's _)
_ZIMAGE_LORA_KEY = re.compile(r"(^|[._])(layers|noise_refiner|context_refiner)[._]\d+[._](attention|feed_forward)[._]")
# Qwen-Image: transformer_blocks with separate image / text MLPs and modulations (diffusers, ComfyUI, kohya names)
_QWEN_IMAGE_LORA_KEY = re.compile(r"(^|[._])transformer_blocks[._]\d+[._](img|txt)_(mlp|mod)[._]")

log = logging.getLogger(__name__)

ADAPTERS_KEPT = 8  # LoRAs kept injected per loaded model (inactive ones beyond this are deleted, oldest first)
_BASE_LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "flux": "Flux.1", "sd3": "SD 3 / 3.5",
                "zimage": "Z-Image", "qwenimage": "Qwen-Image", "flux2klein": "Flux.2 Klein"}
_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight", ".lora_linear_layer.down.weight",
                  ".lokr_w1", ".lokr_w1_a")
_LOKR = re.compile(r"\.lokr_w[12](_[ab])?$")
_LYCORIS = re.compile(r"\.(hada_w1_a|lokr_w1|lokr_w1_a|oft_blocks|oft_diag|diff|on_input)$")
_NOT_NAME_CHARS = re.compile(r"[^0-9A-Za-z_]")


@dataclass
class LoadedAdapter:
    adapter: str  # the peft adapter name
    file: NamedModelFile
    stamp: tuple[int, int]  # (mtime_ns, size) when loaded
    shorthash: str | None
    components: tuple[str, ...]  # pipeline components holding its layers: "unet", "text_encoder", ...
    layers: int  # LoRA layers injected
    expected: int  # layers the file has weights for
    slot_layers: LoraLayers | None = None  # its layers of a compiled UNet, kept out of the UNet (lora_slot)


@dataclass
class AppliedLoras:
    hashes: dict[str, str] = field(default_factory=dict)  # the name as written (no ':' or ',') -> 12 hex
    notes: list[str] = field(default_factory=list)
    active: list[str] = field(default_factory=list)  # file names


def lora_base_of(keys: Sequence[str], metadata: Mapping[str, str]) -> str | None:
    """The model base a LoRA was trained for ("sd1", "sd2", "sdxl"), from kohya/ModelSpec metadata or the
    key names; None when nothing tells (then only loading can)."""
    version = metadata.get("ss_base_model_version", "").lower()
    architecture = metadata.get("modelspec.architecture", "").lower()
    if version.startswith("sdxl") or architecture.startswith("stable-diffusion-xl"):
        return "sdxl"
    if version.startswith("sd_v2") or architecture.startswith("stable-diffusion-v2"):
        return "sd2"
    if version.startswith("sd_v1") or architecture.startswith("stable-diffusion-v1"):
        return "sd1"
    if version.startswith(("flux2", "flux.2", "flux_2")) or architecture.startswith(("flux-2", "flux.2", "flux2")):
        return "flux2klein"
    if version.startswith("flux") or architecture.startswith("flux"):
        return "flux"
    if version.startswith("sd3") or architecture.startswith("stable-diffusion-v3"):
        return "sd3"
    if version.startswith("qwen_image") or architecture.startswith("qwen-image"):
        return "qwenimage"
    if metadata.get("ss_v2", "").lower() == "true":
        return "sd2"
    if any(_FLUX2_LORA_KEY.search(key) for key in keys):
        return "flux2klein"
    if any(_FLUX_LORA_KEY.search(key) for key in keys):
        return "flux"
    if any(_ZIMAGE_LORA_KEY.search(key) for key in keys):
        return "zimage"
    if any(_QWEN_IMAGE_LORA_KEY.search(key) for key in keys):
        return "qwenimage"
    if any("joint_blocks" in key for key in keys):
        return "sd3"
    if any(key.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for key in keys):
        return "sdxl"
    return None


def lora_fits(made_for: str, family: Family) -> bool:
    """A LoRA made for `made_for` applies to the family: its own base, and Flux LoRAs to Chroma (a Flux
    schnell derivative: the layers they share take them, as in Forge and ComfyUI) and to Flux.2 Klein (BFL-named
    LoRAs of both look alike: loading tells)."""
    return made_for == family.base or (made_for == "flux" and family.base in ("chroma", "flux2klein"))


def lora_module_count(keys: Sequence[str]) -> int:
    """How many model layers the file has LoRA weights for."""
    return sum(1 for key in keys if key.endswith(_DOWN_SUFFIXES))


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _adapter_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{_NOT_NAME_CHARS.sub('_', path.stem)[:40]}_{digest}"


def _has_adapter(module: torch.nn.Module, adapter: str) -> bool:
    from peft.tuners.lokr import LoKrLayer
    from peft.tuners.lora import LoraLayer

    if isinstance(module, LoraLayer):
        return adapter in module.lora_A
    return isinstance(module, LoKrLayer) and (adapter in module.lokr_w1 or adapter in module.lokr_w1_a)


def _lora_layers(pipe: Any, adapter: str) -> dict[str, int]:
    counts = {}
    for component in getattr(pipe, "_lora_loadable_modules", ()):
        module = getattr(pipe, component, None)
        if isinstance(module, torch.nn.Module):
            found = sum(1 for m in module.modules() if _has_adapter(m, adapter))
            if found:
                counts[component] = found
    return counts


def _adapters_present(pipe: Any) -> set[str]:
    return {name for names in pipe.get_list_adapters().values() for name in names}


class LoraCache:
    """The LoRA adapters injected into one loaded model's pipeline, least recently used first. When the UNet is
    compiled, their UNet layers go through one fixed slot instead (lora_slot), so LoRA changes do not recompile;
    what does change the UNet's modules is told to its compiled forward (note_structure_change), which times and
    logs the recompile."""

    def __init__(self, keep: int = ADAPTERS_KEPT) -> None:
        self.keep = keep
        self.adapters: OrderedDict[Path, LoadedAdapter] = OrderedDict()
        self.enabled = False
        self.slot: CompiledLoraSlot | None = None  # set on first use when the UNet is compiled

    # -- one job --------------------------------------------------------------------------------------
    def apply(self, pipe: Any, family: Family, registry: ModelRegistry, calls: Sequence[LoraCall], *,
              allow_unsafe_pickle: bool = False) -> AppliedLoras:
        """Make exactly the LoRAs of `calls` active with their weights (none: all off)."""
        applied = AppliedLoras()
        if self.slot is None and not self.adapters and compiled_forward(getattr(pipe, "unet", None)) is not None:
            self.slot = CompiledLoraSlot()
        wanted: OrderedDict[Path, tuple[LoadedAdapter, float, float, str]] = OrderedDict()
        for call in calls:
            file = registry.find_lora(call.name)
            if file is None:
                registry.refresh_loras()  # a file added since the last scan
                file = registry.find_lora(call.name)
            if file is None:
                applied.notes.append(_not_found_note(call.name, registry))
                continue
            if call.dyn_dim is not None:
                applied.notes.append(f"Lora {call.name}: dyn={call.dyn_dim} ignored (only full rank is applied).")
            loaded = self._ensure_loaded(pipe, family, file, registry, allow_unsafe_pickle)
            if loaded.layers < loaded.expected:
                applied.notes.append(f"Lora {call.name}: only {loaded.layers} of its {loaded.expected} layers "
                                     f"match this model; the rest is ignored.")
            te, unet = call.te_weight, call.unet_weight
            if file.path in wanted:  # the same LoRA twice: A1111 applies it twice
                _, te0, unet0, _ = wanted[file.path]
                te, unet = te + te0, unet + unet0
            wanted[file.path] = (loaded, te, unet, call.name)
            if loaded.shorthash:
                applied.hashes[call.name.translate(str.maketrans("", "", ":,"))] = loaded.shorthash
        self._activate(pipe, list(wanted.values()))
        applied.active = [loaded.file.name for loaded, _, _, _ in wanted.values()]
        self._trim(pipe, set(wanted))
        return applied

    def deactivate(self, pipe: Any) -> None:
        """Every LoRA layer computes its base layer alone (the adapters stay loaded for the next job)."""
        if self.enabled and pipe is not None:
            pipe.disable_lora()
        self.enabled = False

    def unload_all(self, pipe: Any) -> None:
        """Remove every adapter: the modules are the original ones again."""
        if self.adapters and pipe is not None:
            pipe.unload_lora_weights()
            note_structure_change(pipe, "the LoRAs were unloaded")
        self.adapters.clear()
        self.enabled = False
        if self.slot is not None:
            self.slot.forget()

    # -- internals ------------------------------------------------------------------------------------
    def _activate(self, pipe: Any, wanted: list[tuple[LoadedAdapter, float, float, str]]) -> None:
        if not wanted:
            self.deactivate(pipe)
            return
        pipe.enable_lora()
        if self.slot is not None:
            self._activate_with_slot(pipe, wanted)
        else:
            names = [loaded.adapter for loaded, _, _, _ in wanted]
            weights = [{component: te if component.startswith("text_encoder") else unet
                        for component in loaded.components} for loaded, te, unet, _ in wanted]
            pipe.set_adapters(names, adapter_weights=weights)
        self.enabled = True
        for loaded, _, _, _ in wanted:
            self.adapters.move_to_end(loaded.file.path)

    def _activate_with_slot(self, pipe: Any, wanted: list[tuple[LoadedAdapter, float, float, str]]) -> None:
        """Text encoders activate their adapters by name (not compiled); the UNet gets its slot filled. Each
        component is set on its own: a pipeline-wide set_adapters would put the text encoders' adapter names in
        the UNet's active list, which a compiled UNet guards on."""
        from diffusers.utils.peft_utils import set_adapter_layers, set_weights_and_activate_adapters

        for component in getattr(pipe, "_lora_loadable_modules", ()):
            module = getattr(pipe, component, None)
            if component == "unet" or not isinstance(module, torch.nn.Module):
                continue
            entries = [(loaded.adapter, te) for loaded, te, _, _ in wanted if component in loaded.components]
            if entries:
                set_weights_and_activate_adapters(module, [name for name, _ in entries], [w for _, w in entries])
            else:
                set_adapter_layers(module, enabled=False)
        unet_loras = [(loaded.slot_layers, unet) for loaded, _, unet, _ in wanted if loaded.slot_layers is not None]
        if unet_loras:
            grew = self.slot.fill(pipe.unet, unet_loras)
            if grew is not None:
                note_structure_change(pipe, f"LoRA slot built for {grew}")
        else:
            set_adapter_layers(pipe.unet, enabled=False)

    def _trim(self, pipe: Any, active: set[Path]) -> None:
        idle = [path for path in self.adapters if path not in active]
        while len(self.adapters) > max(self.keep, len(active)) and idle:
            self._delete(pipe, idle.pop(0))

    def _delete(self, pipe: Any, path: Path) -> None:
        loaded = self.adapters.pop(path)
        _discard(pipe, loaded.adapter)
        if "unet" in loaded.components:
            note_structure_change(pipe, "a LoRA was removed")

    def _ensure_loaded(self, pipe: Any, family: Family, file: NamedModelFile, registry: ModelRegistry,
                       allow_unsafe_pickle: bool) -> LoadedAdapter:
        current = self.adapters.get(file.path)
        if current is not None and current.stamp == _stamp(file.path):
            return current
        if current is not None:  # the file changed on disk since it was loaded
            self._delete(pipe, file.path)
        loaded = _load_adapter(pipe, family, file, registry, allow_unsafe_pickle)
        if self.slot is not None and "unet" in loaded.components:
            try:
                loaded.slot_layers = take_layers(pipe.unet, loaded.adapter, file.path.name)
            except InvalidModelFileError:
                _discard(pipe, loaded.adapter)
                raise
            loaded.components = tuple(component for component in loaded.components if component != "unet")
        elif "unet" in loaded.components:
            note_structure_change(pipe, "a LoRA was loaded")
        self.adapters[file.path] = loaded
        return loaded


def _not_found_note(name: str, registry: ModelRegistry) -> str:
    names = [x.name for x in registry.loras] + [x.alias for x in registry.loras if x.alias]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return f"Lora not found: {name}" + (f" (did you mean {', '.join(close)}?)" if close else "") + "."


def _mismatch(file: NamedModelFile, made_for: str, model_label: str) -> InvalidModelFileError:
    return InvalidModelFileError(
        f"{file.path.name} is a LoRA for {_BASE_LABELS.get(made_for, made_for)}; the loaded checkpoint is {model_label}.",
        code="lora_family_mismatch",
        hint=f"Use a LoRA made for {model_label}, or switch to a {_BASE_LABELS.get(made_for, made_for)} checkpoint.")


def _read_lora(file: NamedModelFile, family: Family,
               allow_unsafe_pickle: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    metadata = read_metadata(file.path)
    tensors = read_state_dict(file.path, allow_unsafe_pickle=allow_unsafe_pickle)
    lycoris = [key for key in tensors if _LYCORIS.search(key)]
    if lycoris and not (family.features.lokr and all(_LOKR.search(key) for key in lycoris)):
        raise InvalidModelFileError(
            f"{file.path.name} is a LyCORIS network (LoHa, LoKr, OFT, ...), which sdweb cannot apply yet.",
            code="lora_unsupported", hint="Use a plain LoRA (LoCon/LoRA) file.")
    if lora_module_count(list(tensors)) == 0:
        raise InvalidModelFileError(f"{file.path.name} has no LoRA weights (lora_down/lora_up or lora_A/lora_B).",
                                    code="not_a_lora", hint="Put only LoRA files in models/Lora.")
    return tensors, metadata


def _lora_hash(file: NamedModelFile, metadata: Mapping[str, str], registry: ModelRegistry) -> str | None:
    if metadata.get("sshs_model_hash"):
        return metadata["sshs_model_hash"][:12]
    if registry.no_hashing:
        return None
    kind = "addnet" if file.path.suffix.lower() == ".safetensors" else "sha256"
    return registry.cache.get(file.path, kind)[:12]


def _load_adapter(pipe: Any, family: Family, file: NamedModelFile, registry: ModelRegistry,
                  allow_unsafe_pickle: bool) -> LoadedAdapter:
    model_label = family.label
    tensors, metadata = _read_lora(file, family, allow_unsafe_pickle)
    made_for = lora_base_of(list(tensors), metadata)
    if made_for is not None and not lora_fits(made_for, family):
        raise _mismatch(file, made_for, model_label)
    expected = lora_module_count(list(tensors))
    adapter = _adapter_name(file.path)
    stamp = _stamp(file.path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")  # a failed load
            pipe.load_lora_weights(dict(tensors), adapter_name=adapter)
    except (MemoryError, torch.OutOfMemoryError):
        _discard(pipe, adapter)
        raise
    except Exception as exc:  # diffusers/peft raise RuntimeError (shapes), ValueError, their own types
        _discard(pipe, adapter)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])
        detail = next((line.strip() for line in first if "size mismatch" in line), first[0])[:240]
        raise InvalidModelFileError(
            f"{file.path.name} does not fit the loaded checkpoint ({model_label}): {detail}",
            code="lora_family_mismatch",
            hint="The LoRA was probably made for another model family (SD 1.x, SD 2.x, SDXL).") from exc
    counts = _lora_layers(pipe, adapter)
    got = sum(counts.values())
    if got == 0:
        _discard(pipe, adapter)
        raise InvalidModelFileError(f"{file.path.name} matches no layer of the loaded checkpoint ({model_label}).",
                                    code="lora_family_mismatch",
                                    hint="The LoRA was probably made for another model family.")
    if got < expected:
        log.warning("%s: only %d of %d LoRA layers matched %s", file.path.name, got, expected, model_label)
    log.info("LoRA %s loaded as adapter %s: %s", file.path.name, adapter, counts)
    return LoadedAdapter(adapter, file, stamp, _lora_hash(file, metadata, registry), tuple(counts), got, expected)


def _discard(pipe: Any, adapter: str) -> None:
    """Remove an adapter, or what a failed load may have injected."""
    try:
        if adapter in _adapters_present(pipe):
            with warnings.catch_warnings():  # "Adapter x was active which is now deleted": it was switched off
                warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
                pipe.delete_adapters([adapter])
    except Exception as error:  # cleanup after a failure must not hide the first error
        log.warning("could not remove the half-loaded adapter %s: %s", adapter, error)
