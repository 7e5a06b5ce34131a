"""UI handlers without a browser: requests built by field name, masks, errors, progress, paste, settings."""

import gradio as gr
import pytest
from PIL import Image, PngImagePlugin
from pydantic import ValidationError

from sdweb.config.settings import Settings
from sdweb.core.errors import UserError
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.generation.jobs import JobInterrupted, JobProgress
from sdweb.generation.service import GenerationResult
from sdweb.ui.common import (
    clean_values,
    collect_fields,
    finished_status,
    progress_bar_html,
    progress_text,
    result_entries,
    token_counter_text,
    user_message,
)
from sdweb.ui.controls import reused_seed, swap_values
from sdweb.ui.send import field_updates, fields_from_infotext, selected_image, ui_value
from sdweb.ui.tabs.img2img_inputs import img2img_request, mask_from_editor
from sdweb.ui.tabs.png_info import describe_image
from sdweb.ui.tabs.settings import apply_settings, changed_settings, component_for
from sdweb.ui.tabs.txt2img import hires_upscalers, txt2img_request

INFOTEXT = ("a cat\nNegative prompt: blurry\nSteps: 12, Sampler: Euler a, Schedule type: Automatic, "
            "CFG scale: 6.5, Seed: 42, Size: 96x64, Denoising strength: 0.4, Mask blur: 7, "
            "Masked content: latent noise, Inpaint area: Only masked")


def _ui_values(**values):
    """What Gradio hands a slider-heavy tab: numbers as floats."""
    return {name: float(value) if isinstance(value, int) and not isinstance(value, bool) else value
            for name, value in values.items()}


# -- request building by name ---------------------------------------------------------------------------------
def test_collect_fields_maps_components_to_field_names():
    prompt, steps, unused = object(), object(), object()
    fields = {"prompt": prompt, "steps": steps, "cfg_scale": unused}
    assert collect_fields(fields, {prompt: "a cat", steps: 20.0}) == {"prompt": "a cat", "steps": 20.0}


def test_clean_values_turns_whole_floats_into_ints_and_drops_none():
    assert clean_values({"steps": 20.0, "cfg_scale": 7.5, "seed": None, "tiling": True}) == \
        {"steps": 20, "cfg_scale": 7.5, "tiling": True}


def test_txt2img_request_from_named_values():
    request = txt2img_request(_ui_values(prompt="a cat", negative_prompt="blurry", steps=2, width=64, height=64,
                                         cfg_scale=7, seed=-1, sampler_name="Euler a", scheduler="Karras",
                                         n_iter=2, batch_size=1, enable_hr=False, hr_resize_x=0))
    assert isinstance(request, Txt2ImgRequest)
    assert (request.prompt, request.steps, request.width, request.n_iter) == ("a cat", 2, 64, 2)
    assert request.sampler_name == "Euler a" and request.scheduler == "Karras"


def test_txt2img_request_names_the_bad_field():
    with pytest.raises(gr.Error) as caught:
        txt2img_request(_ui_values(width=65, height=64))
    assert "width" in caught.value.message and "multiple of 8" in caught.value.message
    assert "Value error" not in caught.value.message


def test_hires_upscalers_start_with_latent():
    assert hires_upscalers()[0] == "Latent" and "Lanczos" in hires_upscalers()


def test_img2img_request_plain_mode_has_no_mask():
    image = Image.new("RGBA", (80, 64), (10, 20, 30, 255))
    request = img2img_request(_ui_values(prompt="x", denoising_strength=0.5, resize_mode=1, mask_blur=4),
                              "img2img", {"init_img": image})
    assert isinstance(request, Img2ImgRequest)
    assert request.mask is None and request.resize_mode == 1
    assert request.init_images[0].mode == "RGB" and request.init_images[0].size == (80, 64)


def _editor_value(size=(64, 48), stroke=(10, 10, 20, 20)):
    background = Image.new("RGB", size, (200, 100, 50))
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    if stroke:
        layer.paste((255, 255, 255, 255), stroke)
    return {"background": background, "layers": [layer], "composite": background}


def test_mask_from_editor_is_the_painted_alpha():
    mask = mask_from_editor(_editor_value())
    assert mask.mode == "L" and mask.size == (64, 48)
    assert mask.getpixel((15, 15)) == 255 and mask.getpixel((40, 40)) == 0


def test_mask_from_editor_empty_or_missing():
    assert mask_from_editor(_editor_value(stroke=None)) is None
    assert mask_from_editor(None) is None
    assert mask_from_editor({"background": None, "layers": [], "composite": None}) is None


