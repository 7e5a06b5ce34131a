"""Flux.1, Chroma, SD 3 / 3.5, Z-Image and Qwen-Image checkpoints -> their diffusers pipelines, from the files
users have.

Sources: an all-in-one file (transformer under `model.diffusion_model.`, encoders under
`text_encoders.{clip_l,clip_g,t5xxl,qwen25_7b}.transformer.`, VAE under `vae.` / `first_stage_model.`), a
transformer-only file (BFL / MMDiT / Z-Image / Qwen-Image keys, bare or prefixed; .safetensors in fp32 / bf16 /
fp16 / fp8 / fp8-scaled, or a city96 .gguf) plus module files (VAE, CLIP-L, CLIP-G, T5-XXL, Qwen3, Qwen2.5-VL),
or both: a module file replaces what the checkpoint carries for its slot. Before anything is built, the weights'
size in the compute dtype is checked against the RAM available (`check_ram`).

Each component is built from the family's bundled config template with the numbers read from its own
shapes (sdweb.models.flow_detect), on the meta device, then filled tensor by tensor (sdweb.models.weights):
the transformer through our width-agnostic key plans (sdweb.models.flow_convert), GGUF transformers through
diffusers' GGUF quantizer (weights stay quantized, dequantized per layer call). Tokenizers come from the
bundled `clip_tokenizer/`, `t5_tokenizer/`, `qwen_tokenizer/` and `qwen25vl_tokenizer/`; the Qwen-Image VAE
through sdweb.models.wan_vae. Nothing reaches the network.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sdweb.core.errors import InvalidModelFileError, UserError
from sdweb.models.families import Family
from sdweb.models.flow_convert import Piece, conversion_plan, layout_from_shapes, take, target_shape
from sdweb.models.flow_detect import (
    FileComponents,
    clip_config,
    clip_inner_prefix,
    file_components,
    qwen25vl_config,
    qwen25vl_prefixes,
    qwen_config,
    strip_prefix,
    t5_config,
    transformer_config,
)
from sdweb.models.loader import CONFIGS, LoadedCheckpoint, write_config_dir
from sdweb.models.modules import ModuleFile, assign_modules, classify_module_file, needed_slots
from sdweb.models.reading import FileHeader, read_header
from sdweb.models.flux2_vae import flux2_vae_tensors
from sdweb.models.wan_vae import qwen_vae_tensors, vae_numbers
from sdweb.models.weights import TensorFile, check_fits, fill_module, is_auxiliary_key, open_tensor_file
from sdweb.runtime.memory import available_ram_bytes

__all__ = ["check_flow_checkpoint", "image_processor_for", "load_flow_checkpoint", "qwen3_width", "tokenizer_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Source:
    """Where one component's weights are: a file and the key prefix inside it."""

    file: TensorFile
    prefix: str

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return strip_prefix(self.file.shapes, self.prefix)


def _template(family: Family, relative: str) -> dict[str, Any]:
    return json.loads((CONFIGS / family.template / relative).read_text(encoding="utf-8"))


@contextlib.contextmanager
def _naming(file_name: str, family: Family) -> Iterator[None]:
    """Errors from reading a component's numbers name its file."""
    try:
        yield
    except InvalidModelFileError as exc:
        if file_name in exc.message:
            raise
        raise InvalidModelFileError(f"{file_name}: {exc.message}", code=exc.code, hint=exc.hint or
                                    "The file may be damaged or made for another model.") from exc
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidModelFileError(f"{file_name}: unsupported {family.label} layout ({exc}).",
                                    code="model_layout_mismatch") from exc


def _transformer_plan(inner: Mapping[str, tuple[int, ...]], family: Family, file_name: str) -> list[Piece]:
    plan = conversion_plan(layout_from_shapes(inner, family))
    absent = [piece.source for piece in plan if piece.source not in inner]
    if absent:
        raise InvalidModelFileError(
            f"{file_name} lacks {len(absent)} weights of a {family.label} transformer (e.g. {absent[0]}).",
            code="model_layout_mismatch", hint="The file may be damaged, pruned in an unsupported way, or cut short.")
    return plan


