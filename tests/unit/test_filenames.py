"""Output file names: every pattern tag, sanitizing, the counter, sample/grid/extras paths."""

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sdweb.outputs.filenames import (
    FilenameContext,
    apply_pattern,
    build_extras_path,
    build_grid_path,
    build_image_path,
    effective_extension,
    next_counter,
    sanitize_filename_part,
)

PROMPT = "a cat, <lora:x:1> on a mat"
JOB = datetime(2024, 5, 6, 7, 8, 9)
CTX = FilenameContext(
    seed=1234, all_seeds=(1234, 1235, 1236, 1237), steps=20, cfg_scale=7.0, width=512, height=768,
    sampler="DPM++ 2M", scheduler="Automatic", model_hash="6ce0161689", model_name="v1-5-pruned-emaonly",
    prompt=PROMPT, main_prompt="a cat", negative_prompt="blurry", styles=("Cinematic", "None"),
    job_timestamp=JOB, batch_number=2, batch_size=4, generation_number=6, n_iter=2, clip_skip=2,
    denoising=0.7, user="alice", vae_filename="/models/VAE/vae-ft-mse.safetensors",
)
SINGLE = replace(CTX, batch_size=1, n_iter=1, batch_number=1, generation_number=1, all_seeds=(1234,))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("pattern", "expected"), [
    ("[seed]", "1234"),
    ("[SEED]", "1234"),
    ("[Seed_First]", "1234"),
    ("[seed_last]", "1237"),
    ("[steps]", "20"),
    ("[cfg]", "7.0"),
    ("[width]x[height]", "512x768"),
    ("[styles]", "Cinematic"),
    ("[sampler]", "DPM++ 2M"),
    ("[sampler_scheduler]", "DPM++ 2M Karras"),
    ("[scheduler]", "Karras"),
    ("[model_hash]", "6ce0161689"),
    ("[model_name]", "v1-5-pruned-emaonly"),
    ("[date]", "2024-05-06"),
    ("[datetime]", "20240506070809"),
    ("[datetime<%Y>]", "2024"),
    ("[datetime<>]", "20240506070809"),
    ("[datetime<%H:%M>]", "07_08"),
    ("[job_timestamp]", "20240506070809"),
    ("[prompt_hash]", _sha(PROMPT)[:8]),
    ("[prompt_hash<4>]", _sha(PROMPT)[:4]),
    ("[negative_prompt_hash]", _sha("blurry")[:8]),
    ("[full_prompt_hash<12>]", _sha("a cat blurry")[:12]),
    ("[prompt]", "a_cat,__lora_x_1__on_a_mat"),
    ("[prompt_spaces]", "a cat, _lora_x_1_ on a mat"),
    ("[prompt_words]", "a cat lora x 1 on a mat"),
    ("[batch_number]", "2"),
    ("[batch_size]", "4"),
    ("[generation_number]", "6"),
    ("[hasprompt<cat|nocat><dog|nodog><bird>]", "catnodog"),
    ("[hasprompt<CAT>]", "cat"),
    ("[clip_skip]", "2"),
    ("[denoising]", "0.7"),
    ("[user]", "alice"),
    ("[vae_filename]", "vae-ft-mse"),
    ("[none]", ""),
    ("[basename]", "img"),
    ("x[none]y", "xy"),
    ("[seed]-[steps]-[cfg]", "1234-20-7.0"),
    ("plain text", "plain text"),
    ("", ""),
    ("[unknown_tag]", "[unknown_tag]"),
    ("[unknown<arg>]", "[unknown]"),  # A1111 drops the args of a tag it keeps
    ("[prompt_hash<abc>]", "[prompt_hash]"),  # bad arg: tag kept
    ("[[seed]]", "[1234]"),
    ("[seed", "[seed"),
    ("a\nb[seed]", "b1234"),  # A1111 loses text before a newline in the pattern
])
def test_tags(pattern, expected):
    assert apply_pattern(pattern, CTX) == expected


@pytest.mark.parametrize(("pattern", "expected"), [
    ("[seed]-[seed_last]", "1234"),
    ("[seed]-[batch_number]", "1234"),
    ("x-[generation_number]-y", "-y"),
    ("[seed_first]", "1234"),
    ("[seed]_[denoising]", "1234"),
])
def test_tags_that_vanish_with_preceding_text(pattern, expected):
    ctx = replace(SINGLE, denoising=None) if "denoising" in pattern else SINGLE
    assert apply_pattern(pattern, ctx) == expected


def test_generation_number_shown_when_n_iter_above_one():
    ctx = replace(SINGLE, n_iter=3, generation_number=3)
    assert apply_pattern("[generation_number]", ctx) == "3"
    assert apply_pattern("a-[batch_number]", ctx) == ""
    assert apply_pattern("a-[batch_number]", replace(CTX, zip=True)) == ""


