"""Styles in txt2img / img2img as A1111: the Styles multi-select beside the prompt (applied at generation),
📋 writes the selected styles into the prompts, 🖌️ opens the style editor (create, edit, delete), which saves
styles.csv atomically (the old file kept as styles.csv.bak) and refreshes every Styles list on the page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.prompts.styles import PromptStyle, StyleDatabase
from sdweb.ui.common import PromptRow, user_error


@dataclass
class StyleEditor:
    group: gr.Column
    name: gr.Dropdown
    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    copy: gr.Button  # take the main prompts into the editor
    save: gr.Button
    delete: gr.Button
    close: gr.Button
    message: gr.Markdown


def build_style_editor(tab: str, names: Sequence[str]) -> StyleEditor:
    with gr.Column(visible=False, variant="panel", elem_id=f"{tab}_styles_dialog") as group:
        with gr.Row(equal_height=False, elem_classes=["sdweb-align-end"]):
            name = gr.Dropdown(label="Style (pick one to edit, or type a new name)", choices=list(names), value=None,
                               allow_custom_value=True, scale=3, elem_id=f"{tab}_edit_style_name")
            copy = gr.Button("Copy the main prompts", size="sm", scale=0, min_width=200,
                             elem_id=f"{tab}_style_copy")
        prompt = gr.Textbox(label="Prompt", lines=2, elem_id=f"{tab}_edit_style_prompt",
                            placeholder="{prompt} marks where your prompt goes; without it the style is appended.")
        negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{tab}_edit_style_neg_prompt")
        with gr.Row(elem_classes=["sdweb-align-end"]):
            save = gr.Button("Save", variant="primary", scale=0, min_width=120, elem_id=f"{tab}_edit_style_save")
            delete = gr.Button("Delete", variant="stop", scale=0, min_width=120, elem_id=f"{tab}_edit_style_delete")
            close = gr.Button("Close", scale=0, min_width=120, elem_id=f"{tab}_edit_style_close")
            message = gr.Markdown("", elem_id=f"{tab}_edit_style_message")
    return StyleEditor(group=group, name=name, prompt=prompt, negative_prompt=negative, copy=copy, save=save,
                       delete=delete, close=close, message=message)


def applied_to_prompts(database: StyleDatabase, prompt: str, negative: str,
                       selected: Sequence[str] | None) -> tuple[str, str, list[str]]:
    """📋: the prompts with the selected styles written in, and the selection emptied (A1111)."""
    styled, styled_negative, _ = database.apply(prompt or "", negative or "", list(selected or []))
    return styled, styled_negative, []


def _style_fields(database: StyleDatabase, name: str | None) -> tuple[str, str]:
    style = database.get(name) if name else None
    return (style.prompt, style.negative_prompt) if style is not None else (gr.skip(), gr.skip())


def save_style(database: StyleDatabase, name: str | None, prompt: str, negative: str) -> str:
    name = (name or "").strip()
    if not name:
        raise user_error("Style: type a name for the style first.")
    try:
        saved = database.save_style(PromptStyle(name, prompt or "", negative or ""))
    except OSError as error:
        raise user_error(f"Could not save the style to {database.default_path}: {error.strerror or error}.") from None
    return f"Saved style **{name}** to {saved.path.name if saved.path else 'styles.csv'}."


def delete_style(database: StyleDatabase, name: str | None) -> str:
    if not name or database.get(name) is None:
        raise user_error(f"There is no style named {name!r} to delete.")
    try:
        database.delete_style(name)
    except OSError as error:
        raise user_error(f"Could not update the styles file: {error.strerror or error}.") from None
    return f"Deleted style **{name}**."


def wire_styles(database: StyleDatabase, pairs: Sequence[tuple[PromptRow, StyleEditor]]) -> None:
    """Wire each tab's buttons; a save or delete in one tab refreshes the Styles lists of all of them."""
    dropdowns = [component for row, editor in pairs for component in (row.styles, editor.name)]

    def refreshed(kept: Sequence[Sequence[str] | None], name: str | None) -> list[Any]:
        names = database.names()
        updates: list[Any] = []
        for selected in kept:
            updates.append(gr.Dropdown(choices=names, value=[n for n in (selected or []) if n in names]))
            updates.append(gr.Dropdown(choices=names, value=name if name in names else None))
        return updates

    selections = [row.styles for row, _ in pairs]
    for row, editor in pairs:
        row.apply_styles.click(lambda prompt, negative, selected: applied_to_prompts(database, prompt, negative,
                                                                                     selected),
                               inputs=[row.prompt, row.negative_prompt, row.styles],
                               outputs=[row.prompt, row.negative_prompt, row.styles], api_visibility="private")
        row.edit_styles.click(lambda selected: (gr.Column(visible=True), (selected or [None])[0], ""),
                              inputs=row.styles, outputs=[editor.group, editor.name, editor.message],
                              api_visibility="private")
        editor.close.click(lambda: gr.Column(visible=False), outputs=editor.group, queue=False,
                           api_visibility="private")
        editor.name.change(lambda name: _style_fields(database, name), inputs=editor.name,
                           outputs=[editor.prompt, editor.negative_prompt], show_progress="hidden",
                           api_visibility="private")
        editor.copy.click(lambda prompt, negative: (prompt, negative), inputs=[row.prompt, row.negative_prompt],
                          outputs=[editor.prompt, editor.negative_prompt], queue=False, api_visibility="private")

        def on_save(name: str | None, prompt: str, negative: str, *kept: Any) -> list[Any]:
            message = save_style(database, name, prompt, negative)
            return [message, *refreshed(kept, (name or "").strip())]

        def on_delete(name: str | None, *kept: Any) -> list[Any]:
            message = delete_style(database, name)
            return [message, *refreshed(kept, None)]

        editor.save.click(on_save, inputs=[editor.name, editor.prompt, editor.negative_prompt, *selections],
                          outputs=[editor.message, *dropdowns], api_visibility="private")
        editor.delete.click(on_delete, inputs=[editor.name, *selections], outputs=[editor.message, *dropdowns],
                            api_visibility="private")
