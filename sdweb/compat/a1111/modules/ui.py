"""A1111's `modules.ui`: the helpers extensions import from it (most live in ui_common)."""

from sdweb.compat.a1111.modules.ui_common import (
    create_refresh_button,
    folder_symbol,
    plaintext_to_html,
    refresh_symbol,
)

__all__ = ["create_refresh_button", "folder_symbol", "plaintext_to_html", "refresh_symbol", "save_style_symbol"]

save_style_symbol = "\U0001f4be"
apply_style_symbol = "\U0001f4cb"