@pytest.mark.parametrize(("field", "value", "pattern", "expected"), [
    ("steps", None, "[steps]", "[steps]"),
    ("model_hash", None, "[model_hash]", "[model_hash]"),
    ("user", None, "[user]", "[user]"),
    ("prompt", None, "[prompt]", "[prompt]"),
    ("prompt", None, "[hasprompt<a>]", "[hasprompt]"),
    ("prompt", None, "[prompt_words]", "empty"),
    ("prompt", "", "[prompt_words]", "empty"),
    ("seed", None, "[seed]", ""),
    ("vae_filename", None, "[vae_filename]", "NoneType"),
    ("vae_filename", ".hidden.vae.pt", "[vae_filename]", "hidden"),
    ("styles", (), "[styles]", "None"),
    ("styles", ("A", "B: c"), "[styles]", "A, B_ c"),
    ("scheduler", "SGM Uniform", "[scheduler]", "Sgm uniform"),  # A1111's capitalize()
    ("scheduler", "Karras", "[sampler_scheduler]", "DPM++ 2M Karras"),
    ("sampler", "Euler a", "[scheduler]", "Automatic"),
    ("sampler", "Unknown", "[scheduler]", "[scheduler]"),
    ("basename", "grid", "[basename]", "grid"),
    ("image", None, "[image_hash]", "[image_hash]"),
    ("width", None, "[width]", "[width]"),
])
def test_missing_or_special_values(field, value, pattern, expected):
    assert apply_pattern(pattern, replace(CTX, **{field: value})) == expected


def test_image_hash():
    image = Image.new("RGB", (4, 4), (1, 2, 3))
    digest = hashlib.sha256(image.tobytes()).hexdigest()
    ctx = replace(CTX, image=image)
    assert apply_pattern("[image_hash]", ctx) == digest
    assert apply_pattern("[image_hash<10>]", ctx) == digest[:10]


def test_prompt_no_styles():
    ctx = replace(CTX, prompt="masterpiece, a cat, cinematic lighting, film grain",
                  style_prompts=("cinematic lighting, film grain", "masterpiece, {prompt}"))
    assert apply_pattern("[prompt_no_styles]", ctx) == "a cat"


def test_prompt_words_limit_and_datetime_zone():
    ctx = replace(CTX, prompt="one two, three! four five six seven eight nine ten")
    assert apply_pattern("[prompt_words]", ctx, max_prompt_words=3) == "one two three"
    aware = replace(CTX, now=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC))
    assert apply_pattern("[datetime<%H><UTC>]", aware) == "07"
    assert apply_pattern("[datetime<%H><No/Such_Zone>]", aware) == aware.now.astimezone(None).strftime("%H")


@pytest.mark.parametrize(("text", "replace_spaces", "unix", "expected"), [
    ("a b", True, False, "a_b"),
    ("a b", False, False, "a b"),
    ('#<>:"/\\|?*\n\r\t', False, False, "_" * 13),
    ('a<b>:c"/d', False, True, 'a<b>:c"_d'),
    ("   lead and trail. . ", False, False, "lead and trail"),
    ("   lead", True, False, "___lead"),  # spaces become _ before stripping, as in A1111
    ("x" * 200, False, False, "x" * 128),
    ("", True, False, ""),
    (None, True, False, None),
])
def test_sanitize(text, replace_spaces, unix, expected):
    assert sanitize_filename_part(text, replace_spaces, unix_sanitization=unix) == expected


def test_max_length_and_unix_flag_in_apply_pattern():
    ctx = replace(CTX, prompt="word " * 60)
    assert len(apply_pattern("[prompt]", ctx)) == 128
    assert len(apply_pattern("[prompt]", ctx, max_length=20)) == 20
    colon = replace(CTX, prompt="a:b/c")
    assert apply_pattern("[prompt_spaces]", colon, unix_sanitization=True) == "a:b_c"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.text(max_size=40))
def test_apply_pattern_never_raises_and_prompt_tags_have_no_separators(pattern, prompt):
    ctx = replace(CTX, prompt=prompt)
    apply_pattern(pattern, ctx)
    for tag in ("[prompt]", "[prompt_spaces]", "[prompt_words]", "[prompt_no_styles]"):
        assert "/" not in apply_pattern(tag, ctx)


_TAG_NAMES = ["seed", "seed_last", "datetime", "prompt_hash", "image_hash", "hasprompt", "scheduler", "date",
              "prompt_words", "batch_number", "denoising", "Nope"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=5), st.sampled_from(_TAG_NAMES),
                          st.lists(st.text(st.characters(blacklist_characters="<>[]"), max_size=12), max_size=3)),
                max_size=5))
def test_tags_with_any_args_never_raise(parts):
    pattern = "".join(f"{text}[{tag}{''.join(f'<{arg}>' for arg in args)}]" for text, tag, args in parts)
    apply_pattern(pattern, replace(CTX, image=Image.new("RGB", (2, 2)), now=datetime(2024, 1, 1, tzinfo=UTC)))


def test_datetime_zone_that_is_a_folder_is_ignored():
    aware = replace(CTX, now=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC))
    assert apply_pattern("[datetime<%Y><America>]", aware) == "2024"


# ---------------------------------------------------------------------------------------------
# counter and paths
# ---------------------------------------------------------------------------------------------

