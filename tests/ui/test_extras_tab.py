"""The Extras tab's handlers on a real AppState: scale by / to, batches, folders, errors, the upscaler list,
Send to extras, the hires upscaler list and Interrogate CLIP (through the shared job queue)."""

from io import BytesIO
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from sdweb.cli import parse_options
from sdweb.outputs.save import read_infotext
from sdweb.postprocess.extras import ExtrasRequest
from sdweb.state import build_app_state
from sdweb.testing import tiny_postprocess as tiny
from sdweb.ui.app import build_blocks
from sdweb.ui.send import _to_extras, with_infotext
from sdweb.ui.tabs.extras import build_extras_tab, extras_job, info_html
from sdweb.ui.tabs.img2img import interrogate_clip
from sdweb.ui.tabs.txt2img import hires_upscalers

SOURCE_INFOTEXT = "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler, Seed: 1, Size: 40x30"


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    app_state = build_app_state(parse_options(["--data-dir", str(data)], {}))
    yield app_state
    app_state.queue.shutdown()


@pytest.fixture(scope="module")
def tab(state):
    with gr.Blocks():
        built = build_extras_tab(state)
    return built


def _png_bytes(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    """A PNG with A1111 generation parameters."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", SOURCE_INFOTEXT)
    buffer = BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def _source(width: int = 40, height: int = 30, seed: int = 0) -> Image.Image:
    """The PNG as Gradio's upload hands it over (read from the file, text chunks in .info)."""
    return Image.open(BytesIO(_png_bytes(width, height, seed)))


def _values(tab, mode="single_image", **overrides):
    """{component: value} as Gradio passes them: the tab's defaults, then the test's values by field name."""
    defaults = {"resize_mode": 0, "upscaling_resize": 4.0, "max_side_length": 0.0, "upscaling_resize_w": 512.0,
                "upscaling_resize_h": 512.0, "upscaling_crop": True, "upscaler_1": "None", "upscaler_2": "None",
                "extras_upscaler_2_visibility": 0.0, "gfpgan_visibility": 0.0, "codeformer_visibility": 0.0,
                "codeformer_weight": 0.0, "upscale_first": False, "show_extras_results": True,
                "mode": mode, "image": None, "files": None, "input_dir": "", "output_dir": ""}
    defaults.update(overrides)
    components = {**tab.fields, **tab.inputs}
    assert set(components) == set(defaults), "every control is covered"
    return {components[name]: value for name, value in defaults.items()}


def _run(tab, values):
    updates = list(tab.generate(values))
    assert updates[0][tab.status] == "Queued…"
    return updates[-1]


def _saved(state):
    return sorted((state.paths.data_dir / "outputs" / "extras-images").glob("*.png"))


def test_single_image_2x_lanczos_doubles_the_size_and_keeps_the_infotext(state, tab):
    before = set(_saved(state))
    final = _run(tab, _values(tab, image=_source(), upscaling_resize=2.0, upscaler_1="Lanczos"))
    [result] = final[tab.gallery]["value"]
    assert result.size == (80, 60)
    assert "Postprocess upscale by: 2" in final[tab.info] and "Postprocess upscaler: Lanczos" in final[tab.info]
    assert "Postprocess upscale by" in result.info["postprocessing"]
    assert "Negative prompt: blurry" in final[tab.info], "the info box shows the source's parameters"
    assert final[tab.status].startswith("Time taken") and "1 file saved" in final[tab.status]
    [path] = sorted(set(_saved(state)) - before)
    with Image.open(path) as saved:
        assert saved.size == (80, 60)
        infotext, items = read_infotext(saved)
        assert infotext == SOURCE_INFOTEXT
        assert items["postprocessing"].startswith("Postprocess upscale by: 2")  # as A1111 writes it
        assert items["postprocessing"].endswith(", Postprocess upscaler: Lanczos")
    assert not list(path.parent.glob("*.tmp*")), "saved atomically, no temp file left"


def test_scale_to_with_and_without_crop(tab):
    cropped = _run(tab, _values(tab, image=_source(), resize_mode=1, upscaling_resize_w=64.0,
                                upscaling_resize_h=64.0, upscaler_1="Lanczos"))
    assert cropped[tab.gallery]["value"][0].size == (64, 64)
    assert "Postprocess crop to: 64x64" in cropped[tab.info]
    covered = _run(tab, _values(tab, image=_source(), resize_mode=1, upscaling_resize_w=64.0,
                                upscaling_resize_h=64.0, upscaling_crop=False, upscaler_1="Lanczos"))
    width, height = covered[tab.gallery]["value"][0].size
    assert height == 64 and width == 85, "without crop the image covers the box, keeping its aspect ratio"


def test_batch_process_keeps_file_names(state, tab, tmp_path):
    files = []
    for index, size in enumerate([(20, 20), (30, 10)]):
        path = tmp_path / f"upload-{index}.png"
        path.write_bytes(_png_bytes(*size, seed=index))
        files.append(str(path))
    final = _run(tab, _values(tab, mode="batch_process", files=files, upscaling_resize=2.0, upscaler_1="Nearest"))
    assert [image.size for image in final[tab.gallery]["value"]] == [(40, 40), (60, 20)]
    names = {path.name for path in _saved(state)}
    assert {"upload-0.png", "upload-1.png"} <= names
    assert "2 files saved" in final[tab.status]


def test_batch_from_directory_in_and_out(tab, tmp_path):
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for index in range(3):
        (source / f"{index:02}.png").write_bytes(_png_bytes(16, 12, seed=index))
    (source / "notes.txt").write_text("not an image")
    (source / "broken.png").write_bytes(b"not a png")
    final = _run(tab, _values(tab, mode="batch_from_directory", input_dir=str(source), output_dir=str(target),
                              upscaling_resize=3.0, upscaler_1="Lanczos", show_extras_results=False))
    assert final[tab.gallery]["value"] == [], "Show result images off: nothing shown, everything saved"
    written = sorted(path.name for path in target.iterdir())
    assert written == ["00.png", "01.png", "02.png"]
    with Image.open(target / "01.png") as image:
        assert image.size == (48, 36) and read_infotext(image)[0] == SOURCE_INFOTEXT
    assert "broken.png skipped" in final[tab.info]
    assert sorted(path.name for path in source.iterdir()) == ["00.png", "01.png", "02.png", "broken.png",
                                                              "notes.txt"], "the inputs are untouched"


def test_bad_input_gives_readable_errors(tab, tmp_path):
    with pytest.raises(gr.Error) as unknown:
        list(tab.generate(_values(tab, image=_source(), upscaler_1="4x-DoesNotExist")))
    assert "4x-DoesNotExist" in unknown.value.message and "Lanczos" in unknown.value.message
    with pytest.raises(gr.Error, match="Single Image: upload an image first"):
        list(tab.generate(_values(tab)))
    with pytest.raises(gr.Error, match="Batch Process: drop one or more images"):
        list(tab.generate(_values(tab, mode="batch_process", files=[])))
    with pytest.raises(gr.Error, match="does not exist"):
        list(tab.generate(_values(tab, mode="batch_from_directory", input_dir=str(tmp_path / "missing"))))
    with pytest.raises(gr.Error, match="Input directory"):
        list(tab.generate(_values(tab, mode="batch_from_directory", input_dir="  ")))
    (tmp_path / "fake.png").write_bytes(b"junk")
    with pytest.raises(gr.Error, match="fake.png is not a readable image"):
        list(tab.generate(_values(tab, mode="batch_process", files=[str(tmp_path / "fake.png")])))
    with pytest.raises(gr.Error, match="gfpgan_visibility"):
        list(tab.generate(_values(tab, image=_source(), gfpgan_visibility=1.5)))


def test_folder_mode_refused_with_hide_ui_dir_config(tmp_path):
    request = ExtrasRequest()
    with pytest.raises(gr.Error, match="hide-ui-dir-config"):
        extras_job(request, {"mode": "batch_from_directory", "input_dir": str(tmp_path)}, allow_dirs=False)
    job = extras_job(request.model_copy(update={"show_extras_results": False}),
                     {"mode": "single_image", "image": Image.new("RGB", (4, 4))})
    assert job.save and job.request.show_extras_results, "the checkbox only applies to the folder tab"


def test_upscaler_list_refresh_finds_new_models(state, tab):
    first, second = tab.refresh("Lanczos", "4x-Gone")
    assert first.choices[:3] == [("None", "None"), ("Lanczos", "Lanczos"), ("Nearest", "Nearest")]
    assert first.value == "Lanczos" and second.value == "None", "a vanished model falls back to None"
    tiny.save_state_dict(tiny.esrgan_state_dict(1, layout="old"), state.paths.esrgan / "4x-Tiny.pth")
    first, _ = tab.refresh("None", "None")
    assert ("4x-Tiny", "4x-Tiny") in first.choices
    assert "4x-Tiny" in hires_upscalers(state.service.postprocess.upscalers.names())
    assert hires_upscalers()[:1] == ["Latent"] and hires_upscalers()[-3:] == ["None", "Lanczos", "Nearest"]


def test_send_to_extras_switches_tab_and_keeps_the_infotext(tab):
    with gr.Blocks():
        main = gr.Tabs()
    send, outputs = _to_extras(SimpleNamespace(main=main, extras=tab))
    image = Image.new("RGB", (8, 8))
    updates = send(image, SOURCE_INFOTEXT)
    assert set(updates) == set(outputs)
    assert updates[tab.inputs["mode"]] == "single_image"
    assert updates[tab.inputs["image"]].info["parameters"] == SOURCE_INFOTEXT
    assert "parameters" not in image.info, "the gallery's image is not modified"
    assert with_infotext(image, None) is image
    with pytest.raises(gr.Error, match="no image"):
        send(None, None)


def test_page_has_the_extras_controls_and_send_buttons(state):
    config = build_blocks(state).get_config_file()
    elem_ids = {component["props"].get("elem_id") for component in config["components"]}
    for elem_id in ("extras_image", "extras_image_batch", "extras_batch_input_dir", "extras_batch_output_dir",
                    "extras_upscaling_resize", "extras_upscaling_resize_w", "extras_upscaling_crop",
                    "extras_upscaler_1", "extras_upscaler_2", "extras_upscaler_2_visibility",
                    "extras_gfpgan_visibility", "extras_codeformer_visibility", "extras_codeformer_weight",
                    "extras_generate", "extras_gallery", "html_info_extras", "txt2img_send_to_extras",
                    "img2img_send_to_extras", "pnginfo_send_extras", "interrogate"):
        assert elem_id in elem_ids, elem_id
    assert "deepbooru" not in elem_ids, "DeepBooru is not in the backend, so there is no button"


def test_interrogate_clip_without_models_says_what_is_missing(state):
    with pytest.raises(gr.Error) as missing:
        interrogate_clip(state, "img2img", {"init_img": Image.new("RGB", (32, 32))})
    assert "model" in missing.value.message and "BLIP" in missing.value.message
    with pytest.raises(gr.Error, match="put an image"):
        interrogate_clip(state, "inpaint", {"inpaint": None})


def test_info_html_escapes():
    assert info_html("<b>x</b>\ny", None) == "<div class='sdweb-extras-info'><p>&lt;b&gt;x&lt;/b&gt;<br>y</p></div>"
    assert info_html(None, None) == ""


def test_interrupt_stops_a_folder_run_between_images(tab, tmp_path):
    source, target = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for index in range(40):
        (source / f"{index:02}.png").write_bytes(_png_bytes(16, 12, seed=index))
    updates = tab.generate(_values(tab, mode="batch_from_directory", input_dir=str(source), output_dir=str(target),
                                   upscaling_resize=2.0, upscaler_1="Lanczos", show_extras_results=False))
    first = next(updates)
    tab.interrupt(first[tab.job_id])
    with pytest.raises(gr.Error):
        list(updates)
    written = list(target.iterdir()) if target.exists() else []
    assert len(written) < 40
    for path in written:  # what was written is complete
        with Image.open(path) as image:
            assert image.size == (32, 24)


def test_page_load_lists_new_upscalers_in_the_hires_dropdown(tmp_path):
    state = build_app_state(parse_options(["--data-dir", str(tmp_path)], {}))
    try:
        blocks = build_blocks(state)
        on_load = next(block_fn.fn for block_fn in blocks.fns.values()
                       if block_fn.name == "on_load" and block_fn.fn.__qualname__.startswith("_wire_page_load"))
        tiny.save_state_dict(tiny.esrgan_state_dict(2, layout="new"), state.paths.esrgan / "4x-Added.pth")
        updates = on_load()
        dropdown = next(value for value in updates.values()
                        if isinstance(value, gr.Dropdown) and "4x-Added" in str(value.choices))
        assert ("4x-Added", "4x-Added") in dropdown.choices
    finally:
        state.queue.shutdown()
