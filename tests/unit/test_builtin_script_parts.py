"""The built-in scripts' pure parts: X/Y/Z value ranges and axes, labelled grids, infotext keys, SD upscale
tiles, prompt-file lines, prompt matrix combinations, loopback curves, outpainting growth and noise fill."""

import math

import numpy as np
import pytest
from PIL import Image

from sdweb.builtin_scripts.common.axis_values import (
    AxisValueError,
    join_values,
    parse_axis_values,
    split_values,
)
from sdweb.builtin_scripts.common.matched_noise import matched_noise
from sdweb.builtin_scripts.common.prompt_lines import PromptLineError, parse_line, read_lines
from sdweb.builtin_scripts.common.tiles import combine_tiles, split_tiles, tile_layout
from sdweb.builtin_scripts.common.xyz_axes import AXES, a1111_labels, axis_labels, find_axis
from sdweb.builtin_scripts.common.xyz_plan import PlotAxis, XYZArgs, cell_order, estimate
from sdweb.builtin_scripts.loopback import loop_strength
from sdweb.builtin_scripts.outpainting_mk_2 import plan_growth
from sdweb.builtin_scripts.prompt_matrix import matrix_labels, matrix_prompts
from sdweb.core.errors import UserError
from sdweb.infotext import add_params
from sdweb.outputs.grid import GridAnnotation, draw_grid_annotations, make_grid


# -- X/Y/Z values --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "kind", "expected"), [
    ("1-5", "int", [1, 2, 3, 4, 5]),
    ("1-10 (+2)", "int", [1, 3, 5, 7, 9]),
    ("1-10 (+3)", "int", [1, 4, 7, 10]),
    ("10-1 (-3)", "int", [10, 7, 4]),
    ("1-10 [4]", "int", [1, 4, 7, 10]),
    ("1-2 [3]", "int", [1, 1, 2]),
    ("-5 - -3", "int", [-5, -4, -3]),
    ("1, 3-4, 10", "int", [1, 3, 4, 10]),
    ("-1, -1", "int", [-1, -1]),
    ("0.5-1 [5]", "float", [0.5, 0.625, 0.75, 0.875, 1.0]),
    ("1-2 (+0.5)", "float", [1.0, 1.5, 2.0]),
    ("1-3", "float", [1.0, 2.0, 3.0]),
    ("7, 7.5", "float", [7.0, 7.5]),
    ('Euler a, "DPM++ 2M, Karras"', "str", ["Euler a", "DPM++ 2M, Karras"]),
    ("a\nb", "str", ["a", "b"]),
    ("a, b", "permutations", [("a", "b"), ("b", "a")]),
])
def test_axis_values_and_a1111_ranges(text, kind, expected):
    assert parse_axis_values(split_values(text), kind) == pytest.approx(expected) if kind == "float" else expected


@pytest.mark.parametrize(("text", "kind", "words"), [
    ("1, abc", "int", "'abc' is not a whole number"),
    ("1.5", "int", "'1.5' is not a whole number"),
    ("5-1", "int", "gives no values"),
    ("1-5 (+0)", "int", "must not be 0"),
    ("1-10 (3)", "int", "is not a whole number"),  # a step needs its sign, as in A1111
    ("x", "float", "'x' is not a number"),
    ("0-1 (+0.0000001)", "float", "more than"),
    ("1-100000", "int", "at most"),
    ("a, b, c, d, e, f, g, h", "permutations", "at most 7"),
])
def test_malformed_axis_values_name_the_item(text, kind, words):
    with pytest.raises(AxisValueError, match=words.replace("(", r"\(").replace("+", r"\+")):
        parse_axis_values(split_values(text), kind)


def test_split_and_join_values_round_trip():
    values = ["Euler a", "DPM++ 2M, Karras", 'say "hi"']
    assert split_values(join_values(values)) == values
    assert split_values("") == [] and split_values(" , ,") == []


