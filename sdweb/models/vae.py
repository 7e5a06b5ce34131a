"""External VAEs: which one the `sd_vae` setting means for a checkpoint, and reading a VAE file.

A1111's rules (a1111.md §16.4): `--vae-path` wins; "None" is the checkpoint's own (baked-in) VAE;
"Automatic" is a `<stem>.vae.safetensors|.pt|.ckpt` beside the checkpoint, else a file in models/VAE named
after the checkpoint, else the baked-in one; any other value is a VAE file name from the registry (an
unknown name falls back to the baked-in VAE with a note, as A1111 prints "Couldn't find VAE named ...").

A VAE file is an LDM-layout state dict (`first_stage_model.` or `vae.` prefix, or bare `encoder.`/`decoder.`
keys, as A1111 users have them) or a diffusers-layout one. Its numbers (widths, depth, latent channels)
come from the tensor shapes; scaling factor and upcast quirk from the family's bundled VAE config.

Known limit: the SD 1.x, SD 2.x and SDXL VAEs have identical shapes, so an SDXL VAE chosen for an SD 1.x
model loads (and decodes badly); only a VAE with other latent channels (SD3, Flux) or other keys is refused.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sdweb.core.errors import InvalidModelFileError, NotFoundError
from sdweb.models.detect import guess_kind, vae_config_from_ldm_shapes
from sdweb.models.families import Family
from sdweb.models.loader import CONFIGS, read_state_dict
from sdweb.models.registry import CheckpointEntry, ModelRegistry, NamedModelFile

__all__ = ["VaeChoice", "checked_vae_setting", "choose_vae", "read_vae_file", "vae_state_dict_to_diffusers"]

log = logging.getLogger(__name__)

AUTOMATIC = "Automatic"
BAKED_IN = "None"
_LDM_PREFIXES = ("first_stage_model.", "vae.")
_LEGACY_ATTENTION = (("query.", "to_q."), ("key.", "to_k."), ("value.", "to_v."), ("proj_attn.", "to_out.0."))


@dataclass(frozen=True)
class VaeChoice:
    """The VAE a job uses: `file` None means the checkpoint's own."""

    file: NamedModelFile | None
    source: str  # "--vae-path", "setting", "automatic" or "baked in"
    note: str | None = None  # said to the user (an unknown name fell back)


def choose_vae(registry: ModelRegistry, entry: CheckpointEntry, setting: str | None,
               vae_path: str | None) -> VaeChoice:
    """A1111's resolve_vae for one checkpoint and the `sd_vae` value of this job."""
    if vae_path:
        path = Path(vae_path)
        if not path.is_file():
            raise InvalidModelFileError(f"--vae-path {vae_path}: no such file.", code="model_file_missing",
                                        hint="Fix the path, or drop --vae-path to use the SD VAE setting.")
        return VaeChoice(NamedModelFile(path.name, path), "--vae-path")
    wanted = (setting or AUTOMATIC).strip()
    if wanted == BAKED_IN:
        return VaeChoice(None, "baked in")
    if wanted == AUTOMATIC:
        near = registry.vae_near_checkpoint(entry)
        return VaeChoice(near, "automatic") if near else VaeChoice(None, "baked in")
    found = registry.find_vae(wanted)
    if found is None:
        registry.refresh_vaes()  # a file added since the last scan
        found = registry.find_vae(wanted)
    if found is None:
        names = ", ".join(v.name for v in registry.vaes[:10]) or "none in models/VAE"
        return VaeChoice(None, "baked in", f"VAE {wanted!r} not found (available: {names}); used the "
                                           f"checkpoint's own VAE.")
    return VaeChoice(found, "setting")


def checked_vae_setting(registry: ModelRegistry, value: str) -> str:
    """A value for the `sd_vae` setting: Automatic, None, or a VAE file the registry lists (A1111's name for
    it, its file name, is returned); NotFoundError otherwise, as for an unknown checkpoint."""
    wanted = str(value).strip() or AUTOMATIC
    if wanted in (AUTOMATIC, BAKED_IN):
        return wanted
    found = registry.find_vae(wanted)
    if found is None:
        registry.refresh_vaes()  # a file added since the last scan
        found = registry.find_vae(wanted)
    if found is None:
        names = ", ".join(v.name for v in registry.vaes[:10]) or "none in models/VAE"
        raise NotFoundError(f"VAE {wanted!r} not found.", code="vae_not_found",
                            hint=f"Use Automatic, None or a VAE file ({names}); GET /sdapi/v1/sd-vae lists them.")
    return found.name


# ------------------------------------------------------------------------------------------- reading


