"""A1111's `modules.ui_common`: the refresh button and the output panel helpers extensions reuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdweb.compat.a1111 import gradio3 as gr
from sdweb.compat.a1111.modules.ui_components import ToolButton

refresh_symbol = "\U0001f504"
folder_symbol = "\U0001f4c2"


def create_refresh_button(refresh_component: Any, refresh_method: Callable[[], None],
                          refreshed_args: Any, elem_id: str) -> Any:
    """A button that calls `refresh_method`, then updates the component(s) with `refreshed_args`."""
    components = refresh_component if isinstance(refresh_component, list) else [refresh_component]

    def refresh() -> list[Any]:
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        return [gr.update(**(args or {})) for _ in components]

    button = ToolButton(value=refresh_symbol, elem_id=elem_id)
    button.click(fn=refresh, inputs=[], outputs=components)
    return button


def plaintext_to_html(text: str, classname: str | None = None) -> str:
    import html

    content = "<br>\n".join(html.escape(line) for line in (text or "").split("\n"))
    return f"<p class='{classname}'>{content}</p>" if classname else f"<p>{content}</p>"