def test_axis_indexes_are_a1111s_per_tab():
    txt2img, img2img = a1111_labels(False), a1111_labels(True)
    assert txt2img[:8] == ["Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale",
                           "Prompt S/R"]
    assert img2img[5:8] == ["CFG Scale", "Image CFG Scale", "Prompt S/R"]
    assert len(txt2img) == 44 and len(img2img) == 43 and txt2img[41] == img2img[40] == "Size"  # A1111's 42 / 41
    assert txt2img[42:] == img2img[41:] == ["Distilled CFG Scale", "Shift"]  # Forge's, after A1111's
    assert find_axis(4, False, "X type").label == "Steps" and find_axis("4", True, "X type").label == "Steps"
    assert find_axis(txt2img.index("Hires upscaler"), False, "X type").label == "Hires upscaler"
    assert find_axis("cfg scale", True, "Y type").label == "CFG Scale"
    with pytest.raises(UserError, match="not an axis for img2img"):
        find_axis("Hires steps", True, "X type")
    with pytest.raises(UserError, match="not available in sdweb"):
        find_axis(txt2img.index("FP8 mode"), False, "X type")
    assert "Distilled CFG Scale" in axis_labels(False) and "Image CFG Scale" not in axis_labels(True)
    assert set(axis_labels(False)) <= set(AXES)


def test_legends_as_a1111_writes_them():
    assert AXES["Steps"].legend_text(20) == "Steps: 20"
    assert AXES["CFG Scale"].legend_text(7.123456789) == "CFG Scale: 7.12345679"
    assert AXES["Sampler"].legend_text("Euler a") == "Euler a"
    assert AXES["Checkpoint name"].legend_text("sub/model.safetensors [abc]") == "model.safetensors [abc]"
    assert AXES["Prompt order"].legend_text(("b", "a")) == "b, a"
    assert AXES["Nothing"].legend_text(None) == ""


def _plot_axes(*costs_and_counts):
    return [PlotAxis(name, AXES["Checkpoint name" if cost else "Steps"], list(range(count)), "")
            for name, (cost, count) in zip("XYZ", costs_and_counts, strict=True)]


def test_cells_run_with_the_costliest_axis_outermost():
    plain = cell_order(_plot_axes((0, 2), (0, 2), (0, 1)))
    assert plain == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)], "Z, then Y, then X innermost"
    checkpoints_on_x = cell_order(_plot_axes((1, 2), (0, 2), (0, 1)))
    assert checkpoints_on_x == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)], "one checkpoint load per X value"
    assert sorted(checkpoints_on_x) == sorted(plain)


def test_estimate_counts_images_before_starting():
    args = XYZArgs.from_list(["Steps", "1-3", [], "CFG Scale", "5, 7", [], "Nothing", "", []])
    assert "**6 images**" in estimate(args, False) and "3×2" in estimate(args, False)
    bad = XYZArgs.from_list(["Steps", "1, x", []])
    assert estimate(bad, False).startswith("⚠️") and "'x'" in estimate(bad, False)


def test_xyz_args_take_a1111_lists_and_strings():
    args = XYZArgs.from_list([4, "1-2", None, 6, "3", [], 0, "", [], "false", 1, 0, "true", 0, 0, 0, "8", 0])
    assert args.draw_legend is False and args.include_lone_images is True and args.no_fixed_seeds is True
    assert args.margin_size == 8 and args.x_values_dropdown is None and args.axis_inputs("x") == (4, "1-2", [])
    with pytest.raises(UserError, match="margin_size"):
        XYZArgs.from_list([4, "1", [], 0, "", [], 0, "", [], True, False, False, False, False, False, False, "wide"])


# -- labelled grids --------------------------------------------------------------------------------------------
def _cells(count, size=(64, 48)):
    return [Image.new("RGB", size, (40 * index % 255, 90, 160)) for index in range(count)]


