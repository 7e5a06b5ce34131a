"""A1111 infotext ("generation parameters" text): format, parse, and map to request fields. Pure.

Layout::

    <prompt, any number of lines>
    Negative prompt: <negative, any number of lines>      (only when non-empty)
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, ...

``parse_infotext`` returns what A1111's ``parse_generation_parameters`` returns (the /png-info
``parameters``): values are strings as written, plus defaults for missing keys. Typed request fields and
``override_settings`` come from ``infotext_to_request_fields``. Nothing here raises on any input text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping

from sdweb.prompts.parser import parse_prompt_attention
from sdweb.samplers.resolve import find_sampler, resolve_sampler

__all__ = [
    "CANONICAL_KEY_ORDER",
    "SETTING_FOR_INFOTEXT_KEY",
    "TRAILING_KEYS",
    "StyleExtractor",
    "format_infotext",
    "infotext_to_request_fields",
    "novelai_infotext",
    "order_params",
    "parse_infotext",
    "parse_infotext_parts",
    "parse_version",
    "quote",
    "resolve_hr_sampler_and_scheduler",
    "resolve_sampler_and_scheduler",
    "unquote",
]

# The fixed head of A1111's parameter line (processing.create_infotext). Keys the caller does not
# supply (or supplies as None) are left out; extra parameters follow in insertion order; then TRAILING_KEYS.
CANONICAL_KEY_ORDER: tuple[str, ...] = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Distilled CFG Scale", "Image CFG scale", "Seed", "Face restoration", "Size",
    "Model hash", "Model", "FP8 weight", "Cache FP16 weight for LoRA", "VAE hash", "VAE", "Variation seed",
    "Variation seed strength", "Seed resize from", "Denoising strength", "Conditional mask weight", "Clip skip",
    "ENSD", "Token merging ratio", "Token merging ratio hr", "Init image hash", "RNG", "Tiling",
)
TRAILING_KEYS: tuple[str, ...] = ("Version", "User")

# Settings-type infotext keys -> (option key, type the value is cast to). Mirrors the v1.10 options that
# declare an infotext label; "Model hash" is skipped while disable_weights_auto_swap is on.
SETTING_FOR_INFOTEXT_KEY: dict[str, tuple[str, type]] = {
    "Model hash": ("sd_model_checkpoint", str),
    "VAE": ("sd_vae", str),
    "Clip skip": ("CLIP_stop_at_last_layers", int),
    "Shift": ("flow_shift", float),
    "VAE Encoder": ("sd_vae_encode_method", str),
    "VAE Decoder": ("sd_vae_decode_method", str),
    "Conditional mask weight": ("inpainting_mask_weight", float),
    "Noise multiplier": ("initial_noise_multiplier", float),
    "Extra noise": ("img2img_extra_noise", float),
    "RNG": ("randn_source", str),
    "Token merging ratio": ("token_merging_ratio", float),
    "Token merging ratio hr": ("token_merging_ratio_hr", float),
    "ENSD": ("eta_noise_seed_delta", int),
    "Emphasis": ("emphasis", str),
    "Tiling": ("tiling", bool),
    "Eta": ("eta_ancestral", float),
    "Eta DDIM": ("eta_ddim", float),
    "Sigma churn": ("s_churn", float),
    "Sigma tmin": ("s_tmin", float),
    "Sigma tmax": ("s_tmax", float),
    "Sigma noise": ("s_noise", float),
    "Schedule min sigma": ("sigma_min", float),
    "Schedule max sigma": ("sigma_max", float),
    "Schedule rho": ("rho", float),
    "Beta schedule alpha": ("beta_dist_alpha", float),
    "Beta schedule beta": ("beta_dist_beta", float),
    "Discard penultimate sigma": ("always_discard_next_to_last_sigma", bool),
    "SGM noise multiplier": ("sgm_noise_multiplier", bool),
    "UniPC variant": ("uni_pc_variant", str),
    "UniPC skip type": ("uni_pc_skip_type", str),
    "UniPC order": ("uni_pc_order", int),
    "UniPC lower order final": ("uni_pc_lower_order_final", bool),
    "Noise Schedule": ("sd_noise_schedule", str),
    "Pad conds": ("pad_cond_uncond", bool),
    "Pad conds v0": ("pad_cond_uncond_v0", bool),
    "Old prompt editing timelines": ("use_old_scheduling", bool),
    "Downcast alphas_cumprod": ("use_downcasted_alpha_bar", bool),
    "Refiner switch by sampling steps": ("refiner_switch_by_sample_steps", bool),
    "NGMS": ("s_min_uncond", float),
    "NGMS all steps": ("s_min_uncond_all", bool),
    "Skip Early CFG": ("skip_early_cond", float),
    "FP8 weight": ("fp8_storage", str),
    "Cache FP16 weight for LoRA": ("cache_fp16_weight", bool),
    "Hires refiner": ("hires_fix_refiner_pass", str),
}

# (prompt, negative) -> (found style names, prompt without them, negative without them)
StyleExtractor = Callable[[str, str], tuple[list[str], str, str]]

# A1111's pattern with the key capped at 200 characters: unbounded, findall rescans the rest of a long run of
# key characters from every position (quadratic: 16 KB of "xxx" took 1.5 s, a 10 MB PNG text chunk hours).
_PARAM_RE = re.compile(r'\s*(\w[\w \-/]{1,199}):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
MAX_PARAMETER_LINE = 64 * 1024  # longer last lines are prompt text, not parameters (parsing stays under ~0.3 s)
_SIZE_RE = re.compile(r"^(\d+)x(\d+)$")


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def quote(value: object) -> str:
    """A1111's rule: JSON-quote a value whose text holds ``,``, ``:`` or a newline, else ``str()``."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def order_params(params: Mapping[str, object]) -> dict[str, object]:
    """Put keys in A1111's order: CANONICAL_KEY_ORDER, then the others as given, then TRAILING_KEYS."""
    head = {key: params[key] for key in CANONICAL_KEY_ORDER if key in params}
    middle = {key: value for key, value in params.items() if key not in head and key not in TRAILING_KEYS}
    tail = {key: params[key] for key in TRAILING_KEYS if key in params}
    return {**head, **middle, **tail}


