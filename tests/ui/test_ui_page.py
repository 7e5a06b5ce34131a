"""The page built on a real AppState (demo model): field dicts match the requests, the generation handler runs."""

import gradio as gr
import pytest

from sdweb.cli import parse_options
from sdweb.core.requests import Img2ImgRequest, Txt2ImgRequest
from sdweb.state import build_app_state
from sdweb.ui.app import build_blocks, save_setting, vae_choices
from sdweb.ui.common import build_output_panel, run_generation
from sdweb.ui.tabs.img2img import build_img2img_tab
from sdweb.ui.tabs.txt2img import build_txt2img_tab

UI_ONLY_IMG2IMG = {"mask_blur"}  # becomes mask_blur_x and mask_blur_y


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    app_state = build_app_state(parse_options(["--data-dir", str(data)], {}))
    yield app_state
    app_state.queue.shutdown()


def test_field_dicts_name_request_fields(state):
    with gr.Blocks():
        txt2img = build_txt2img_tab(state)
        img2img = build_img2img_tab(state)
    assert set(txt2img.fields) <= set(Txt2ImgRequest.model_fields)
    assert set(img2img.fields) - UI_ONLY_IMG2IMG <= set(Img2ImgRequest.model_fields)
    assert {"prompt", "negative_prompt", "steps", "sampler_name", "scheduler", "seed", "enable_hr",
            "hr_upscaler"} <= set(txt2img.fields)


def test_page_has_the_a1111_controls(state):
    config = build_blocks(state).get_config_file()
    elem_ids = {component["props"].get("elem_id") for component in config["components"]}
    for elem_id in ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "txt2img_prompt",
                    "txt2img_neg_prompt", "txt2img_generate", "txt2img_gallery", "txt2img_info", "img2maskimg",
                    "img2img_image", "pnginfo_image", "setting_jpeg_quality", "settings_submit"):
        assert elem_id in elem_ids, elem_id
    labels = {component["props"].get("label") for component in config["components"]}
    assert {"Sampling method", "Schedule type", "Sampling steps", "CFG Scale", "Batch count", "Batch size",
            "Denoising strength", "Mask blur", "Masked content", "Inpaint area", "Resize mode"} <= labels
    assert vae_choices(state)[:2] == ["Automatic", "None"]


def test_run_generation_streams_then_shows_the_result(state):
    with gr.Blocks():
        panel = build_output_panel("probe")
    request = Txt2ImgRequest(prompt="a cat", negative_prompt="blurry", width=64, height=64, steps=2, seed=5)
    updates = list(run_generation(state, "txt2img", request, panel))
    assert updates[0][panel.job_id].startswith("task(txt2img-")
    final = updates[-1]
    assert len(final[panel.gallery]["value"]) == 1 and "Negative prompt: blurry" in final[panel.info]
    assert "Seed: 5" in final[panel.gallery]["value"][0].info["parameters"]
    assert final[panel.seeds][0][0] == 5 and final[panel.status].startswith("Time taken")
    assert list((state.paths.data_dir / "outputs" / "txt2img-images").rglob("*.png"))


def test_service_user_error_becomes_a_clean_gr_error(state):
    with gr.Blocks():
        panel = build_output_panel("probe")
    request = Txt2ImgRequest(width=64, height=64, steps=2, enable_hr=True, hr_upscaler="4x-Nope")
    with pytest.raises(gr.Error) as caught:
        list(run_generation(state, "txt2img", request, panel))
    assert "4x-Nope" in caught.value.message and "Traceback" not in caught.value.message


def test_quick_settings_are_validated_and_saved(state):
    save_setting(state, "CLIP_stop_at_last_layers", 2.0)
    assert state.settings.get("CLIP_stop_at_last_layers") == 2
    with pytest.raises(gr.Error):
        save_setting(state, "CLIP_stop_at_last_layers", 40)
    save_setting(state, "CLIP_stop_at_last_layers", 1)


def test_settings_tab_shows_every_editable_setting_by_section(state):
    from sdweb.ui.tabs.settings import options_by_section, visible_options

    config = build_blocks(state).get_config_file()
    elem_ids = {component["props"].get("elem_id") for component in config["components"]}
    shown = visible_options(hide_dirs=False)
    assert len(shown) > 60
    assert {f"setting_{option.key}" for option in shown} <= elem_ids
    assert "settings_reload_ui" in elem_ids
    sections = options_by_section(shown)
    assert list(sections)[0] == shown[0].section and len(sections) == len(set(sections))
    hidden = {option.key for option in shown} - {option.key for option in visible_options(hide_dirs=True)}
    assert "samples_filename_pattern" in hidden


def test_quick_checkpoint_refuses_a_damaged_file_and_keeps_the_setting(state):
    broken = state.paths.checkpoints / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    try:
        state.registry.refresh_checkpoints()
        before = state.settings.get("sd_model_checkpoint")
        title = state.registry.find_checkpoint("broken").title
        with pytest.raises(gr.Error) as caught:
            save_setting(state, "sd_model_checkpoint", title)
        assert "broken.safetensors" in caught.value.message
        assert state.settings.get("sd_model_checkpoint") == before
    finally:
        broken.unlink()
        state.registry.refresh_checkpoints()


def test_choosing_a_checkpoint_loads_it_at_once_with_messages(state):
    from sdweb.ui.quicksettings import switch_checkpoint

    title = state.registry.checkpoints[0].title
    state.manager.unload_all()
    state.settings.update({"sd_model_checkpoint": ""})
    updates = list(switch_checkpoint(state, title))
    assert updates[0][1].startswith(f"Loading {title}")
    assert updates[-1][1].startswith(f"Loaded {title} in ")
    assert title in state.manager.loaded_titles() and state.settings.get("sd_model_checkpoint") == title
    assert list(switch_checkpoint(state, title))[-1][1] == f"Loaded {title}"  # already loaded: nothing to do
    with pytest.raises(gr.Error, match="not in the list"):
        list(switch_checkpoint(state, "no-such-model.safetensors"))
