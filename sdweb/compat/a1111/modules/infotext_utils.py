"""A1111's `modules.infotext_utils` (formerly generation_parameters_copypaste): parsing infotext, and the
"send to" registrations (accepted; sdweb's own send buttons do the sending)."""

from __future__ import annotations

from typing import Any

from sdweb.infotext import parse_infotext

paste_fields: dict[str, Any] = {}
registered_param_bindings: list[Any] = []


class ParamBinding:
    def __init__(self, paste_button: Any, tabname: str, source_text_component: Any = None,
                 source_image_component: Any = None, source_tabname: str | None = None,
                 override_settings_component: Any = None, paste_field_names: list[str] | None = None) -> None:
        self.paste_button, self.tabname = paste_button, tabname
        self.source_text_component, self.source_image_component = source_text_component, source_image_component
        self.source_tabname, self.paste_field_names = source_tabname, paste_field_names or []


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None) -> dict[str, Any]:
    """The infotext as A1111's dict (Prompt, Negative prompt, Steps, ...), sdweb's parser."""
    parsed = dict(parse_infotext(x or ""))
    for key in skip_fields or []:
        parsed.pop(key, None)
    return parsed


def register_paste_params_button(binding: ParamBinding) -> None:
    registered_param_bindings.append(binding)


def add_paste_fields(tabname: str, init_img: Any, fields: Any, override_settings_component: Any = None) -> None:
    paste_fields[tabname] = {"init_img": init_img, "fields": fields}


def create_buttons(tabs_list: list[str]) -> dict[str, Any]:
    from sdweb.compat.a1111 import gradio3 as gr

    return {tab: gr.Button(f"Send to {tab}", elem_id=f"{tab}_tab") for tab in tabs_list}


def bind_buttons(buttons: dict[str, Any], send_image: Any, send_generate_info: Any) -> None:
    return None


def image_from_url_text(filedata: Any) -> Any:
    return filedata