def format_infotext(prompt: str, negative_prompt: str, params: Mapping[str, object]) -> str:
    """Build the infotext; ``params`` keys are written in the order given, None values skipped.

    Values are written with ``str()`` (so ``7.0`` stays ``7.0``) unless they need quoting; a value equal
    to its key is written as the bare key, as A1111 does.
    """
    line = ", ".join(
        key if key == value else f"{key}: {quote(value)}" for key, value in params.items() if value is not None
    )
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}".strip()


def add_params(text: str, extra: Mapping[str, object]) -> str:
    """`text` with `extra` pairs added to its parameter line, before the trailing keys (Version, User), as
    A1111 writes a script's keys (``Script: X/Y/Z plot, X Type: Steps, ...``) into a grid's infotext."""
    pairs = ", ".join(f"{key}: {quote(value)}" for key, value in extra.items() if value is not None)
    if not pairs:
        return text
    head, _, last = text.rpartition("\n")
    if len(last) > MAX_PARAMETER_LINE or len(_PARAM_RE.findall(last)) < 3:
        return f"{text}\n{pairs}" if text else pairs
    cut = min((match.start() for key in TRAILING_KEYS
               if (match := re.search(rf"(?:^|, ){re.escape(key)}: ", last))), default=len(last))
    before, after = last[:cut], last[cut:]
    line = f"{before}, {pairs}{after}" if before else f"{pairs}, {after.removeprefix(', ')}"
    return f"{head}\n{line}" if head else line


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

def parse_infotext_parts(text: str) -> tuple[str, str, dict[str, str]]:
    """Split into (prompt, negative prompt, parameter pairs); values unquoted, nothing added or split.

    The last line counts as the parameter line only if at least 3 ``key: value`` pairs are found in it.
    A pair with an empty value is dropped (A1111 fails on it and skips it).
    """
    *lines, last_line = text.strip().split("\n")
    if len(last_line) > MAX_PARAMETER_LINE or len(_PARAM_RE.findall(last_line)) < 3:
        lines.append(last_line)
        last_line = ""
    prompt, negative, in_negative = "", "", False
    for raw_line in lines:
        line = raw_line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    pairs: dict[str, str] = {}
    for key, value in _PARAM_RE.findall(last_line):
        if value:
            pairs[key] = unquote(value) if value[0] == '"' and value[-1] == '"' else value
    return prompt, negative, pairs