def test_mask_from_editor_resizes_a_layer_to_the_background():
    value = _editor_value(size=(64, 64))
    value["layers"] = [Image.new("RGBA", (32, 32), (0, 0, 0, 255))]
    assert mask_from_editor(value).size == (64, 64)


def test_inpaint_request_carries_mask_and_inpaint_fields():
    values = _ui_values(prompt="x", mask_blur=6, inpainting_mask_invert=1, inpainting_fill=2, inpaint_full_res=1,
                        inpaint_full_res_padding=16)
    request = img2img_request(values, "inpaint", {"inpaint": _editor_value()})
    assert request.mask.size == (64, 48) and request.mask_blur_x == request.mask_blur_y == 6
    assert (request.inpainting_mask_invert, request.inpainting_fill, request.inpaint_full_res) == (1, 2, True)


@pytest.mark.parametrize(("mode", "images", "words"), [
    ("img2img", {}, "Upload an image"),
    ("inpaint", {"inpaint": _editor_value(stroke=None)}, "mask is empty"),
    ("inpaint_upload", {"inpaint_base": Image.new("RGB", (8, 8))}, "both an image and a mask"),
    ("sketch", {"sketch": None}, "Sketch"),
])
def test_img2img_request_says_what_is_missing(mode, images, words):
    with pytest.raises(gr.Error) as caught:
        img2img_request({}, mode, images)
    assert words in caught.value.message


def test_sketch_uses_the_composite():
    composite = Image.new("RGBA", (32, 32), (1, 2, 3, 255))
    request = img2img_request({}, "sketch", {"sketch": {"background": None, "layers": [], "composite": composite}})
    assert request.init_images[0].getpixel((0, 0)) == (1, 2, 3) and request.mask is None


# -- errors and progress -----------------------------------------------------------------------------------------
def test_user_message_for_each_kind_of_error():
    assert user_message(UserError("Hires upscaler 'X' not found.", hint="Use Latent.")) == \
        "Hires upscaler 'X' not found. Use Latent."
    try:
        Txt2ImgRequest(steps=0)
    except ValidationError as error:
        assert user_message(error).startswith("steps: ")
    assert user_message(JobInterrupted("x")) == "Interrupted."
    message = user_message(RuntimeError("CUDA out of memory at /secret/path"))
    assert "RuntimeError" in message and "/secret/path" not in message


def test_progress_text_waiting_running_and_eta():
    assert progress_text(JobProgress(), 1, 0.0) == "Waiting in queue (position 2)…"
    assert progress_text(JobProgress(), None, 0.0) == "Starting…"
    progress = JobProgress(job_no=1, job_count=2, sampling_step=5, sampling_steps=10, started_at=100.0,
                           textinfo="Batch 2 of 2")
    text = progress_text(progress, None, 115.0)
    assert text == "Step 5/10 · Batch 2 of 2 · 75% · ETA 5s"
    assert progress_text(JobProgress(started_at=1.0), None, 2.0).startswith("Loading model")


def test_progress_of_one_image_with_hires_fix_names_the_pass_not_a_batch():
    """Bug 6: one image with hires fix is two 'jobs' (A1111's count); the text said 'Batch 1/2', 'Batch 2/2'."""
    first = JobProgress(job_no=0, job_count=2, sampling_step=10, sampling_steps=20, started_at=100.0, textinfo="")
    second = JobProgress(job_no=1, job_count=2, sampling_step=5, sampling_steps=10, started_at=100.0,
                         textinfo="Hires fix")
    assert "Batch" not in progress_text(first, None, 110.0)
    assert progress_text(second, None, 115.0) == "Step 5/10 · Hires fix · 75% · ETA 5s"


def test_progress_bar_shows_percent_and_eta_or_the_queue_position():
    running = JobProgress(job_no=0, job_count=1, sampling_step=5, sampling_steps=20, started_at=100.0)
    bar = progress_bar_html(running, None, 110.0)
    assert "width:25.0%" in bar and "25% ETA 30s" in bar and "aria-valuenow='25'" in bar
    assert "Waiting in queue (position 3)" in progress_bar_html(JobProgress(), 2, 0.0)
    assert progress_bar_html(None, None, 0.0) == ""


def test_result_entries_put_the_grid_first():
    images = [Image.new("RGB", (8, 8)) for _ in range(2)]
    result = GenerationResult(images=images, infotexts=["a", "b"], seeds=[1, 2], subseeds=[5, 6],
                              grid=Image.new("RGB", (16, 8)), seconds=1.25)
    shown, infotexts, seeds = result_entries(result, show_grid=True)
    assert shown[0].size == (16, 8) and infotexts == ["a", "a", "b"] and seeds == [(1, 5), (1, 5), (2, 6)]
    assert len(result_entries(result, show_grid=False)[0]) == 2
    assert finished_status(result) == "Time taken: 1.2 s · not saved"


