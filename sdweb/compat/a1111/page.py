"""The page helpers A1111 extensions' javascript calls (page.js), with `opts` holding the current values of
the options A1111 extensions added (A1111 puts every option there; sdweb only theirs, so no secret leaks), the
tabs to build before onUiLoaded (img2img and the A1111 extensions' own) and A1111's element ids that sdweb's page
names differently."""

from __future__ import annotations

import json
from pathlib import Path

from sdweb.compat.a1111.modules.options import Options
from sdweb.compat.a1111.world import WORLD

PAGE_JS = Path(__file__).with_name("page.js")
# A1111's quicksettings ids -> the same controls in sdweb's page
A1111_IDS = {"setting_sd_model_checkpoint": "sd_model_checkpoint", "setting_sd_vae": "sd_vae",
             "setting_CLIP_stop_at_last_layers": "CLIP_stop_at_last_layers"}


def _script_value(value: object) -> str:
    return json.dumps(value, default=str, ensure_ascii=False).replace("</", "<\\/")


def page_javascript() -> str:
    values = Options().data
    options = {key: values.get(key, info.default) for key, info in WORLD.extension_options.items()}
    return (PAGE_JS.read_text(encoding="utf-8").replace("__OPTIONS__", _script_value(options))
            .replace("__RENDER_TABS__", _script_value(list(dict.fromkeys(["img2img", *WORLD.ui_tab_ids]))))
            .replace("__A1111_IDS__", _script_value(A1111_IDS)))