def parse_infotext(
    text: str,
    *,
    skip_fields: Iterable[str] = (),
    extract_styles: StyleExtractor | None = None,
    infotext_styles: str = "Apply if any",
    use_old_hires_fix_width_height: bool = False,
    auto_backcompat: bool = True,
) -> dict[str, object]:
    """A1111's ``parse_generation_parameters``: keys as written, ``WxH`` values split into ``-1``/``-2``,
    ``Prompt``, ``Negative prompt``, then the defaults A1111 adds for missing keys.

    ``extract_styles`` (the styles database) and the other keywords stand in for A1111's settings
    (``infotext_styles``, ``use_old_hires_fix_width_height``, ``auto_backcompat``, ``infotext_skip_pasting``).
    """
    prompt, negative, pairs = parse_infotext_parts(text)
    res: dict[str, object] = {}
    for key, value in pairs.items():
        size = _SIZE_RE.match(value)
        if size:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value
    if extract_styles is not None and infotext_styles != "Ignore":
        prompt, negative = _extract_styles(res, prompt, negative, extract_styles, infotext_styles)
    res["Prompt"] = prompt
    res["Negative prompt"] = negative
    _add_defaults(res, use_old_hires_fix_width_height)
    if "Emphasis" not in res and _uses_emphasis(prompt, negative):
        res["Emphasis"] = "Original"
    res.setdefault("Refiner switch by sampling steps", False)
    if auto_backcompat:
        _backcompat(res)
    for key in skip_fields:
        res.pop(key, None)
    return res


def _extract_styles(res: dict[str, object], prompt: str, negative: str, extract: StyleExtractor,
                    mode: str) -> tuple[str, str]:
    found, prompt_no_styles, negative_no_styles = extract(prompt, negative)
    same_hr_styles = True
    if "Hires prompt" in res or "Hires negative prompt" in res:
        version = parse_version(_as_text(res.get("Version")))
        if version is None or version > _V180_HR_STYLES:
            hr_prompt = _as_text(res.get("Hires prompt", prompt)) or ""
            hr_negative = _as_text(res.get("Hires negative prompt", negative)) or ""
            hr_found, hr_prompt_no_styles, hr_negative_no_styles = extract(hr_prompt, hr_negative)
            same_hr_styles = found == hr_found
            if same_hr_styles:
                res["Hires prompt"] = "" if hr_prompt_no_styles == prompt_no_styles else hr_prompt_no_styles
                res["Hires negative prompt"] = (
                    "" if hr_negative_no_styles == negative_no_styles else hr_negative_no_styles)
    if not same_hr_styles:
        return prompt, negative
    if (mode == "Apply if any" and found) or mode == "Apply":
        res["Styles array"] = found
    return prompt_no_styles, negative_no_styles


_DEFAULTS_BEFORE_HIRES_FIX: tuple[tuple[str, object], ...] = (
    ("Hires sampler", "Use same sampler"), ("Hires schedule type", "Use same scheduler"),
    ("Hires checkpoint", "Use same checkpoint"), ("Hires prompt", ""), ("Hires negative prompt", ""),
    ("Mask mode", "Inpaint masked"), ("Masked content", "original"), ("Inpaint area", "Whole picture"),
    ("Masked area padding", 32),
)
_DEFAULTS_AFTER_HIRES_FIX: tuple[tuple[str, object], ...] = (
    ("RNG", "GPU"), ("Schedule type", "Automatic"), ("Schedule max sigma", 0), ("Schedule min sigma", 0),
    ("Schedule rho", 0), ("VAE Encoder", "Full"), ("VAE Decoder", "Full"), ("FP8 weight", "Disable"),
)


