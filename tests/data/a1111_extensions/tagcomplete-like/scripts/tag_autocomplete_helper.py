# Same imports and hooks as a1111-sd-webui-tagcomplete's scripts/tag_autocomplete_helper.py
from pathlib import Path

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from modules import script_callbacks, scripts, sd_hijack, shared
from modules.paths import script_path
from modules.shared import opts

EXT_PATH = Path(scripts.basedir())
TAGS_PATH = EXT_PATH.joinpath("tags")
# the javascript reads where the tags are through A1111's file= route, from the webui folder's tmp/
STATIC_TEMP_PATH = Path(script_path).joinpath("tmp")
STATIC_TEMP_PATH.mkdir(parents=True, exist_ok=True)
STATIC_TEMP_PATH.joinpath("tagAutocompletePath.txt").write_text(str(TAGS_PATH), encoding="utf-8")


def on_ui_settings():
    section = ("tac", "Tag Autocomplete")
    shared.opts.add_option("tac_active", shared.OptionInfo(True, "Enable Tag Autocompletion", section=section))
    shared.opts.add_option("tac_maxResults", shared.OptionInfo(
        5, "Maximum results", gr.Slider, {"minimum": 1, "maximum": 50, "step": 1}, section=section))
    shared.opts.add_option("tac_tagFile", shared.OptionInfo(
        "danbooru.csv", "Tag filename", gr.Dropdown, lambda: {"choices": ["danbooru.csv"]}, section=section))


def api_tac(_: gr.Blocks, app: FastAPI):
    @app.get("/tacapi/v1/tags")
    async def get_tags():
        return PlainTextResponse(TAGS_PATH.joinpath(opts.tac_tagFile).read_text(encoding="utf-8"))

    @app.get("/tacapi/v1/embeddings")
    async def get_embeddings():
        return sorted(sd_hijack.model_hijack.embedding_db.word_embeddings.keys())


script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_app_started(api_tac)
