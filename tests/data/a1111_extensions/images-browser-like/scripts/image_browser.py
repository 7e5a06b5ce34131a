# Same imports and hooks as sd-webui-images-browser's scripts/image_browser.py (Gradio 3 style).
import os

import gradio as gr
import modules.generation_parameters_copypaste as parameters_copypaste
from modules import script_callbacks, shared
from modules.shared import opts
from modules.ui_components import ToolButton

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def list_outputs():
    root = opts.outdir_samples or os.path.join(shared.data_path, "outputs")
    found = []
    for folder, _dirs, files in os.walk(root):
        found += [os.path.join(folder, name) for name in sorted(files) if name.lower().endswith(IMAGE_SUFFIXES)]
    return found


def on_ui_tabs():
    with gr.Blocks(analytics_enabled=False) as image_browser:
        with gr.Box(), gr.Row().style(equal_height=True):
            refresh = ToolButton(value="\U0001f504", elem_id="image_browser_refresh")
            listing = gr.Textbox(label="Images", lines=4, elem_id="image_browser_list")
        refresh.click(fn=lambda: gr.Textbox.update(value="\n".join(list_outputs())), inputs=[], outputs=[listing],
                      _js="() => []")
        assert callable(parameters_copypaste.parse_generation_parameters)
    return [(image_browser, "Image Browser", "image_browser")]


script_callbacks.on_ui_tabs(on_ui_tabs)