def _add_defaults(res: dict[str, object], use_old_hires_fix_width_height: bool) -> None:
    res.setdefault("Clip skip", "1")
    hypernet = res.get("Hypernet")
    if hypernet is not None:
        res["Prompt"] = f"{res['Prompt']}<hypernet:{hypernet}:{res.get('Hypernet strength', '1.0')}>"
    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    for key, value in _DEFAULTS_BEFORE_HIRES_FIX:
        res.setdefault(key, value)
    _restore_old_hires_fix_params(res, use_old_hires_fix_width_height)
    for key, value in _DEFAULTS_AFTER_HIRES_FIX:
        res.setdefault(key, value)
    if "Cache FP16 weight for LoRA" not in res and res["FP8 weight"] != "Disable":
        res["Cache FP16 weight for LoRA"] = False


def _restore_old_hires_fix_params(res: dict[str, object], use_old_width_height: bool) -> None:
    """Old hires infotexts carry ``First pass size``: it becomes Size, and Size becomes Hires resize."""
    if use_old_width_height:
        hires_width, hires_height = _int_or(res.get("Hires resize-1"), 0), _int_or(res.get("Hires resize-2"), 0)
        if hires_width and hires_height:
            res["Size-1"], res["Size-2"] = hires_width, hires_height
            return
    first_width = _int_or(res.get("First pass size-1"), None)
    first_height = _int_or(res.get("First pass size-2"), None)
    if first_width is None or first_height is None:
        return
    width, height = _int_or(res.get("Size-1", 512), 512), _int_or(res.get("Size-2", 512), 512)
    if first_width == 0 or first_height == 0:
        try:
            scale = math.sqrt(512 * 512 / (width * height))
            first_width = math.ceil(scale * width / 64) * 64
            first_height = math.ceil(scale * height / 64) * 64
        except (ZeroDivisionError, OverflowError, ValueError):
            return  # A1111 fails here (0x0 or absurd sizes)
    res["Size-1"], res["Size-2"] = first_width, first_height
    res["Hires resize-1"], res["Hires resize-2"] = width, height


def _uses_emphasis(prompt: str, negative: str) -> bool:
    runs = parse_prompt_attention(prompt) + parse_prompt_attention(negative)
    return any(weight != 1.0 and text != "BREAK" for text, weight in runs)


def _backcompat(res: dict[str, object]) -> None:
    version = parse_version(_as_text(res.get("Version")))
    if version is None:
        return
    if version < _V160 and "[" in (_as_text(res.get("Prompt")) or ""):
        res["Old prompt editing timelines"] = True
    if version < _V160 and res.get("Sampler", "") in ("DDIM", "PLMS"):
        res["Pad conds v0"] = True
    if version < _V170_TSNR:
        res["Downcast alphas_cumprod"] = True
    if version < _V180 and res.get("Refiner"):
        res["Refiner switch by sampling steps"] = True