def test_grid_annotations_layout_as_a1111():
    grid = make_grid(_cells(6), rows=2)
    columns = [[GridAnnotation(f"Steps: {n}")] for n in (1, 2, 3)]
    rows = [[GridAnnotation("CFG Scale: 7")], [GridAnnotation("CFG Scale: 9")]]
    labelled = draw_grid_annotations(grid, 64, 48, columns, rows, margin=6)
    pad_left = 64 * 3 // 4
    pad_top = labelled.height - 2 * 48 - 6
    assert labelled.width == pad_left + 3 * 64 + 2 * 6 and pad_top > 0
    assert labelled.crop((pad_left + 70, pad_top, pad_left + 134, pad_top + 48)).tobytes() == \
        grid.crop((64, 0, 128, 48)).tobytes(), "cell (1, 0) sits after one cell and one margin"
    assert (np.asarray(labelled.crop((pad_left, 0, pad_left + 64, pad_top)).convert("L")) < 128).any()
    no_rows = draw_grid_annotations(grid, 64, 48, columns, [[GridAnnotation()], [GridAnnotation()]])
    assert no_rows.width == 3 * 64, "no row labels: no left band"
    bare = draw_grid_annotations(grid, 64, 48, [[GridAnnotation()]] * 3, [[GridAnnotation()]] * 2)
    assert bare.size == grid.size and bare.tobytes() == grid.tobytes()
    with pytest.raises(ValueError, match="labels"):
        draw_grid_annotations(grid, 64, 48, columns[:2], rows)


def test_inactive_labels_are_grey():
    grid = make_grid(_cells(2, (200, 150)), rows=1)
    labelled = draw_grid_annotations(grid, 200, 150, [[GridAnnotation("red", False)], [GridAnnotation("red", True)]],
                                     [[GridAnnotation()]])
    top = np.asarray(labelled.convert("L"))[: labelled.height - 150]
    assert top[:, :200].min() > 100 and top[:, 200:].min() < 60, "left: grey and struck; right: black"


def test_add_params_puts_script_keys_before_version():
    text = "a cat\nNegative prompt: dog\nSteps: 2, Sampler: Euler, Seed: 3, Version: sdweb-v1"
    added = add_params(text, {"Script": "X/Y/Z plot", "X Values": "1, 2", "Skipped": None})
    assert added == ('a cat\nNegative prompt: dog\nSteps: 2, Sampler: Euler, Seed: 3, Script: X/Y/Z plot, '
                     'X Values: "1, 2", Version: sdweb-v1')
    assert add_params("a cat", {"Script": "x"}) == "a cat\nScript: x"
    assert add_params(text, {}) == text


# -- SD upscale tiles -----------------------------------------------------------------------------------------
def test_tiles_cover_the_image_as_a1111_and_recombine_exactly():
    layout = tile_layout(128, 96, 64, 64, 16)
    assert layout.xs == (0, 32, 64) and layout.ys == (0, 32)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))
    tiles = split_tiles(image, layout)
    assert len(tiles) == layout.count == 6 and all(tile.image.size == (64, 64) for tile in tiles)
    assert combine_tiles([tile.image for tile in tiles], layout).tobytes() == image.tobytes()
    assert tile_layout(64, 64, 64, 64, 8).count == 1
    with pytest.raises(ValueError, match="larger than"):
        tile_layout(32, 32, 64, 64, 8)
    with pytest.raises(ValueError, match="overlap"):
        tile_layout(128, 128, 64, 64, 64)


def test_tile_seams_are_blended():
    layout = tile_layout(96, 64, 64, 64, 32)
    dark, light = Image.new("RGB", (64, 64), (0, 0, 0)), Image.new("RGB", (64, 64), (200, 200, 200))
    row = np.asarray(combine_tiles([dark, light], layout))[0, :, 0]
    assert row[0] == 0 and row[-1] == 200 and 0 < row[48] < 200, "a ramp across the shared 32 pixels"
    assert (np.diff(row.astype(int)) >= 0).all()


