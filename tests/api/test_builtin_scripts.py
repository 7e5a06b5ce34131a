"""A1111's built-in scripts through POST /sdapi/v1/txt2img|img2img `script_name` / `script_args` with A1111's
argument lists, on the built-in demo model (through the real service and queue)."""

import json
import time

import numpy as np
import pytest
from api_kit import api_app, image_of, png_b64
from PIL import Image

from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.outputs.save import read_infotext

SMALL = {"width": 64, "height": 64, "steps": 1, "sampler_name": "Euler", "seed": 11, "prompt": "a cat"}
CELL = 64
PAD_LEFT = CELL * 3 // 4  # A1111's left band when rows are labelled
XYZ_DEFAULTS = [True, False, False, False, False, False, False, 0, False]  # draw_legend ... csv_mode


def xyz_args(x_type, x_values, y_type=0, y_values="", z_type=0, z_values="", **options):
    """A1111's 18 X/Y/Z arguments; `options` by name override the defaults after the axes."""
    names = ["draw_legend", "include_lone_images", "include_sub_grids", "no_fixed_seeds", "vary_seeds_x",
             "vary_seeds_y", "vary_seeds_z", "margin_size", "csv_mode"]
    rest = [options.get(name, default) for name, default in zip(names, XYZ_DEFAULTS, strict=True)]
    return [x_type, x_values, [], y_type, y_values, [], z_type, z_values, [], *rest]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    with api_app(data) as (client, state):
        yield client, state, data