def _strip_prefix(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in _LDM_PREFIXES:
        inside = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if inside:
            return inside
    return {k: v for k, v in tensors.items() if k.split(".", 1)[0] in
            ("encoder", "decoder", "quant_conv", "post_quant_conv", "conv1", "conv2")}  # conv1/2: Wan's quant convs


def _is_diffusers_layout(keys: Mapping[str, Any]) -> bool:
    return any(key.startswith(("encoder.down_blocks.", "decoder.up_blocks.")) for key in keys)


def _count(keys: Mapping[str, Any], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(m.group(1)) for key in keys if (m := pattern.match(key))]
    return max(found) + 1 if found else 0


def _diffusers_config(tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    levels = _count(tensors, "encoder.down_blocks.")
    widths = [tensors[f"encoder.down_blocks.{i}.resnets.0.conv2.weight"].shape[0] for i in range(levels)]
    groups = 32 if min(widths) >= 128 and all(w % 32 == 0 for w in widths) else 8
    return {
        "block_out_channels": widths,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "layers_per_block": _count(tensors, "encoder.down_blocks.0.resnets."),
        "latent_channels": tensors["decoder.conv_in.weight"].shape[1],
        "in_channels": tensors["encoder.conv_in.weight"].shape[1],
        "out_channels": tensors["decoder.conv_out.weight"].shape[0],
        "norm_num_groups": groups,
        "mid_block_add_attention": any(k.startswith("encoder.mid_block.attentions.0.") for k in tensors),
    }


def _modern_attention_names(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Diffusers files from before 0.15 name the mid-block attention query/key/value/proj_attn."""
    renamed = {}
    for key, value in tensors.items():
        if ".mid_block.attentions." in key:
            head, _, tail = key.rpartition("attentions.0.")
            for old, new in _LEGACY_ATTENTION:
                if tail.startswith(old):
                    tail = new + tail[len(old):]
            key = f"{head}attentions.0.{tail}"
        renamed[key] = value
    return renamed


def _not_a_vae(path: Path, tensors: Mapping[str, torch.Tensor]) -> InvalidModelFileError:
    kind = guess_kind({k: tuple(v.shape) for k, v in tensors.items()})
    what = {"lora": "a LoRA", "embedding": "an embedding", "controlnet": "a ControlNet",
            "upscaler": "an upscaler"}.get(kind or "", "not a VAE")
    looks = f"it looks like {what}" if what != "not a VAE" else "it has no encoder/decoder weights"
    return InvalidModelFileError(f"{path.name} is not a VAE: {looks}.", code="not_a_vae",
                                 hint="Choose a VAE file (models/VAE) in the SD VAE setting, or Automatic.")


def vae_state_dict_to_diffusers(path: Path, tensors: Mapping[str, torch.Tensor]
                                ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(inferred config numbers, diffusers-layout state dict) of a VAE file's tensors."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    inside = _strip_prefix(tensors)
    if not any(k.startswith("decoder.") for k in inside):
        raise _not_a_vae(path, tensors)
    try:
        if _is_diffusers_layout(inside):
            return _diffusers_config(inside), _modern_attention_names(inside)
        config = vae_config_from_ldm_shapes({k: tuple(v.shape) for k, v in inside.items()}, "")
        return config, convert_ldm_vae_checkpoint(inside, config)
    except (KeyError, IndexError, InvalidModelFileError) as exc:
        raise InvalidModelFileError(f"{path.name} is not a complete VAE ({exc}).", code="not_a_vae",
                                    hint="The file may be damaged or of a VAE kind sdweb does not support.") from exc


def _family_vae_config(family: Family) -> dict[str, Any]:
    return json.loads((CONFIGS / family.template / "vae" / "config.json").read_text(encoding="utf-8"))


def _check_fits(path: Path, config: Mapping[str, Any], family: Family, current: Mapping[str, Any]) -> None:
    latent = int(config["latent_channels"])
    if latent != family.latent_channels:
        other = " (an SD3 or Flux VAE?)" if latent == 16 else ""
        raise InvalidModelFileError(
            f"{path.name} is a VAE with {latent} latent channels{other}; {family.label} models use "
            f"{family.latent_channels}.", code="vae_family_mismatch",
            hint=f"Choose a VAE made for {family.label}, or None / Automatic.")
    if len(config["block_out_channels"]) != len(current["block_out_channels"]):
        raise InvalidModelFileError(
            f"{path.name} downsamples {2 ** (len(config['block_out_channels']) - 1)}x; this model's VAE "
            f"{2 ** (len(current['block_out_channels']) - 1)}x.", code="vae_family_mismatch",
            hint=f"Choose a VAE made for {family.label}, or None / Automatic.")


def read_vae_file(path: Path, family: Family, current: Mapping[str, Any], *,
                  allow_unsafe_pickle: bool = False) -> Any:
    """An AutoencoderKL (CPU, the file's dtype) with the weights of a VAE file, configured as `family`'s
    VAE; `current` is the config of the model's own VAE (it must downsample the same)."""
    import diffusers

    tensors = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    if family.latent.vae_class == "AutoencoderKLQwenImage":  # the Wan-style VAE (sdweb.models.wan_vae)
        from sdweb.models.wan_vae import load_qwen_vae

        return load_qwen_vae(path.name, _strip_prefix(tensors), _family_vae_config(family), torch.float32)
    layout = "diffusers" if _is_diffusers_layout(_strip_prefix(tensors)) else "LDM"
    numbers, converted = vae_state_dict_to_diffusers(path, tensors)
    del tensors
    config = {k: v for k, v in _family_vae_config(family).items() if not k.startswith("_")} | numbers
    config["use_quant_conv"] = "quant_conv.weight" in converted
    config["use_post_quant_conv"] = "post_quant_conv.weight" in converted
    _check_fits(path, config, family, current)
    with torch.device("meta"):
        vae = diffusers.AutoencoderKL.from_config(config)
    expected = vae.state_dict()
    missing = sorted(set(expected) - set(converted))
    wrong = [k for k, v in expected.items() if k in converted and tuple(converted[k].shape) != tuple(v.shape)]
    if missing or wrong:
        first = missing[0] if missing else f"{wrong[0]} has shape {list(converted[wrong[0]].shape)}"
        raise InvalidModelFileError(
            f"{path.name} does not fit a {family.label} VAE: {len(missing)} weights missing, {len(wrong)} of "
            f"another shape (e.g. {first}).", code="vae_family_mismatch",
            hint=f"Choose a VAE made for {family.label}, or None / Automatic.")
    vae.load_state_dict({k: converted[k] for k in expected}, strict=True, assign=True)
    log.info("read VAE %s (%s layout)", path.name, layout)
    return vae.eval()