def test_seed_buttons():
    assert reused_seed([(11, 21), (12, 22)], 1, 0) == 12
    assert reused_seed([(11, 21)], 5, 1) == 21
    assert reused_seed([], 0, 0) == -1
    assert swap_values(512, 768) == (768, 512)


def test_token_counter():
    assert token_counter_text("a photo of a cat") == "5/75"
    assert token_counter_text("(cat:1.3) <lora:foo:0.8>") == "1/75"
    assert token_counter_text("cat, " * 40).endswith("/150")


# -- paste / send to -----------------------------------------------------------------------------------------------
def test_fields_from_infotext_for_txt2img_and_img2img():
    fields = fields_from_infotext(INFOTEXT, "txt2img")
    assert fields["prompt"] == "a cat" and fields["negative_prompt"] == "blurry"
    assert (fields["steps"], fields["cfg_scale"], fields["seed"]) == (12, 6.5, 42)
    assert (fields["width"], fields["height"]) == (96, 64) and fields["sampler_name"] == "Euler a"
    img2img = fields_from_infotext(INFOTEXT, "img2img", send_seed=False, send_size=False)
    assert "seed" not in img2img and "width" not in img2img
    assert img2img["mask_blur"] == 7 and img2img["inpainting_fill"] == 2 and img2img["inpaint_full_res"] is True
    assert fields_from_infotext("", "txt2img") == {}


def test_field_updates_show_labels_and_skip_unknown_choices():
    with gr.Blocks():
        sampler = gr.Dropdown(choices=["Euler a", "DPM++ 2M"], value="DPM++ 2M")
        fill = gr.Radio(choices=["fill", "original"], type="index")
        steps = gr.Slider(1, 150)
    components = {"sampler_name": sampler, "inpainting_fill": fill, "steps": steps}
    updates = field_updates(components, {"sampler_name": "Nope", "inpainting_fill": 2, "steps": 12, "other": 1})
    assert updates == {fill: "latent noise", steps: 12}
    assert ui_value("inpaint_full_res", True) == "Only masked"
    assert ui_value("seed_resize_from_w", -1) == 0


def test_selected_image_from_gallery_value():
    first, second = Image.new("RGB", (4, 4)), Image.new("RGB", (8, 8))
    assert selected_image([(first, None), (second, None)], 1) is second
    assert selected_image([(first, None)], 7) is first
    assert selected_image(None, 0) is None


def test_describe_image_reads_parameters_and_items():
    image = Image.new("RGB", (8, 8))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT)
    info.add_text("Software", "<b>tool</b>")
    path_image = _round_trip_png(image, info)
    text, table = describe_image(path_image)
    assert text == INFOTEXT and "&lt;b&gt;tool&lt;/b&gt;" in table
    assert describe_image(None) == ("", "")
    assert "No generation parameters" in describe_image(Image.new("RGB", (4, 4)))[1]


def _round_trip_png(image, info):
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    buffer.seek(0)
    return Image.open(buffer)


# -- settings ------------------------------------------------------------------------------------------------------
def test_changed_settings_only_differences():
    current = {"jpeg_quality": 80, "samples_format": "png", "save_txt": False}
    assert changed_settings({"jpeg_quality": 80.0, "samples_format": "jpg", "save_txt": False}, current) == \
        {"samples_format": "jpg"}


def test_apply_settings_saves_or_explains(tmp_path):
    settings = Settings.load(tmp_path / "config.json")
    assert apply_settings(settings, {"jpeg_quality": 80}) == ("No settings changed.", True)
    message, saved = apply_settings(settings, {"jpeg_quality": 90.0, "samples_format": "jpg"})
    assert saved and message.startswith("2 settings changed")
    assert settings.get("jpeg_quality") == 90 and (tmp_path / "config.json").is_file()
    message, saved = apply_settings(settings, {"jpeg_quality": 500})
    assert not saved and "jpeg_quality" in message and settings.get("jpeg_quality") == 90


def test_component_for_each_kind():
    from sdweb.config.options import OPTIONS_BY_KEY

    with gr.Blocks():
        kinds = {key: type(component_for(OPTIONS_BY_KEY[key], OPTIONS_BY_KEY[key].default))
                 for key in ("save_txt", "samples_format", "jpeg_quality", "eta_noise_seed_delta",
                             "samples_filename_pattern")}
    assert kinds == {"save_txt": gr.Checkbox, "samples_format": gr.Dropdown, "jpeg_quality": gr.Slider,
                     "eta_noise_seed_delta": gr.Number, "samples_filename_pattern": gr.Textbox}
