"""The Script dropdown's event through Gradio's own processing (no browser): with exactly one selectable script
choosing it, and None again, must give updates Gradio accepts (bug 1 answered HTTP 500 with
"InvalidComponentError: Group ... not a valid output component")."""

import asyncio
from types import SimpleNamespace

import gradio as gr
import pytest

from sdweb.extensions.api import Callbacks, Script
from sdweb.extensions.scripts import LoadedScript, ScriptRunner
from sdweb.ui.scripts import build_script_inputs


class OnlyScript(Script):
    def title(self):
        return "Only one"

    def ui(self, is_img2img):
        return [gr.Slider(minimum=1, maximum=4, value=2, label="Strength", elem_id="only_one_strength")]


def _dropdown_event(blocks, dropdown):
    for block_fn in blocks.fns.values():
        if any(target[0] == dropdown._id for target in block_fn.targets):
            return block_fn
    raise AssertionError("the Script dropdown has no change event")


@pytest.mark.parametrize("chosen", ["Only one", "None"])
def test_one_selectable_script_gives_updates_gradio_accepts(chosen):
    runner = ScriptRunner([LoadedScript(OnlyScript(), "probe")], Callbacks())
    state = SimpleNamespace(extensions=SimpleNamespace(runner=runner))
    with gr.Blocks() as blocks:
        inputs = build_script_inputs(state, False, "txt2img")
    block_fn = _dropdown_event(blocks, inputs.dropdown)
    assert len(block_fn.outputs) == 1
    result = asyncio.run(blocks.process_api(block_fn, [chosen], state=None))
    assert result["data"][0]["visible"] is (chosen == "Only one")
    assert inputs.request_fields({inputs.dropdown: chosen, inputs.selectable["Only one"][0]: 3}) == (
        {"alwayson_scripts": {}, "script_name": "Only one", "script_args": [3]} if chosen != "None"
        else {"alwayson_scripts": {}})


def test_no_element_id_twice_on_the_page(tmp_path):
    from sdweb.cli import parse_options
    from sdweb.state import build_app_state
    from sdweb.ui.app import build_blocks

    state = build_app_state(parse_options(["--data-dir", str(tmp_path)], {}))
    try:
        config = build_blocks(state).get_config_file()
    finally:
        state.queue.shutdown()
    ids = [component["props"].get("elem_id") for component in config["components"]]
    seen = [elem_id for elem_id in ids if elem_id]
    assert len(seen) == len(set(seen)), sorted({elem_id for elem_id in seen if seen.count(elem_id) > 1})
    assert {"script_txt2img_xyz_plot_x_type", "script_img2img_xyz_plot_x_type", "script_img2img_sd_upscale_overlap",
            "script_txt2img_prompt_matrix_put_at_start"} <= set(seen)