def _touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def test_next_counter(tmp_path):
    assert next_counter(tmp_path / "missing") == 0
    assert next_counter(tmp_path) == 0
    _touch(tmp_path, "00003-123.png", "00010-5.png", "grid-0004.png", "abc.png", "00002.txt", "7.webp")
    assert next_counter(tmp_path) == 11
    assert next_counter(tmp_path, "grid") == 5
    assert next_counter(tmp_path, "other") == 0


def test_default_sample_path_uses_date_folder_and_seed(tmp_path):
    path = build_image_path(tmp_path, CTX, {})
    assert path == tmp_path / "2024-05-06" / "00000-1234.png"
    _touch(path.parent, "00000-1234.png", "00041-99.png")
    assert build_image_path(tmp_path, CTX, {}).name == "00042-1234.png"


def test_sample_path_without_dirs_uses_seed_and_prompt(tmp_path):
    path = build_image_path(tmp_path, CTX, {"save_to_dirs": False, "samples_format": "jpg"})
    assert path == tmp_path / "00000-1234-a cat, _lora_x_1_ on a mat.jpg"


def test_sample_path_custom_pattern_suffix_and_no_number(tmp_path):
    settings_ = {"samples_filename_pattern": "[model_name]-[steps]", "directories_filename_pattern": "[model_hash]",
                 "save_images_add_number": False}
    path = build_image_path(tmp_path, CTX, settings_, suffix="-before-highres-fix")
    assert path == tmp_path / "6ce0161689" / "v1-5-pruned-emaonly-20-before-highres-fix.png"
    _touch(path.parent, path.name)
    ours = lambda candidate: False  # noqa: E731 (the writer's "taken": this file is one sdweb wrote)
    assert build_image_path(tmp_path, CTX, settings_, suffix="-before-highres-fix", taken=ours) == path  # Replace
    # a file sdweb did not write (the default "taken": any existing file) is never replaced: it gets a number
    assert build_image_path(tmp_path, CTX, settings_, suffix="-before-highres-fix").name == (
        "v1-5-pruned-emaonly-20-before-highres-fix-1.png")
    numbered = dict(settings_, save_images_replace_action="Add number suffix")
    assert build_image_path(tmp_path, CTX, numbered, suffix="-before-highres-fix", taken=ours).name == (
        "v1-5-pruned-emaonly-20-before-highres-fix-1.png")


def test_empty_decoration_forces_number(tmp_path):
    settings_ = {"samples_filename_pattern": "[none]", "save_images_add_number": False}
    assert build_image_path(tmp_path, CTX, settings_).name == "00000.png"


def test_seed_none_gives_counter_only_and_empty_dir_pattern_means_prompt_words(tmp_path):
    ctx = replace(CTX, seed=None)
    assert build_image_path(tmp_path, ctx, {"directories_filename_pattern": ""}) == (
        tmp_path / "a cat lora x 1 on a mat" / "00000.png")


def test_directory_pattern_is_trimmed(tmp_path):
    path = build_image_path(tmp_path, CTX, {"directories_filename_pattern": " [date]/[steps] /"})
    assert path.parent == tmp_path / "2024-05-06" / "20"


def test_large_images_fall_back_to_png(tmp_path):
    assert effective_extension("JPG", 65536, 10) == "png"
    assert effective_extension("jpeg", 65535, 65535) == "jpeg"
    assert effective_extension("webp", 10, 16384) == "png"
    assert effective_extension("webp", 16383, 16383) == "webp"
    assert effective_extension("avif", 99999, 99999) == "avif"
    big = replace(CTX, width=20000)
    assert build_image_path(tmp_path, big, {"samples_format": "webp"}).suffix == ".png"


def test_grid_paths(tmp_path):
    path = build_grid_path(tmp_path, CTX, {})
    assert path == tmp_path / "2024-05-06" / "grid-0000.png"
    _touch(path.parent, "grid-0007.png", "00020-1.png")
    assert build_grid_path(tmp_path, CTX, {}).name == "grid-0008.png"
    extended = build_grid_path(tmp_path, CTX, {"grid_extended_filename": True, "grid_format": "jpg"})
    assert extended.name == "grid-0008-1234.jpg"
    flat = build_grid_path(tmp_path, CTX, {"grid_save_to_dirs": False})
    assert flat == tmp_path / "grid-0000.png"


def test_extras_path(tmp_path):
    assert build_extras_path(tmp_path, {}) == tmp_path / "00000.png"
    _touch(tmp_path, "00004.png")
    assert build_extras_path(tmp_path, {"samples_format": "webp"}) == tmp_path / "00005.webp"
    assert build_extras_path(tmp_path, {}, suffix="-x").name == "00005--x.png"
    assert build_extras_path(tmp_path, {}, forced_filename="photo") == tmp_path / "photo.png"


def test_long_names_fit_the_file_system(tmp_path):
    ctx = replace(CTX, prompt="word " * 100)
    path = build_image_path(tmp_path, ctx, {"samples_filename_pattern": "[prompt]-[prompt]-[prompt]"})
    assert len(path.name.encode()) <= 255 and path.suffix == ".png"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"ok")