# -- prompts from file ----------------------------------------------------------------------------------------
def test_prompt_line_options():
    parsed = parse_line('--prompt "a cat" on a mat --negative_prompt ugly --steps 20 --cfg_scale 7.5 '
                        '--seed 1 --sampler_name "Euler a" --restore_faces true --tiling false --styles "a, b"')
    assert parsed == {"prompt": "a cat on a mat", "negative_prompt": "ugly", "steps": 20, "cfg_scale": 7.5,
                      "seed": 1, "sampler_name": "Euler a", "restore_faces": True, "tiling": False,
                      "styles": ["a", "b"]}


@pytest.mark.parametrize(("line", "words"), [
    ("--steps", "has no value"),
    ("--steps x", "not a valid value"),
    ("--colour red", "unknown option"),
    ('--prompt "open', "cannot split"),
    ("word --steps 2", "expected an --option"),
])
def test_bad_prompt_lines(line, words):
    with pytest.raises(PromptLineError, match=words):
        parse_line(line)


def test_lines_that_are_not_options_are_prompts():
    jobs = read_lines("a cat\n\n  --steps 3 --prompt dog\nwell -- maybe --steps x\n")
    assert [options for options, _ in jobs] == [{"prompt": "a cat"}, {"steps": 3, "prompt": "dog"},
                                                {"prompt": "well -- maybe --steps x"}]
    assert jobs[0][1] is None and "was used as the prompt" in jobs[2][1]


# -- prompt matrix, loopback, outpainting mk2 -------------------------------------------------------------------
def test_prompt_matrix_combinations_and_labels():
    parts, prompts = matrix_prompts("a cat| red| blue, ", False, ", ")
    assert prompts == ["a cat", "a cat, red", "a cat, blue", "a cat, red, blue"]
    assert matrix_prompts("a cat|red", True, " ")[1] == ["a cat", "red a cat"]
    across, down = matrix_labels(parts)
    assert [[(label.text, label.is_active) for label in column] for column in across] == [[("red", False)],
                                                                                         [("red", True)]]
    assert len(down) == 2 and down[1][0].text == "blue,"


@pytest.mark.parametrize(("curve", "middle"), [("Linear", 0.5), ("Aggressive", math.sin(math.pi / 4)),
                                               ("Lazy", 1 - math.cos(math.pi / 4))])
def test_loopback_curves(curve, middle):
    assert loop_strength(0, 3, 0.2, 0.8, curve) == pytest.approx(0.2)
    assert loop_strength(1, 3, 0.2, 0.8, curve) == pytest.approx(0.2 + 0.6 * middle)
    assert loop_strength(2, 3, 0.2, 0.8, curve) == pytest.approx(0.8)
    assert loop_strength(0, 1, 0.3, 0.9, curve) == 0.3


def test_outpainting_growth_rounds_to_64_as_a1111():
    growth = plan_growth(100, 64, 128, ["left", "right", "up"])
    assert (growth.left, growth.right) == (142, 142) and 100 + 142 + 142 == 384
    assert (growth.up, growth.down) == (128, 0)
    assert [side for side, _ in growth.sides()] == ["left", "right", "up"]


def test_matched_noise_keeps_the_known_part_and_matches_its_colours():
    rng = np.random.default_rng(1)
    image = np.zeros((64, 64, 3))
    image[:, :32] = rng.uniform(0.6, 0.9, (64, 32, 3)) * np.array([1.0, 0.5, 0.2])
    mask = np.zeros((64, 64))
    mask[:, 32:] = 1.0
    filled = matched_noise(image, mask, 1.0, 0.05)
    assert np.array_equal(filled[:, :32], image[:, :32])
    for channel in range(3):
        known, new = image[:, :32, channel], filled[:, 32:, channel]
        assert new.min() >= known.min() - 1e-9 and new.max() <= known.max() + 1e-9
        assert abs(new.mean() - known.mean()) < 0.02
    assert filled[:, 32:].std() > 0.01, "noise, not a flat fill"
    assert np.array_equal(matched_noise(image, mask, 1.0, 0.05), filled), "deterministic"
