"""The page helpers A1111 extensions' javascript calls (page.js), with `opts` holding the current values of
the options A1111 extensions added (A1111 puts every option there; sdweb only theirs, so no secret leaks)."""

from __future__ import annotations

import json
from pathlib import Path

from sdweb.compat.a1111.modules.options import Options
from sdweb.compat.a1111.world import WORLD

PAGE_JS = Path(__file__).with_name("page.js")


def page_javascript() -> str:
    values = Options().data
    options = {key: values.get(key, info.default) for key, info in WORLD.extension_options.items()}
    text = json.dumps(options, default=str, ensure_ascii=False).replace("</", "<\\/")
    return PAGE_JS.read_text(encoding="utf-8").replace("__OPTIONS__", text)
