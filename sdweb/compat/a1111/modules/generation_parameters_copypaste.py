"""A1111's older name for modules.infotext_utils."""

from sdweb.compat.a1111.modules.infotext_utils import (
    ParamBinding,
    add_paste_fields,
    bind_buttons,
    create_buttons,
    image_from_url_text,
    parse_generation_parameters,
    paste_fields,
    register_paste_params_button,
    registered_param_bindings,
)

__all__ = ["ParamBinding", "add_paste_fields", "bind_buttons", "create_buttons", "image_from_url_text",
           "parse_generation_parameters", "paste_fields", "register_paste_params_button", "registered_param_bindings"]
