"""Gradio 3 layouts and visibility on Gradio 6 (sdweb/compat/a1111/gradio3.py), as A1111 extensions build them:
images-browser hides components it reads later and keeps a hidden Textbox inside its gr.Tabs."""

from __future__ import annotations

import gradio

from sdweb.compat.a1111 import gradio3 as gr


def _props(blocks: gradio.Blocks) -> dict[str, dict]:
    return {c["props"].get("elem_id"): c for c in blocks.get_config_file()["components"] if c["props"].get("elem_id")}


def _child_ids(block) -> list[str]:
    """Children's elem_ids in order, looking through the Form blocks Gradio wraps form components in."""
    ids: list[str] = []
    for child in block.children:
        ids += [child.elem_id] if child.elem_id else _child_ids(child)
    return ids


def test_invisible_component_stays_in_the_page_and_layouts_stay_invisible():
    with gradio.Blocks() as blocks:
        with gr.Row(visible=False, elem_id="row"):
            gr.Textbox(visible=False, elem_id="hidden_box")
        gr.Textbox(elem_id="shown_box")
    found = _props(blocks)
    assert found["hidden_box"]["props"]["visible"] == "hidden"  # Gradio 3: in the page, not shown
    assert found["row"]["props"]["visible"] is False
    assert found["shown_box"]["props"]["visible"] is True


def test_update_hides_a_component_but_not_a_layout():
    assert gr.Textbox.update(visible=False) == {"__type__": "update", "visible": "hidden"}
    assert gr.Textbox.update(visible=True, value="x") == {"__type__": "update", "visible": True, "value": "x"}
    assert gr.Row.update(visible=False) == {"__type__": "update", "visible": False}


def test_tabs_render_their_children_and_tab_item_is_the_same_alias():
    assert gr.TabItem is gr.Tab and gr.Tab is not gradio.Tab
    with gradio.Blocks() as blocks:
        with gr.Tabs(elem_id="tabs"), gr.TabItem("One", elem_id="one"):
            gr.Textbox(elem_id="inside")
    assert _props(blocks)["one"]["props"]["render_children"] is True


def test_components_beside_the_tabs_move_after_them():
    with gradio.Blocks() as blocks:
        with gr.Column(elem_id="column"):
            with gr.Tabs(elem_id="tabs") as tabs:
                with gr.Tab("One", elem_id="one"):
                    gr.Textbox(elem_id="inside")
                stray = gr.Textbox(visible=False, elem_id="stray")
            after = gr.Textbox(elem_id="after")
    assert [child.elem_id for child in tabs.children] == ["one"]
    column = next(block for block in blocks.blocks.values() if getattr(block, "elem_id", None) == "column")
    assert _child_ids(column) == ["tabs", "stray", "after"]
    assert stray.parent is not tabs and after.parent is stray.parent


def test_then_and_success_take_gradio3_keywords():
    with gradio.Blocks() as blocks:
        button = gr.Button("Go")
        box = gr.Textbox()
        (button.click(lambda: "a", None, box, _js="() => 1", show_progress=False)
         .then(lambda: "b", None, box, _js="() => 2", show_progress=True)
         .success(lambda: "c", None, box, _js="() => 3"))
    scripts = [dependency["js"] for dependency in blocks.get_config_file()["dependencies"]]
    assert scripts == ["() => 1", "() => 2", "() => 3"]
