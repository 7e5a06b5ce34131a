"""Infotext: A1111's layout, quoting, parse_generation_parameters semantics and the field mapping."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdweb.infotext import (
    CANONICAL_KEY_ORDER,
    format_infotext,
    infotext_to_request_fields,
    novelai_infotext,
    order_params,
    parse_infotext,
    parse_infotext_parts,
    parse_version,
    quote,
    resolve_hr_sampler_and_scheduler,
    resolve_sampler_and_scheduler,
)

# Realistic infotexts as A1111 v1.x writes them.
SD15_LORA = (
    "masterpiece, best quality, 1girl, (smile:1.1), <lora:add_detail:0.5>\n"
    "Negative prompt: (worst quality, low quality:1.4), easynegative\n"
    "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3713375069, Size: 512x768, "
    "Model hash: 7f96a1a9ca, Model: anything-v5, VAE hash: 235745af8d, "
    "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Clip skip: 2, "
    'Lora hashes: "add_detail: 7c6bad76eb54, epiNoise: a1b2c3d4e5f6", TI hashes: "easynegative: c74b4e810b03", '
    "Version: v1.10.1"
)
HIRES = (
    "a photo of a castle on a hill, golden hour\n"
    "Negative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1234, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.7, "
    'Hires prompt: "a castle, highly detailed", Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, '
    "Version: v1.10.1"
)
LEGACY = (
    "a dog\n"
    "Negative prompt: cat\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 512x512, Model hash: 7460a6fa, "
    "Model: sd-v1-4, Version: v1.5.1"
)
NO_NEGATIVE_MULTILINE = (
    "a cat\nsitting on a mat,\n\nBREAK watercolor\n"
    "Steps: 20, Sampler: DPM++ SDE, Schedule type: Karras, CFG scale: 6.5, Seed: 7, Size: 768x512, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, RNG: CPU, Version: v1.10.1-5-gabc1234"
)
INPAINT = (
    "a red hat\n"
    "Negative prompt: lowres\nbad anatomy\n"
    "Steps: 30, Sampler: DDIM, Schedule type: Automatic, CFG scale: 7, Seed: 99, Size: 512x512, "
    "Model hash: c6bbc15e32, Model: sd-v1-5-inpainting, Denoising strength: 0.75, Mask blur: 4, "
    "Inpaint area: Only masked, Masked area padding: 32, Masked content: latent noise, Mask mode: Inpaint not masked, "
    "Version: v1.10.1"
)
REALISTIC = [SD15_LORA, HIRES, LEGACY, NO_NEGATIVE_MULTILINE, INPAINT]


# ---------------------------------------------------------------------------------------------
# format
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "written"), [
    ("Euler a", "Euler a"),
    (7, "7"),
    (7.0, "7.0"),
    (0.35, "0.35"),
    (True, "True"),
    ("a, b", '"a, b"'),
    ("key: value", '"key: value"'),
    ("two\nlines", '"two\\nlines"'),
    ('a "quoted", b', '"a \\"quoted\\", b"'),
    ('say "hi"', 'say "hi"'),  # A1111 quotes only for , : and newline
    ("ünïcode, ✓", '"ünïcode, ✓"'),  # ensure_ascii=False
    ("back\\slash: x", '"back\\\\slash: x"'),
])
def test_quote_rules(value, written):
    assert quote(value) == written


@pytest.mark.parametrize(("prompt", "negative", "params", "expected"), [
    ("a cat", "blurry", {"Steps": 20, "Sampler": "Euler a", "CFG scale": 7.0},
     "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7.0"),
    ("a cat", "", {"Steps": 20, "Seed": 1, "Size": "512x512"}, "a cat\nSteps: 20, Seed: 1, Size: 512x512"),
    ("", "", {"Steps": 20, "Seed": 1, "Size": "512x512"}, "Steps: 20, Seed: 1, Size: 512x512"),
    ("", "bad", {"Steps": 1, "Seed": 1, "Size": "8x8"}, "Negative prompt: bad\nSteps: 1, Seed: 1, Size: 8x8"),
    ("line one\nline two", "n1\nn2", {"Steps": 5, "Model": None, "Seed": 3},
     "line one\nline two\nNegative prompt: n1\nn2\nSteps: 5, Seed: 3"),
    ("  padded  ", "", {"Steps": 5, "Flag": "Flag", "Seed": 3}, "padded  \nSteps: 5, Flag, Seed: 3"),
    ("p", "", {"Steps": 5, "Lora hashes": "a: 1, b: 2"}, 'p\nSteps: 5, Lora hashes: "a: 1, b: 2"'),
])
def test_format_table(prompt, negative, params, expected):
    assert format_infotext(prompt, negative, params) == expected


def test_format_keeps_caller_order_and_order_params_gives_a1111_order():
    params = {"Version": "v1.10.1", "Hires upscale": 2, "Seed": 1, "Steps": 20, "Denoising strength": 0.7,
              "Sampler": "Euler", "User": "bob", "Size": "512x512"}
    assert format_infotext("p", "", params).splitlines()[1].startswith("Version: v1.10.1, Hires upscale: 2")
    ordered = order_params(params)
    assert list(ordered) == ["Steps", "Sampler", "Seed", "Size", "Denoising strength", "Hires upscale",
                             "Version", "User"]
    assert CANONICAL_KEY_ORDER[:4] == ("Steps", "Sampler", "Schedule type", "CFG scale")


@pytest.mark.parametrize("text", REALISTIC)
def test_realistic_round_trip_format_parse_format(text):
    prompt, negative, pairs = parse_infotext_parts(text)
    assert format_infotext(prompt, negative, pairs) == text


# ---------------------------------------------------------------------------------------------
# parse
# ---------------------------------------------------------------------------------------------

def test_parse_sd15_lora_text():
    res = parse_infotext(SD15_LORA)
    assert res["Prompt"] == "masterpiece, best quality, 1girl, (smile:1.1), <lora:add_detail:0.5>"
    assert res["Negative prompt"] == "(worst quality, low quality:1.4), easynegative"
    assert res["Steps"] == "25" and res["Seed"] == "3713375069" and res["CFG scale"] == "7"
    assert (res["Size-1"], res["Size-2"]) == ("512", "768") and "Size" not in res
    assert res["Lora hashes"] == "add_detail: 7c6bad76eb54, epiNoise: a1b2c3d4e5f6"
    assert res["TI hashes"] == "easynegative: c74b4e810b03"
    assert res["Clip skip"] == "2" and res["Emphasis"] == "Original"
    assert res["VAE"] == "vae-ft-mse-840000-ema-pruned.safetensors"
    assert "Downcast alphas_cumprod" not in res


def test_parse_key_order_is_pairs_then_prompt_then_defaults():
    keys = list(parse_infotext(HIRES))
    assert keys[:3] == ["Steps", "Sampler", "Schedule type"]
    assert keys.index("Version") < keys.index("Prompt") < keys.index("Negative prompt") < keys.index("Clip skip")


def test_parse_defaults_for_missing_keys():
    res = parse_infotext("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512")
    assert res["Clip skip"] == "1"
    assert res["Hires resize-1"] == 0 and res["Hires resize-2"] == 0
    assert res["Hires sampler"] == "Use same sampler"
    assert res["Hires schedule type"] == "Use same scheduler"
    assert res["Hires checkpoint"] == "Use same checkpoint"
    assert res["Hires prompt"] == "" and res["Hires negative prompt"] == ""
    assert res["Mask mode"] == "Inpaint masked" and res["Masked content"] == "original"
    assert res["Inpaint area"] == "Whole picture" and res["Masked area padding"] == 32
    assert res["RNG"] == "GPU" and res["Schedule type"] == "Automatic"
    assert res["Schedule max sigma"] == 0 and res["Schedule min sigma"] == 0 and res["Schedule rho"] == 0
    assert res["VAE Encoder"] == "Full" and res["VAE Decoder"] == "Full" and res["FP8 weight"] == "Disable"
    assert res["Refiner switch by sampling steps"] is False
    assert "Emphasis" not in res and "Cache FP16 weight for LoRA" not in res
    assert "Version" not in res and "Downcast alphas_cumprod" not in res


def test_parse_hires_text():
    res = parse_infotext(HIRES)
    assert res["Hires prompt"] == "a castle, highly detailed"
    assert res["Hires upscale"] == "2" and res["Hires steps"] == "10" and res["Hires upscaler"] == "Latent"
    assert res["Denoising strength"] == "0.7"


def test_parse_legacy_sampler_and_backcompat():
    res = parse_infotext(LEGACY)
    assert res["Sampler"] == "DPM++ 2M Karras"  # /png-info shows it as written
    assert res["Schedule type"] == "Automatic"
    assert res["Model hash"] == "7460a6fa"
    assert res["Downcast alphas_cumprod"] is True  # Version < v1.7.0-225
    assert "Old prompt editing timelines" not in res  # no "[" in the prompt
    fields, _ = infotext_to_request_fields(res)
    assert (fields["sampler_name"], fields["scheduler"]) == ("DPM++ 2M", "Automatic")
    assert fields["cfg_scale"] == 7.5


@pytest.mark.parametrize(("version", "prompt", "sampler", "expected"), [
    ("v1.5.1", "a [cat:dog:5]", "DDIM", {"Old prompt editing timelines", "Pad conds v0", "Downcast alphas_cumprod"}),
    ("v1.6.0", "a [cat:dog:5]", "DDIM", {"Downcast alphas_cumprod"}),
    ("v1.7.0-225-g1234abc", "a", "Euler", set()),
    ("v1.7.0-224-g1234abc", "a", "Euler", {"Downcast alphas_cumprod"}),
    ("v1.7.0", "a", "Euler", {"Downcast alphas_cumprod"}),
    ("v1.10.1", "a [b]", "DDIM", set()),
    ("f2.0.1v1.10.1-previous-313-g8a042934", "a [b]", "DDIM", set()),  # not a version: no backcompat
])
def test_version_backcompat(version, prompt, sampler, expected):
    text = f"{prompt}\nSteps: 20, Sampler: {sampler}, CFG scale: 7, Seed: 1, Version: {version}"
    res = parse_infotext(text)
    added = {key for key in ("Old prompt editing timelines", "Pad conds v0", "Downcast alphas_cumprod") if key in res}
    assert added == expected


def test_refiner_switch_by_steps_before_1_8():
    text = "a\nSteps: 20, Sampler: Euler, Seed: 1, Refiner: sdxl_refiner [7440042bbd], Version: v1.7.0"
    assert parse_infotext(text)["Refiner switch by sampling steps"] is True
    assert parse_infotext(text.replace("v1.7.0", "v1.8.0"))["Refiner switch by sampling steps"] is False


def test_parse_multiline_prompt_without_negative():
    res = parse_infotext(NO_NEGATIVE_MULTILINE)
    assert res["Prompt"] == "a cat\nsitting on a mat,\n\nBREAK watercolor"
    assert res["Negative prompt"] == ""
    assert res["RNG"] == "CPU"
    assert "Emphasis" not in res  # BREAK is no emphasis


def test_parse_negative_spans_lines_and_inpaint_keys():
    res = parse_infotext(INPAINT)
    assert res["Negative prompt"] == "lowres\nbad anatomy"
    fields, _ = infotext_to_request_fields(res, mode="img2img")
    assert fields["mask_blur_x"] == fields["mask_blur_y"] == 4
    assert fields["inpaint_full_res"] is True
    assert fields["inpainting_fill"] == 2
    assert fields["inpainting_mask_invert"] == 1
    assert fields["inpaint_full_res_padding"] == 32
    assert fields["denoising_strength"] == 0.75
    assert "enable_hr" not in fields and "hr_scale" not in fields


@pytest.mark.parametrize(("text", "prompt", "has_params"), [
    ("just a prompt", "just a prompt", False),
    ("a prompt\nSteps: 20", "a prompt\nSteps: 20", False),  # one pair: not a parameter line
    ("a prompt\nSteps: 20, Seed: 1", "a prompt\nSteps: 20, Seed: 1", False),
    ("a prompt\nSteps: 20, Seed: 1, Size: 8x8", "a prompt", True),
    ("Steps: 20, Seed: 1, Size: 8x8", "", True),
    ("", "", False),
    ("   \n  \n", "", False),
    ("a\r\nNegative prompt: b\r\nSteps: 1, Seed: 2, Size: 8x8\r\n", "a", True),
    ("Negative prompt:\nSteps: 1, Seed: 2, Size: 8x8", "", True),
])
def test_last_line_detection(text, prompt, has_params):
    res = parse_infotext(text)
    assert res["Prompt"] == prompt
    assert ("Seed" in res) == has_params


def test_values_and_keys_edge_cases():
    text = ('p\nSteps: 20, Empty: , Quoted: "a, \\"b\\", c", Bad quote: "unterminated, '
            'Path/Key-x: 1, Sampler: Euler, Seed resize from: 640x480, Lone: ""')
    res = parse_infotext(text)
    assert "Empty" not in res  # A1111 drops a pair with an empty value
    assert res["Quoted"] == 'a, "b", c'
    assert res["Bad quote"] == '"unterminated'
    assert res["Path/Key-x"] == "1"
    assert (res["Seed resize from-1"], res["Seed resize from-2"]) == ("640", "480")
    assert res["Lone"] == ""


def test_old_hires_first_pass_size():
    auto = parse_infotext("p\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 1024x768, Denoising strength: 0.7, "
                          "First pass size: 0x0")
    assert (auto["Size-1"], auto["Size-2"]) == (640, 448)
    assert (auto["Hires resize-1"], auto["Hires resize-2"]) == (1024, 768)
    given_size = parse_infotext("p\nSteps: 20, Seed: 1, Size: 1024x1024, First pass size: 640x384")
    assert (given_size["Size-1"], given_size["Size-2"]) == (640, 384)
    assert (given_size["Hires resize-1"], given_size["Hires resize-2"]) == (1024, 1024)
    zero = parse_infotext("p\nSteps: 20, Seed: 1, Size: 0x0, First pass size: 0x0")  # A1111 divides by zero
    assert zero["Size-1"] == "0"
    huge = parse_infotext("p\nSteps: 20, Seed: 1, Size: 1x" + "9" * 400 + ", First pass size: 0x0")
    assert huge["Size-1"] == "1"
    negative_size = parse_infotext("p\nSteps: 20, Seed: 1, Size: 8x8, First pass size: -1x5")
    assert negative_size["First pass size"] == "-1x5" and negative_size["Size-1"] == "8"


def test_use_old_hires_fix_width_height():
    text = "p\nSteps: 20, Seed: 1, Size: 512x512, Hires resize: 1024x768"
    res = parse_infotext(text, use_old_hires_fix_width_height=True)
    assert (res["Size-1"], res["Size-2"]) == (1024, 768)


def test_hypernet_and_emphasis_and_skip_fields():
    res = parse_infotext("a (cat)\nSteps: 20, Seed: 1, Hypernet: anime, Hypernet strength: 0.5", skip_fields=["Seed"])
    assert res["Prompt"] == "a (cat)<hypernet:anime:0.5>"
    assert res["Emphasis"] == "Original"
    assert "Seed" not in res
    no_strength = parse_infotext("a\nSteps: 20, Seed: 1, Hypernet: anime")
    assert no_strength["Prompt"] == "a<hypernet:anime:1.0>"
    kept = parse_infotext("a (cat)\nSteps: 20, Seed: 1, Emphasis: No norm")
    assert kept["Emphasis"] == "No norm"


def test_fp8_adds_cache_default():
    res = parse_infotext("a\nSteps: 20, Seed: 1, FP8 weight: Enable for SDXL")
    assert res["Cache FP16 weight for LoRA"] is False


def _styles(prompt, negative):
    found = []
    if prompt.endswith(", cinematic"):
        found.append("Cinematic")
        prompt = prompt[: -len(", cinematic")]
    return found, prompt, negative


def test_styles_extraction_hook():
    res = parse_infotext("a cat, cinematic\nSteps: 20, Seed: 1, Size: 8x8", extract_styles=_styles)
    assert res["Prompt"] == "a cat" and res["Styles array"] == ["Cinematic"]
    none_found = parse_infotext("a cat\nSteps: 20, Seed: 1, Size: 8x8", extract_styles=_styles)
    assert "Styles array" not in none_found
    ignored = parse_infotext("a cat, cinematic\nSteps: 20, Seed: 1, Size: 8x8", extract_styles=_styles,
                             infotext_styles="Ignore")
    assert ignored["Prompt"] == "a cat, cinematic"
    hires_differs = parse_infotext('a cat, cinematic\nSteps: 20, Seed: 1, Hires prompt: "a dog"',
                                   extract_styles=_styles)
    assert hires_differs["Prompt"] == "a cat, cinematic" and "Styles array" not in hires_differs
    hires_same = parse_infotext('a cat, cinematic\nSteps: 20, Seed: 1, Hires prompt: "a cow, cinematic"',
                                extract_styles=_styles)
    assert hires_same["Prompt"] == "a cat" and hires_same["Hires prompt"] == "a cow"


@pytest.mark.parametrize(("text", "expected"), [
    ("v1.10.1", (0, (1, 10, 1), (float("inf"), 0), -1, float("inf"))),
    ("1.6", parse_version("1.6.0")),
    ("nonsense", None),
    (None, None),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_version_ordering():
    ordered = ["1.6.0-RC", "1.6.0", "v1.7.0", "v1.7.0-224", "v1.7.0-225", "1.8.0.dev1", "1.8.0", "v1.10.1"]
    keys = [parse_version(text) for text in ordered]
    assert keys == sorted(keys)


# ---------------------------------------------------------------------------------------------
# samplers and fields
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("sampler", "scheduler", "expected"), [
    ("DPM++ 2M Karras", None, ("DPM++ 2M", "Automatic")),  # Karras is DPM++ 2M's default
    ("DPM++ 2M", "Karras", ("DPM++ 2M", "Automatic")),
    ("Euler a Exponential", "Automatic", ("Euler a", "Exponential")),
    ("DPM++ 2M SDE SGMUniform", None, ("DPM++ 2M SDE", "SGM Uniform")),
    ("LMS Karras", None, ("LMS", "Karras")),
    ("DPM2 a Karras", None, ("DPM2 a", "Automatic")),
    ("DPM++ 2M SDE Heun", "Exponential", ("DPM++ 2M SDE Heun", "Automatic")),
    ("Euler", "karras", ("Euler", "Karras")),
    ("Euler", "Nonsense", ("Euler", "Automatic")),
    ("No Such Sampler", "Karras", ("DPM++ 2M", "Automatic")),  # A1111's silent autocorrection
    (None, None, ("DPM++ 2M", "Automatic")),
])
def test_resolve_sampler_and_scheduler(sampler, scheduler, expected):
    assert resolve_sampler_and_scheduler(sampler, scheduler) == expected


def test_resolve_without_convert_automatic():
    assert resolve_sampler_and_scheduler("DPM++ 2M Karras", None, convert_automatic=False) == ("DPM++ 2M", "Karras")


def test_hr_sampler_resolution():
    same = {"Sampler": "Euler a", "Schedule type": "Automatic", "Hires sampler": "Use same sampler"}
    assert resolve_hr_sampler_and_scheduler(same) == ("Use same sampler", "Use same scheduler")
    other = {"Sampler": "Euler a", "Schedule type": "Automatic", "Hires sampler": "DPM++ 2M",
             "Hires schedule type": "Exponential"}
    assert resolve_hr_sampler_and_scheduler(other) == ("DPM++ 2M", "Exponential")


def test_txt2img_fields_from_hires_text():
    fields, overrides = infotext_to_request_fields(parse_infotext(HIRES))
    assert fields["prompt"] == "a photo of a castle on a hill, golden hour"
    assert fields["negative_prompt"] == "blurry"
    assert fields["steps"] == 20 and fields["seed"] == 1234 and fields["cfg_scale"] == 7.0
    assert (fields["width"], fields["height"]) == (512, 512)
    assert (fields["sampler_name"], fields["scheduler"]) == ("Euler a", "Automatic")
    assert fields["enable_hr"] is True
    assert fields["hr_scale"] == 2.0 and fields["hr_upscaler"] == "Latent" and fields["hr_second_pass_steps"] == 10
    assert (fields["hr_resize_x"], fields["hr_resize_y"]) == (0, 0)
    assert fields["hr_prompt"] == "a castle, highly detailed" and fields["hr_negative_prompt"] == ""
    assert fields["hr_sampler_name"] == "Use same sampler" and fields["hr_scheduler"] == "Use same scheduler"
    assert fields["hr_checkpoint_name"] == "Use same checkpoint"
    assert fields["denoising_strength"] == 0.7
    assert "sd_model_checkpoint" not in overrides  # disable_weights_auto_swap


def test_enable_hr_false_without_denoising():
    fields, _ = infotext_to_request_fields(parse_infotext(SD15_LORA))
    assert fields["enable_hr"] is False


def test_seed_fields_and_swapped_seed_resize_quirk():
    text = ("p\nSteps: 20, Sampler: Euler, Seed: 5, Variation seed: 77, Variation seed strength: 0.3, "
            "Seed resize from: 640x480, Batch size: 4, Face restoration: CodeFormer")
    fields, _ = infotext_to_request_fields(parse_infotext(text))
    assert fields["subseed"] == 77 and fields["subseed_strength"] == 0.3
    assert fields["seed_resize_from_h"] == 640 and fields["seed_resize_from_w"] == 480
    assert fields["batch_size"] == 4 and fields["restore_faces"] is True


def test_override_settings_mapping_and_casts():
    text = ("p\nSteps: 20, Sampler: Euler a, Seed: 1, Model hash: 6ce0161689, VAE: vae.safetensors, Clip skip: 2, "
            "ENSD: 31337, RNG: NV, Eta: 0.67, Schedule max sigma: 14.6, Tiling: True, Pad conds: False, "
            "Emphasis: No norm, Noise multiplier: 1.05, Conditional mask weight: 0.5, Token merging ratio: 0.3")
    params = parse_infotext(text)
    _, overrides = infotext_to_request_fields(params)
    assert overrides["CLIP_stop_at_last_layers"] == 2
    assert overrides["sd_vae"] == "vae.safetensors"
    assert overrides["eta_noise_seed_delta"] == 31337
    assert overrides["randn_source"] == "NV"
    assert overrides["eta_ancestral"] == 0.67 and overrides["sigma_max"] == 14.6
    assert overrides["tiling"] is True and overrides["pad_cond_uncond"] is False
    assert overrides["emphasis"] == "No norm"
    assert overrides["initial_noise_multiplier"] == 1.05 and overrides["inpainting_mask_weight"] == 0.5
    assert overrides["token_merging_ratio"] == 0.3
    assert "sd_model_checkpoint" not in overrides
    _, swapped = infotext_to_request_fields(params, disable_weights_auto_swap=False)
    assert swapped["sd_model_checkpoint"] == "6ce0161689"
    current = {"CLIP_stop_at_last_layers": 2, "randn_source": "GPU", "sigma_min": 0.0, "sd_vae_encode_method": "Full"}
    _, relative = infotext_to_request_fields(params, current_settings=current)
    assert "CLIP_stop_at_last_layers" not in relative and "sigma_min" not in relative
    assert relative["randn_source"] == "NV"


def test_uncastable_values_are_left_out():
    text = "p\nSteps: many, Sampler: Euler, Seed: 1.5, CFG scale: high, Clip skip: two, ENSD: 1e3"
    fields, overrides = infotext_to_request_fields(parse_infotext(text))
    assert "steps" not in fields and "seed" not in fields and "cfg_scale" not in fields
    assert "CLIP_stop_at_last_layers" not in overrides and "eta_noise_seed_delta" not in overrides


def test_styles_array_becomes_styles_field():
    params = parse_infotext("a cat, cinematic\nSteps: 20, Seed: 1, Size: 8x8", extract_styles=_styles)
    fields, _ = infotext_to_request_fields(params)
    assert fields["styles"] == ["Cinematic"] and fields["prompt"] == "a cat"


# ---------------------------------------------------------------------------------------------
# NovelAI
# ---------------------------------------------------------------------------------------------

def test_novelai_conversion():
    items = {"Software": "NovelAI", "Description": "1girl, solo",
             "Comment": json.dumps({"uc": "lowres, bad anatomy", "steps": 28, "sampler": "k_euler_ancestral",
                                    "scale": 11.0, "seed": 123})}
    text = novelai_infotext(items, 512, 768)
    assert text == ("1girl, solo\nNegative prompt: lowres, bad anatomy\nSteps: 28, Sampler: Euler a, CFG scale: 11.0, "
                    "Seed: 123, Size: 512x768, Clip skip: 2, ENSD: 31337")
    res = parse_infotext(text)
    assert res["Sampler"] == "Euler a" and res["Clip skip"] == "2" and res["ENSD"] == "31337"
    dpm = dict(items, Comment=json.dumps({"uc": "", "steps": 1, "sampler": "k_dpmpp_2m", "scale": 5, "seed": 1}))
    assert "Sampler: DPM++ 2M," in novelai_infotext(dpm, 8, 8)
    unknown = dict(items, Comment=json.dumps({"uc": "", "steps": 1, "sampler": "nai_smea", "scale": 5, "seed": 1}))
    assert "Sampler: Euler a," in novelai_infotext(unknown, 8, 8)


@pytest.mark.parametrize("items", [
    {},
    {"Software": "Other"},
    {"Software": "NovelAI"},
    {"Software": "NovelAI", "Description": "x", "Comment": "not json"},
    {"Software": "NovelAI", "Description": "x", "Comment": "[1, 2]"},
    {"Software": "NovelAI", "Description": "x", "Comment": '{"uc": "a"}'},
    {"Software": "NovelAI", "Description": "x", "Comment": b"{}"},
    {"Software": "NovelAI", "Description": "x",
     "Comment": '{"uc": "", "steps": 1, "sampler": [], "scale": 5, "seed": 1}'},
])
def test_novelai_malformed_gives_none(items):
    assert novelai_infotext(items, 8, 8) is None


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------

_KEY = st.from_regex(r"[A-Za-z][A-Za-z0-9 ]{0,14}[A-Za-z0-9]", fullmatch=True)
_VALUE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1).map(
    str.strip).filter(lambda v: v and not (v.startswith('"') and v.endswith('"')))
_LINE = st.text(st.characters(blacklist_categories=("Cs", "Zl", "Zp", "Cc")), min_size=1).map(str.strip).filter(
    lambda v: v and not v.startswith("Negative prompt:"))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_never_raises(text):
    res = parse_infotext(text)
    assert isinstance(res["Prompt"], str) and isinstance(res["Negative prompt"], str)
    infotext_to_request_fields(res)
    infotext_to_request_fields(res, mode="img2img")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["Steps: ", "Size: ", '"', ",", ":", "\n", "Negative prompt:", "x", "1", "0x0",
                                 "First pass size: ", "Hypernet: ", "Version: ", "v1.5", "[", "(", "\\", " ", "9" * 400]),
                max_size=40).map("".join))
def test_parse_never_raises_on_infotext_like_noise(text):
    parse_infotext(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(_LINE, max_size=3).map("\n".join), st.lists(_LINE, max_size=3).map("\n".join),
       st.dictionaries(_KEY, _VALUE, min_size=3, max_size=8))
def test_round_trip_property(prompt, negative, params):
    text = format_infotext(prompt, negative, params)
    parsed_prompt, parsed_negative, pairs = parse_infotext_parts(text)
    assert format_infotext(parsed_prompt, parsed_negative, pairs) == text
    assert pairs == params


def test_missing_rng_key_means_nvidia_noise_where_there_is_no_cuda():
    """A1111's default GPU noise writes no RNG key; without CUDA, NV reproduces the NVIDIA card's numbers."""
    text = "a cat\nSteps: 4, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x64"
    _, on_cuda = infotext_to_request_fields(parse_infotext(text))
    assert on_cuda["randn_source"] == "GPU"
    _, elsewhere = infotext_to_request_fields(parse_infotext(text), gpu_noise_source="NV")
    assert elsewhere["randn_source"] == "NV"
    _, cpu = infotext_to_request_fields(parse_infotext(text + ", RNG: CPU"), gpu_noise_source="NV")
    assert cpu["randn_source"] == "CPU"