# A subset of PEP 440, enough for "v1.10.1", "1.8.0-RC", "v1.7.0-225" (a post release) and the like.
_VERSION_RE = re.compile(
    r"""^\s*v?(?:(\d+)!)?(\d+(?:\.\d+)*)
    (?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?(\d+)?)?
    (?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?
    (?:[-_.]?(dev)[-_.]?(\d+)?)?
    (?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_PRE_RANK = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


def parse_version(text: str | None) -> tuple | None:
    """A sortable key for an infotext ``Version`` (A1111 keeps only ``x-y`` of ``x-y-z``); None if invalid."""
    if text is None:
        return None
    git_describe = re.match(r"([^-]+-[^-]+)-.*", text)
    if git_describe:
        text = git_describe.group(1)
    match = _VERSION_RE.match(text)
    if match is None:
        return None
    epoch, release, pre, pre_n, post_dash, post_word, post_n, dev, dev_n = match.groups()
    numbers = [int(part) for part in release.split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    has_post = post_dash is not None or post_word is not None
    post = int(post_dash or post_n or 0) if has_post else -1
    if pre is not None:
        pre_key: tuple[float, int] = (_PRE_RANK[pre.lower()], int(pre_n or 0))
    else:
        pre_key = (-math.inf, 0) if dev is not None and not has_post else (math.inf, 0)
    dev_key = int(dev_n or 0) if dev is not None else math.inf
    return int(epoch or 0), tuple(numbers), pre_key, post, dev_key


_V160, _V170_TSNR = parse_version("1.6.0"), parse_version("v1.7.0-225")
_V180, _V180_HR_STYLES = parse_version("1.8.0"), parse_version("1.8.0-139")


# ---------------------------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------------------------

def resolve_sampler_and_scheduler(sampler: object, scheduler: object, *,
                                  convert_automatic: bool = True) -> tuple[str, str]:
    """A1111's ``get_sampler_and_scheduler`` on the program's one sampler table: split a legacy suffix
    ("DPM++ 2M Karras"), fall back to the first sampler for unknown names (A1111's autocorrection), and report
    the sampler's own default scheduler as "Automatic"."""
    resolved = resolve_sampler(sampler if isinstance(sampler, str) else None,
                               scheduler if isinstance(scheduler, str) else None,
                               convert_automatic=convert_automatic)
    return resolved.sampler.name, resolved.scheduler.label


def resolve_hr_sampler_and_scheduler(params: Mapping[str, object]) -> tuple[str, str]:
    """Hires sampler/scheduler from infotext: "Use same sampler"/"Use same scheduler" when equal to the first pass."""
    hr_sampler = params.get("Hires sampler", "Use same sampler")
    sampler = params.get("Sampler") if hr_sampler == "Use same sampler" else hr_sampler
    hr_scheduler = params.get("Hires schedule type", "Use same scheduler")
    scheduler = params.get("Schedule type") if hr_scheduler == "Use same scheduler" else hr_scheduler
    sampler_name, scheduler_label = resolve_sampler_and_scheduler(sampler, scheduler)
    if sampler_name == params.get("Sampler"):
        sampler_name = "Use same sampler"
    if scheduler_label == params.get("Schedule type"):
        scheduler_label = "Use same scheduler"
    return sampler_name, scheduler_label


def novelai_infotext(items: Mapping[str, object], width: int, height: int) -> str | None:
    """The A1111-style infotext A1111 builds for a NovelAI PNG (``Software: NovelAI``); None if not one."""
    if items.get("Software") != "NovelAI":
        return None
    try:
        info = json.loads(items["Comment"])  # type: ignore[arg-type]
        if not isinstance(info["sampler"], str):
            return None
        found = find_sampler(info["sampler"])
        sampler = found.name if found is not None else "Euler a"
        return (f"{items['Description']}\nNegative prompt: {info['uc']}\n"
                f"Steps: {info['steps']}, Sampler: {sampler}, CFG scale: {info['scale']}, Seed: {info['seed']}, "
                f"Size: {width}x{height}, Clip skip: 2, ENSD: 31337")
    except (KeyError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# Infotext -> request fields
# ---------------------------------------------------------------------------------------------

_COMMON_FIELDS: tuple[tuple[str, str, type], ...] = (
    ("Prompt", "prompt", str), ("Negative prompt", "negative_prompt", str), ("Steps", "steps", int),
    ("CFG scale", "cfg_scale", float), ("Distilled CFG Scale", "distilled_cfg_scale", float), ("Seed", "seed", int), ("Size-1", "width", int), ("Size-2", "height", int),
    ("Batch size", "batch_size", int), ("Denoising strength", "denoising_strength", float),
    ("Variation seed", "subseed", int), ("Variation seed strength", "subseed_strength", float),
    # A1111 quirk, kept: the first number of "Seed resize from" (the width) goes to _h and vice versa.
    ("Seed resize from-1", "seed_resize_from_h", int), ("Seed resize from-2", "seed_resize_from_w", int),
    ("Refiner", "refiner_checkpoint", str), ("Refiner switch at", "refiner_switch_at", float),
)
_TXT2IMG_FIELDS: tuple[tuple[str, str, type], ...] = (
    ("Hires upscale", "hr_scale", float), ("Hires upscaler", "hr_upscaler", str),
    ("Hires steps", "hr_second_pass_steps", int), ("Hires resize-1", "hr_resize_x", int),
    ("Hires resize-2", "hr_resize_y", int), ("Hires checkpoint", "hr_checkpoint_name", str),
    ("Hires prompt", "hr_prompt", str), ("Hires negative prompt", "hr_negative_prompt", str),
)
_IMG2IMG_FIELDS: tuple[tuple[str, str, type], ...] = (
    ("Image CFG scale", "image_cfg_scale", float), ("Mask blur", "mask_blur_x", int),
    ("Mask blur", "mask_blur_y", int), ("Masked area padding", "inpaint_full_res_padding", int),
)
# Radio buttons A1111 reads by index.
_IMG2IMG_CHOICES: tuple[tuple[str, str, tuple[str, ...], type], ...] = (
    ("Mask mode", "inpainting_mask_invert", ("Inpaint masked", "Inpaint not masked"), int),
    ("Masked content", "inpainting_fill", ("fill", "original", "latent noise", "latent nothing"), int),
    ("Inpaint area", "inpaint_full_res", ("Whole picture", "Only masked"), bool),
)


def infotext_to_request_fields(
    params: Mapping[str, object],
    *,
    mode: str = "txt2img",
    current_settings: Mapping[str, object] | None = None,
    disable_weights_auto_swap: bool = True,
    gpu_noise_source: str = "GPU",
) -> tuple[dict[str, object], dict[str, object]]:
    """Map ``parse_infotext`` output to (request fields, override_settings), typed.

    ``gpu_noise_source`` is what an infotext made with A1111's default "GPU" noise (no ``RNG`` key) runs with
    here: "NV" on a machine without CUDA reproduces the NVIDIA card's noise (made by most A1111 users).

    ``mode`` is "txt2img" (hires fields) or "img2img" (mask fields). Values that cannot be converted
    to the field's type are left out (A1111 would fail the request). With ``current_settings``, overrides
    equal to the current value are dropped, as A1111 does.
    """
    fields: dict[str, object] = {}
    sampler, scheduler = resolve_sampler_and_scheduler(params.get("Sampler"), params.get("Schedule type"))
    fields["sampler_name"], fields["scheduler"] = sampler, scheduler
    table = _COMMON_FIELDS + (_TXT2IMG_FIELDS if mode == "txt2img" else _IMG2IMG_FIELDS)
    for key, field, kind in table:
        value = _cast(params.get(key), kind)
        if value is not None:
            fields[field] = value
    if isinstance(params.get("Styles array"), list):
        fields["styles"] = list(params["Styles array"])  # type: ignore[arg-type]
    if "Face restoration" in params:
        fields["restore_faces"] = True
    if mode == "txt2img":
        fields["enable_hr"] = "Denoising strength" in params and any(
            key in params for key in ("Hires upscale", "Hires upscaler", "Hires resize-1"))
        fields["hr_sampler_name"], fields["hr_scheduler"] = resolve_hr_sampler_and_scheduler(params)
    else:
        for key, field, choices, kind in _IMG2IMG_CHOICES:
            if params.get(key) in choices:
                fields[field] = kind(choices.index(params[key]))  # type: ignore[arg-type]
    overrides = _override_settings(params, current_settings, disable_weights_auto_swap)
    if params.get("RNG", "GPU") == "GPU" and gpu_noise_source != "GPU":
        overrides["randn_source"] = gpu_noise_source
    return fields, overrides


def _override_settings(params: Mapping[str, object], current: Mapping[str, object] | None,
                       disable_weights_auto_swap: bool) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for key, (setting, kind) in SETTING_FOR_INFOTEXT_KEY.items():
        if setting == "sd_model_checkpoint" and disable_weights_auto_swap:
            continue
        value = _cast(params.get(key), kind)
        if value is None or (current is not None and current.get(setting) == value):
            continue
        overrides[setting] = value
    modules = module_names(params)
    if modules and (current is None or current.get("forge_additional_modules") != modules):
        overrides["forge_additional_modules"] = modules
    return overrides


def module_names(params: Mapping[str, object]) -> list[str]:
    """Forge's ``Module 1: ae, Module 2: clip_l, ...`` keys, in order (the module files' names)."""
    found = []
    number = 1
    while isinstance(params.get(f"Module {number}"), str):
        found.append(str(params[f"Module {number}"]))
        number += 1
    return found


def _cast(value: object, kind: type) -> object:
    """A1111's ``cast_value``: ``type(default)(value)``, where the string "False" is False for a bool."""
    if value is None:
        return None
    if kind is bool:
        return False if value == "False" else bool(value)
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _int_or(value: object, default: int | None) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return default


def _as_text(value: object) -> str | None:
    return value if isinstance(value, str) else None