def _post(client, route, payload):
    response = client.post(f"/sdapi/v1/{route}", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    return [image_of(image) for image in body["images"]], json.loads(body["info"])


def _dark(region: Image.Image) -> bool:
    return bool((np.asarray(region.convert("L")) < 128).any())


def test_scripts_route_lists_each_builtin_once(api):
    client, _, _ = api
    listed = client.get("/sdapi/v1/scripts").json()
    for mode in ("txt2img", "img2img"):
        assert len(listed[mode]) == len(set(listed[mode])), listed[mode]
    assert {"prompt matrix", "prompts from file or textbox", "x/y/z plot", "controlnet m2m"} <= set(listed["txt2img"])
    assert {"loopback", "outpainting mk2", "poor man's outpainting", "sd upscale", "x/y/z plot"} <= set(
        listed["img2img"])
    assert "sd upscale" not in listed["txt2img"]


def test_xyz_plot_2x2_grid_first_with_legend_and_saved_grid(api):
    client, _, data = api
    args = xyz_args(4, "1-2", 6, "3, 7", include_lone_images=True)  # A1111 indexes: Steps, CFG Scale
    images, info = _post(client, "txt2img", {**SMALL, "script_name": "x/y/z plot", "script_args": args,
                                              "save_images": True})
    assert len(images) == 5 and info["index_of_first_image"] == 1
    grid, cells = images[0], images[1:]
    pad_top = grid.height - 2 * CELL
    assert grid.width == PAD_LEFT + 2 * CELL and pad_top > 0, grid.size
    for index, cell in enumerate(cells):  # x fastest: (1, 3), (2, 3), (1, 7), (2, 7)
        ix, iy = index % 2, index // 2
        box = (PAD_LEFT + ix * CELL, pad_top + iy * CELL, PAD_LEFT + (ix + 1) * CELL, pad_top + (iy + 1) * CELL)
        assert grid.crop(box).tobytes() == cell.convert("RGB").tobytes(), f"cell {index} is not where it belongs"
        assert f"Steps: {ix + 1}," in info["infotexts"][index + 1]
        assert f"CFG scale: {(3.0, 7.0)[iy]}," in info["infotexts"][index + 1]
    for ix in range(2):  # a label over each column, one left of each row, nothing in the corner
        assert _dark(grid.crop((PAD_LEFT + ix * CELL, 0, PAD_LEFT + (ix + 1) * CELL, pad_top)))
        assert _dark(grid.crop((0, pad_top + ix * CELL, PAD_LEFT, pad_top + (ix + 1) * CELL)))
    assert not _dark(grid.crop((0, 0, PAD_LEFT, pad_top)))
    grid_text = info["infotexts"][0]
    assert grid_text.startswith("a cat\n") and "Steps: 1," in grid_text
    assert 'Script: X/Y/Z plot, X Type: Steps, X Values: 1-2, Y Type: CFG Scale, Y Values: "3, 7"' in grid_text
    saved = sorted((data / "outputs" / "txt2img-grids").rglob("xyz_grid-*.png"))
    assert len(saved) == 1 and saved[0].name == "xyz_grid-0000.png"
    with Image.open(saved[0]) as file:
        assert file.size == grid.size and read_infotext(file)[0] == grid_text


def test_xyz_plot_by_labels_without_legend_with_margin_and_z_sub_grids(api):
    client, _, _ = api
    plain, _ = _post(client, "txt2img", {**SMALL, "script_name": "X/Y/Z plot",
                                         "script_args": xyz_args("Steps", "1, 2", draw_legend=False)})
    assert len(plain) == 1 and plain[0].size == (2 * CELL, CELL)
    args = xyz_args("Seed", "5, 6", "Nothing", "", "CFG Scale", "2-4 [2]", include_sub_grids=True, margin_size=4)
    images, info = _post(client, "txt2img", {**SMALL, "script_name": "X/Y/Z plot", "script_args": args})
    main, subs = images[0], images[1:]
    assert len(subs) == 2 and info["index_of_first_image"] == 3
    assert subs[0].width == 2 * CELL + 4 and subs[0].height > CELL, "X labels, no row band, 4 px between cells"
    assert main.width == 2 * subs[0].width and main.height > subs[0].height, "the two Z sub-grids under titles"
    assert "Z Type: CFG Scale, Z Values: 2-4 [2]" in info["infotexts"][0]
    assert "Z Type" not in info["infotexts"][1] and "X Type: Seed" in info["infotexts"][1]
    assert "CFG scale: 4.0" in info["infotexts"][2]


def test_xyz_plot_fixes_random_seeds_unless_asked_to_keep_them(api):
    client, _, _ = api
    _, info = _post(client, "txt2img", {**SMALL, "seed": -1, "script_name": "X/Y/Z plot",
                                        "script_args": xyz_args(1, "-1, -1")})
    fixed = [int(seed) for seed in info["infotexts"][0].split("Fixed X Values: ")[1].split('"')[1].split(", ")]
    assert len(fixed) == 2 and info["all_seeds"] == fixed
    _, kept = _post(client, "txt2img", {**SMALL, "seed": -1, "script_name": "X/Y/Z plot",
                                        "script_args": xyz_args("Steps", "1, 2", no_fixed_seeds=True)})
    assert "Fixed X Values" not in kept["infotexts"][0]


def test_xyz_plot_prompt_sr_and_sampler_axes(api):
    client, _, _ = api
    args = xyz_args("Prompt S/R", "cat, dog", "Sampler", "Euler, DDIM", csv_mode=True, include_lone_images=True)
    _, info = _post(client, "txt2img", {**SMALL, "script_name": "X/Y/Z plot", "script_args": args})
    prompts = [text.split("\n")[0] for text in info["infotexts"][1:]]
    assert prompts == ["a cat", "a dog", "a cat", "a dog"]
    assert "Sampler: DDIM" in info["infotexts"][3]
    dropdown = xyz_args("Sampler", "", include_lone_images=True)
    dropdown[2] = ["Euler", "DDIM"]  # A1111's x_values_dropdown for an axis with choices
    _, picked = _post(client, "txt2img", {**SMALL, "script_name": "X/Y/Z plot", "script_args": dropdown})
    assert "X Values: \"Euler,DDIM\"" in picked["infotexts"][0] and "Sampler: DDIM" in picked["infotexts"][2]


@pytest.mark.parametrize(("args", "words"), [
    (xyz_args(4, "1, abc"), "'abc' is not a whole number"),
    (xyz_args(4, "5-1"), "gives no values"),
    (xyz_args("Sampler", "No Such Sampler", csv_mode=True), "unknown sampler 'No Such Sampler'"),
    (xyz_args("Prompt S/R", "horse, dog"), "did not find 'horse'"),
    (xyz_args("FP8 mode", "Enable"), "not available in sdweb"),
    (xyz_args(99, "1"), "is not an axis index"),
    (xyz_args("Size", "64by64"), "WIDTHxHEIGHT"),
])
def test_xyz_plot_bad_values_are_clear_400s_and_the_next_request_works(api, args, words):
    client, _, _ = api
    response = client.post("/sdapi/v1/txt2img", json={**SMALL, "script_name": "X/Y/Z plot", "script_args": args})
    assert response.status_code == 400 and words in response.json()["detail"], response.text
    assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200


def test_xyz_plot_is_interruptible_between_cells_and_counts_progress_over_cells(api):
    _, state, _ = api
    request = Txt2ImgRequest(**{**SMALL, "steps": 3}, script_name="X/Y/Z plot",
                             script_args=xyz_args("Seed", "1-40", draw_legend=False))
    job = state.submit("txt2img", request, SaveOptions(save_samples=False, save_grid=False))
    deadline = time.monotonic() + 120
    while job.progress.job_no < 1 and not job.finished.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.progress.job_count == 40, "progress counts all cells"
    state.queue.interrupt(job.id)
    result = job.wait(120)
    assert result.interrupted
    assert 1 <= len(result.info["all_seeds"]) < 40, "stopped between cells"
    assert result.images[0].size == (40 * CELL, CELL), "the grid keeps its shape (cells not run are black)"


def test_prompt_matrix(api):
    client, _, data = api
    images, info = _post(client, "txt2img", {**SMALL, "prompt": "a cat|red|blue", "save_images": True,
                                              "script_name": "Prompt matrix",
                                              "script_args": [False, False, "positive", "comma", 0]})
    assert len(images) == 5 and info["index_of_first_image"] == 1
    assert [text.split("\n")[0] for text in info["infotexts"][1:]] == ["a cat", "a cat, red", "a cat, blue",
                                                                        "a cat, red, blue"]
    assert images[0].width == PAD_LEFT + 2 * CELL and images[0].height > 2 * CELL, "red across, blue down"
    assert sorted(path.name for path in (data / "outputs" / "txt2img-grids").rglob("prompt_matrix-*.png")) == [
        "prompt_matrix-0000.png"]


def test_prompts_from_file_with_a1111_line_options(api):
    client, _, _ = api
    lines = 'a dog\n--prompt "a bird" --negative_prompt "ugly" --steps 2 --seed 9 --width 72\n'
    images, info = _post(client, "txt2img", {**SMALL, "prompt": "", "script_name": "prompts from file or textbox",
                                              "script_args": [False, False, "start", lines]})
    assert [image.size for image in images] == [(64, 64), (72, 64)]
    assert info["infotexts"][0].startswith("a dog\nSteps: 1,")
    assert info["infotexts"][1].startswith("a bird\nNegative prompt: ugly\nSteps: 2,")
    assert "Seed: 9," in info["infotexts"][1]
    _, joined = _post(client, "txt2img", {**SMALL, "prompt": "photo", "script_name": "Prompts from file or textbox",
                                          "script_args": [True, False, "end", "of a cat\nof a dog"]})
    assert [text.split("\n")[0] for text in joined["infotexts"]] == ["photo of a cat", "photo of a dog"]
    assert joined["all_seeds"] == [11, 12], "Iterate seed every line"


def test_sd_upscale_a1111_args_return_the_upscaled_image(api):
    client, _, _ = api
    init = Image.new("RGB", (32, 32), (200, 40, 40))
    payload = {**SMALL, "init_images": [png_b64(init)], "denoising_strength": 0.3, "script_name": "sd upscale"}
    images, info = _post(client, "img2img", {**payload, "script_args": ["", 8, "Lanczos", 2.0]})
    assert len(images) == 1 and images[0].size == (64, 64)
    assert "SD upscale overlap: 8, SD upscale upscaler: Lanczos" in info["infotexts"][0]
    assert images[0].info["parameters"] == info["infotexts"][0], "the PNG carries its infotext"
    by_index, info = _post(client, "img2img", {**payload, "script_args": ["", 16, 1, 2.0]})  # 1 = Lanczos
    assert by_index[0].size == (64, 64) and "SD upscale upscaler: Lanczos" in info["infotexts"][0]
    bigger = {**payload, "init_images": [png_b64(init.resize((64, 64)))], "batch_size": 9}
    tiled, _ = _post(client, "img2img", {**bigger, "script_args": ["", 16, "Lanczos", 2.0]})  # 3x3 tiles
    assert tiled[0].size == (128, 128)
    bad = client.post("/sdapi/v1/img2img", json={**payload, "script_args": ["", 8, "No Such", 2.0]})
    assert bad.status_code == 400 and "upscaler 'No Such' not found" in bad.json()["detail"]


def test_loopback(api):
    client, _, _ = api
    init = Image.new("RGB", (64, 64), (20, 120, 220))
    images, info = _post(client, "img2img", {**SMALL, "init_images": [png_b64(init)], "denoising_strength": 0.75,
                                              "script_name": "Loopback", "script_args": [2, 0.5, "Linear", "None"]})
    assert [image.size for image in images] == [(128, 64), (64, 64), (64, 64)]
    assert info["index_of_first_image"] == 1
    assert "Denoising strength: 0.75" in info["infotexts"][1] and "Denoising strength: 0.5" in info["infotexts"][2]
    assert "Final denoising strength: 0.5, Denoising curve: Linear" in info["infotexts"][2]


def test_outpainting_mk2_grows_the_image_and_keeps_the_original_side(api):
    client, _, _ = api
    init = Image.new("RGB", (64, 64), (10, 200, 30))
    images, _ = _post(client, "img2img", {**SMALL, "init_images": [png_b64(init)], "denoising_strength": 0.8,
                                          "script_name": "Outpainting mk2",
                                          "script_args": ["", 64, 4, ["right"], 1.0, 0.05]})
    assert len(images) == 1 and images[0].size == (128, 64)
    assert "Denoising strength: 0.8" in images[0].info["parameters"]
    pixels = np.asarray(images[0].convert("RGB"), dtype=np.int16)
    assert np.abs(pixels[:, :24] - np.array([10, 200, 30])).max() <= 3, "the far side of the original stays"


def test_poor_mans_outpainting_through_the_api(api):
    client, _, _ = api
    init = Image.new("RGB", (64, 64), (10, 200, 30))
    images, info = _post(client, "img2img", {**SMALL, "init_images": [png_b64(init)],
                                             "script_name": "poor man's outpainting",
                                             "script_args": [32, 4, 1, ["left", "up"]]})
    assert images[0].size == (128, 128) and "Script: Poor man's outpainting" in info["infotexts"][0]