def check_flow_checkpoint(path: Path, header: FileHeader, family: Family) -> None:
    """The cheap checks (header only): the transformer's config can be read and every weight its conversion
    needs is present."""
    prefix = file_components(header.shapes).transformer_prefix or ""
    inner = strip_prefix(header.shapes, prefix)
    with _naming(path.name, family):
        transformer_config(inner, family, _template(family, "transformer/config.json"))
    _transformer_plan(inner, family, path.name)


# ------------------------------------------------------------------------------------------ configs


def _read_vae(family: Family, source: _Source) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config numbers, diffusers-layout tensors) of a VAE (LDM or diffusers keys; Wan or diffusers keys for the
    Qwen-Image VAE); VAEs are small."""
    from sdweb.models.vae import vae_state_dict_to_diffusers

    tensors = {key: source.file.get(source.prefix + key) for key in source.shapes if not is_auxiliary_key(key)}
    if family.latent.vae_class == "AutoencoderKLQwenImage":
        converted = qwen_vae_tensors(tensors)
        return vae_numbers({key: tuple(value.shape) for key, value in converted.items()}), converted
    if family.latent.vae_class == "AutoencoderKLFlux2":
        return flux2_vae_tensors(source.file.path, tensors)
    numbers, converted = vae_state_dict_to_diffusers(source.file.path, tensors)
    numbers |= {"use_quant_conv": "quant_conv.weight" in converted,
                "use_post_quant_conv": "post_quant_conv.weight" in converted}
    return numbers, converted


def _component_configs(family: Family, sources: Mapping[str, _Source], vae_numbers: Mapping[str, Any]
                       ) -> dict[str, dict]:
    """diffusers component name -> config: the template with the numbers read from each source."""
    with _naming(sources["transformer"].file.name, family):
        configs = {"transformer": transformer_config(sources["transformer"].shapes, family,
                                                     _template(family, "transformer/config.json"))}
    configs["vae"] = _template(family, "vae/config.json") | dict(vae_numbers)
    for spec in family.text_encoders:
        source = sources[spec.slot]
        template = _template(family, f"{spec.component}/config.json")
        with _naming(source.file.name, family):
            if spec.tokenizer == "qwen25vl":
                configs[spec.component] = qwen25vl_config(source.file.shapes, source.prefix, template, spec.vision)
                continue
            read = {"t5": t5_config, "qwen3": qwen_config}.get(spec.tokenizer, clip_config)
            configs[spec.component] = template | read(source.file.shapes, source.prefix)
    return configs


def _check_widths(family: Family, configs: Mapping[str, Mapping[str, Any]], sources: Mapping[str, _Source],
                  transformer_name: str) -> None:
    """The encoders' output widths and the VAE's latent channels must be what the transformer takes."""
    transformer = configs["transformer"]
    by_slot = {spec.slot: configs[spec.component] for spec in family.text_encoders}

    def refuse(slot: str, gives: str, expects: str) -> InvalidModelFileError:
        return InvalidModelFileError(
            f"{sources[slot].file.name} gives {gives}, but {transformer_name} expects {expects}.",
            code="module_mismatch", hint=f"Choose the {slot} file made for this {family.label} model.")

    if "qwen3" in by_slot:
        width, expected = by_slot["qwen3"]["hidden_size"], qwen3_width(family, transformer)
        if width != expected:
            raise refuse("qwen3", f"{width}-wide Qwen3 output", f"{expected} (a Qwen3 of that width"
                         f"{_QWEN3_SIZES.get(expected, '')})")
        layers, deepest = by_slot["qwen3"]["num_hidden_layers"], max(next(
            spec.hidden_states for spec in family.text_encoders if spec.slot == "qwen3"))
        if deepest >= layers + 1:
            raise refuse("qwen3", f"a Qwen3 of {layers} layers", f"the hidden state of layer {deepest}")
    if "qwen25vl" in by_slot:
        width = by_slot["qwen25vl"].get("text_config", by_slot["qwen25vl"])["hidden_size"]
        if width != transformer["joint_attention_dim"]:
            raise refuse("qwen25vl", f"{width}-wide Qwen2.5-VL output",
                         f"{transformer['joint_attention_dim']} (Qwen2.5-VL-7B: 3584)")
    if "t5xxl" in by_slot and by_slot["t5xxl"]["d_model"] != transformer["joint_attention_dim"]:
        raise refuse("t5xxl", f"{by_slot['t5xxl']['d_model']}-wide T5 output",
                     f"{transformer['joint_attention_dim']}")
    pooled = transformer.get("pooled_projection_dim")
    if pooled is not None and "clip_g" in by_slot:
        widths = by_slot["clip_l"]["projection_dim"] + by_slot["clip_g"]["projection_dim"]
        if widths != pooled:
            raise refuse("clip_g", f"pooled CLIP-L + CLIP-G outputs {widths} wide", f"{pooled}")
        features = by_slot["clip_l"]["hidden_size"] + by_slot["clip_g"]["hidden_size"]
        if features > transformer["joint_attention_dim"]:  # SD3 pads the CLIP features to the T5 width
            raise refuse("clip_g", f"CLIP-L + CLIP-G features {features} wide",
                         f"at most {transformer['joint_attention_dim']}")
    elif pooled is not None and by_slot["clip_l"]["hidden_size"] != pooled:
        raise refuse("clip_l", f"a {by_slot['clip_l']['hidden_size']}-wide pooled CLIP output", f"{pooled}")
    latent = configs["vae"].get("latent_channels", configs["vae"].get("z_dim"))
    if latent != family.latent.vae_channels:
        raise refuse("vae", f"{latent} latent channels", f"{family.latent.vae_channels}")


_QWEN3_SIZES = {2560: ": Qwen3-4B", 4096: ": Qwen3-8B"}


def qwen3_width(family: Family, transformer: Mapping[str, Any]) -> int:
    """The Qwen3 width a transformer takes: Z-Image's caption width, or the joint width over the number of hidden
    states put side by side (Flux.2 Klein: 3)."""
    if "cap_feat_dim" in transformer:
        return int(transformer["cap_feat_dim"])
    spec = next(spec for spec in family.text_encoders if spec.slot == "qwen3")
    return int(transformer["joint_attention_dim"]) // len(spec.hidden_states)




# ------------------------------------------------------------------------------------------ components


def _plan_items(source: _Source, plan: list[Piece]) -> Iterator[tuple[str, torch.Tensor]]:
    """(diffusers key, tensor) in plan order, reading each original tensor once (pieces of one fused
    tensor are adjacent in a plan)."""
    current_key, current = None, None
    for piece in plan:
        if piece.source != current_key:
            current_key, current = piece.source, source.file.get(source.prefix + piece.source)
        yield piece.target, take(piece, current)


def _load_transformer(family: Family, source: _Source, config: dict[str, Any], config_dir: Path,
                      dtype: torch.dtype) -> Any:
    import diffusers
    from accelerate import init_empty_weights

    model_class = getattr(diffusers, family.transformer_class or "")
    inner = source.shapes
    plan = _transformer_plan(inner, family, source.file.name)
    with init_empty_weights():
        model = model_class.from_config(config)
    check_fits(model, {p.target: target_shape(p, inner[p.source]) for p in plan}, source.file.name,
               f"{family.label} transformer")
    if not source.file.is_gguf:
        return fill_module(model, _plan_items(source, plan), dtype, source.file.name, f"{family.label} transformer")
    del model
    converted = dict(_plan_items(source, plan))
    try:
        return model_class.from_single_file(
            converted, config=str(config_dir), subfolder="transformer", local_files_only=True, torch_dtype=dtype,
            quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=dtype),
        ).eval()
    except (ValueError, RuntimeError, KeyError) as exc:
        raise InvalidModelFileError(f"{source.file.name} could not be loaded: {str(exc).splitlines()[0][:200]}",
                                    code="model_load_failed") from exc


def _load_vae(family: Family, file_name: str, converted: Mapping[str, torch.Tensor], config: dict[str, Any],
              dtype: torch.dtype) -> Any:
    import diffusers
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = getattr(diffusers, family.latent.vae_class).from_config(config)
    check_fits(model, {k: tuple(v.shape) for k, v in converted.items()}, file_name, "VAE")
    return fill_module(model, converted.items(), dtype, file_name, "VAE")


_IDENTITY = ""  # stands for "no file key": the identity projection SD3 files omit for CLIP-L


def _clip_keys(source: _Source, model_keys: set[str]) -> list[tuple[str, str]]:
    """(model key, file key) of a CLIP text encoder; the file key is _IDENTITY for a missing projection."""
    inner = clip_inner_prefix(source.file.shapes, source.prefix)
    model_prefix = "text_model." if any(key.startswith("text_model.") for key in model_keys) else ""
    pairs = []
    for key in source.file.shapes:
        name = key[len(inner):]
        if (key.startswith(inner) and not key.startswith(source.prefix + "text_projection")
                and not name.endswith("position_ids") and not is_auxiliary_key(name) and name != "logit_scale"):
            pairs.append((model_prefix + name, key))
    if "text_projection.weight" in model_keys:  # SD3 files keep no CLIP-L projection: diffusers uses the identity
        projection = source.prefix + "text_projection.weight"
        pairs.append(("text_projection.weight", projection if projection in source.file.shapes else _IDENTITY))
    return pairs


def _t5_keys(source: _Source) -> list[tuple[str, str]]:
    """(model key, file key) of a T5 encoder; the embedding is tied (real files keep only `shared.weight`)."""
    shapes = source.shapes
    pairs = [(name, source.prefix + name) for name in shapes
             if not is_auxiliary_key(name) and name not in ("shared.weight", "encoder.embed_tokens.weight")]
    embedding = source.prefix + ("shared.weight" if "shared.weight" in shapes else "encoder.embed_tokens.weight")
    return pairs + [("shared.weight", embedding), ("encoder.embed_tokens.weight", embedding)]


def _qwen_keys(source: _Source) -> list[tuple[str, str]]:
    """(model key, file key) of a Qwen decoder used as an encoder: its `lm_head` (tied or not) is not needed."""
    return [(name, source.prefix + name) for name in source.shapes
            if not is_auxiliary_key(name) and not name.startswith("lm_head.")]


def _qwen25vl_keys(source: _Source, vision: bool) -> list[tuple[str, str]]:
    """(model key, file key) of Qwen2.5-VL as `Qwen2_5_VLTextModel` (the language model's keys bare) or, with
    `vision`, `Qwen2_5_VLModel` (`language_model.` and `visual.`); `lm_head` is not needed."""
    shapes = source.file.shapes
    language, tower = qwen25vl_prefixes(shapes, source.prefix)
    parts = [(language, "language_model." if vision else "")]
    parts += [(tower, "visual.")] if vision and tower is not None else []
    return [(target + key[len(prefix):], key) for prefix, target in parts for key in shapes
            if key.startswith(prefix) and not is_auxiliary_key(key) and not key[len(prefix):].startswith("lm_head.")
            and not (prefix == language and tower is not None and key.startswith(tower))]


def _mapped_items(file: TensorFile, pairs: list[tuple[str, str]], hidden: int) -> Iterator[tuple[str, torch.Tensor]]:
    last_key, last = None, None
    for model_key, file_key in pairs:
        if file_key == _IDENTITY:
            yield model_key, torch.eye(hidden)
            continue
        if file_key != last_key:
            last_key, last = file_key, file.get(file_key)
        yield model_key, last


def _load_text_encoder(kind: str, component_class: str, source: _Source, config: dict[str, Any],
                       dtype: torch.dtype) -> Any:
    import transformers
    from accelerate import init_empty_weights

    model_class = getattr(transformers, component_class)
    with init_empty_weights():
        model = model_class(model_class.config_class(**{k: v for k, v in config.items() if k != "architectures"}))
    if kind == "t5":
        pairs = _t5_keys(source)
    elif kind == "qwen3":
        pairs = _qwen_keys(source)
    elif kind == "qwen25vl":
        pairs = _qwen25vl_keys(source, "vision_config" in config)
    else:
        pairs = _clip_keys(source, set(model.state_dict()))
    hidden = int(config.get("hidden_size") or config.get("d_model") or 0)  # CLIP's identity projection
    shapes = {key: source.file.shapes[file_key] if file_key != _IDENTITY else (hidden, hidden)
              for key, file_key in pairs}
    what = f"{_ENCODER_WORDS.get(kind, 'CLIP')} text encoder"
    check_fits(model, shapes, source.file.name, what)
    fill_module(model, _mapped_items(source.file, pairs, hidden), dtype, source.file.name, what)
    if kind == "t5":
        model.encoder.embed_tokens.weight = model.shared.weight  # one Parameter: the tie survives .to(device)
    return model


_ENCODER_WORDS = {"t5": "T5", "qwen3": "Qwen3", "qwen25vl": "Qwen2.5-VL"}


@functools.cache
def tokenizer_for(kind: str) -> Any:
    """The bundled tokenizer: "clip" (CLIP BPE, 77 tokens), "t5" (T5 v1.1 XXL), "qwen3" (Qwen's BPE with the
    Qwen3 special tokens and chat template, from vocab.json + merges.txt) or "qwen25vl" (the same BPE with the
    Qwen2.5-VL special tokens). Built once per process (half a second each) and shared: nothing changes them."""
    import transformers

    if kind == "qwen3":
        return transformers.Qwen2Tokenizer.from_pretrained(str(CONFIGS / "qwen_tokenizer"), local_files_only=True)
    if kind == "qwen25vl":
        bpe = CONFIGS / "qwen_tokenizer"
        return transformers.Qwen2Tokenizer.from_pretrained(
            str(CONFIGS / "qwen25vl_tokenizer"), vocab_file=str(bpe / "vocab.json"), merges_file=str(bpe / "merges.txt"),
            local_files_only=True)
    if kind == "t5":
        return transformers.T5TokenizerFast.from_pretrained(str(CONFIGS / "t5_tokenizer"), local_files_only=True)
    return transformers.CLIPTokenizer.from_pretrained(str(CONFIGS / "clip_tokenizer"), model_max_length=77,
                                                      local_files_only=True)


@functools.cache
def image_processor_for(family: Family) -> Any:
    """Qwen2.5-VL's image processor for an editing family (the bundled `processor/preprocessor_config.json`):
    its PIL implementation, which needs no torchvision."""
    import transformers

    config = {k: v for k, v in _template(family, "processor/preprocessor_config.json").items()
              if k != "image_processor_type"}
    return transformers.Qwen2VLImageProcessorPil(**config)


# ------------------------------------------------------------------------------------------ loading


def _sources(file: TensorFile, components: FileComponents, family: Family,
             chosen: Mapping[str, TensorFile], chosen_prefixes: Mapping[str, str]) -> dict[str, _Source]:
    sources = {"transformer": _Source(file, components.transformer_prefix or "")}
    for slot in needed_slots(family):
        if slot in chosen:
            sources[slot] = _Source(chosen[slot], chosen_prefixes[slot])
        elif slot == "vae":
            sources[slot] = _Source(file, components.vae_prefix or "")
        else:
            sources[slot] = _Source(file, components.text_encoder_prefixes[slot])
    return sources


def _ram_bytes(source: _Source, per_element: int) -> int:
    """What one source takes once loaded: its tensors in the compute dtype (fp8 is upcast), but a GGUF transformer
    as stored (it stays quantized); `lm_head`s and fp8 scales are not loaded."""
    if source.file.is_gguf:
        return source.file.path.stat().st_size
    return per_element * sum(math.prod(shape) for key, shape in source.shapes.items()
                             if not is_auxiliary_key(key) and not key.startswith("lm_head."))


def check_ram(file_name: str, sources: Mapping[str, _Source], dtype: torch.dtype, available: int | None) -> None:
    """A UserError saying how much RAM the load needs, file by file, when the machine does not have it (every
    component is built in RAM in `dtype` first, whatever its file's own precision): a clear refusal instead of
    the OOM killer ending the server halfway through a 20 GB load (a 7B Qwen2.5-VL text encoder alone takes
    about 16 GB in bf16)."""
    if available is None:
        return
    per_element = torch.empty(0, dtype=dtype).element_size()
    parts = {source.file.name: 0 for source in sources.values()}
    counted: set[tuple[str, str]] = set()
    for source in sources.values():
        if (source.file.name, source.prefix) in counted:
            continue
        counted.add((source.file.name, source.prefix))
        parts[source.file.name] += _ram_bytes(source, per_element)
    needed = sum(parts.values())
    if needed <= available:
        return
    gb = 1e9
    each = ", ".join(f"{name}: {size / gb:.1f} GB" for name, size in sorted(parts.items(), key=lambda p: -p[1]))
    raise UserError(f"Loading {file_name} needs about {needed / gb:.1f} GB of RAM ({each}) and "
                    f"{available / gb:.1f} GB is available.",
                    code="not_enough_ram",
                    hint=f"Close other programs or add swap, or use a machine with more RAM. sdweb builds each "
                         f"component in RAM in {str(dtype).removeprefix('torch.')} before placing it (fp8 files "
                         "are expanded to that too; a GGUF transformer stays quantized).")


def load_flow_checkpoint(path: Path, header: FileHeader, family: Family, modules: Sequence[str | Path], *,
                         dtype: torch.dtype, cache_dir: Path, allow_unsafe_pickle: bool = False) -> LoadedCheckpoint:
    """The family's pipeline (on the CPU, in `dtype`) from `path` and the module files `modules` (VAE and
    text-encoder files; each replaces what the checkpoint carries for its slot). `LoadedCheckpoint.modules`
    lists the stems of the module files used, in the order given (Forge's `Module 1: ae, ...`)."""
    import diffusers

    components = file_components(header.shapes)
    module_files: list[ModuleFile] = [classify_module_file(m) for m in modules]
    chosen = assign_modules(family, components.components - {"transformer"}, module_files)
    with contextlib.ExitStack() as stack:
        file = stack.enter_context(open_tensor_file(path, header, allow_unsafe_pickle=allow_unsafe_pickle))
        opened = {slot: stack.enter_context(open_tensor_file(m.path, read_header(m.path)))
                  for slot, m in chosen.items()}
        sources = _sources(file, components, family, opened, {s: m.info.prefix for s, m in chosen.items()})
        check_ram(path.name, sources, dtype, available_ram_bytes())
        with _naming(sources["vae"].file.name, family):
            vae_numbers, vae_tensors = _read_vae(family, sources["vae"])
        configs = _component_configs(family, sources, vae_numbers)
        _check_widths(family, configs, sources, path.name)
        files = {"model_index.json": _template(family, "model_index.json"),
                 "scheduler/scheduler_config.json": _template(family, "scheduler/scheduler_config.json")}
        files |= {f"{name}/config.json": config for name, config in configs.items()}
        config_dir = write_config_dir(family, files, cache_dir)
        parts: dict[str, Any] = {
            "transformer": _load_transformer(family, sources["transformer"], configs["transformer"], config_dir,
                                             dtype),
            "vae": _load_vae(family, sources["vae"].file.name, vae_tensors, configs["vae"], dtype),
            "scheduler": diffusers.FlowMatchEulerDiscreteScheduler.from_config(files["scheduler/scheduler_config.json"]),
        }
        index = files["model_index.json"]
        for spec in family.text_encoders:
            parts[spec.component] = _load_text_encoder(spec.tokenizer, index[spec.component][1], sources[spec.slot],
                                                       configs[spec.component], dtype)
            parts[spec.component.replace("text_encoder", "tokenizer")] = tokenizer_for(spec.tokenizer)
        if "processor" in index:  # Qwen-Image-Edit: sdweb reads the image with image_processor_for(family)
            parts["processor"] = None
    pipeline = getattr(diffusers, family.load_pipeline)(**parts)
    used = tuple(m.stem for m in module_files)
    log.info("loaded %s as %s%s", path.name, family.name, f" with modules {', '.join(used)}" if used else "")
    return LoadedCheckpoint(pipeline, family, family.prediction_type, "family default", config_dir, modules=used,
                            module_paths=tuple(m.path for m in module_files))

