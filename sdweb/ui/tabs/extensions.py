"""The Extensions tab: Installed (enable/disable, status, errors; apply and restart)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.core.errors import UserError
from sdweb.state import AppState

DISABLE_ALL = ("none", "extra", "all")


@dataclass
class ExtensionsTab:
    enabled: gr.CheckboxGroup
    disable_all: gr.Radio
    apply: gr.Button
    table: gr.HTML
    result: gr.Markdown


def status_of(extension: Any) -> str:
    if not extension.enabled:
        return "disabled"
    if extension.error:
        return f"failed: {extension.error}"
    return "loaded" if extension.loaded else "not loaded"


def installed_table(state: AppState) -> str:
    """An HTML table of every extension found: name, kind, status (with the error), scripts."""
    extensions = state.extensions.extensions if state.extensions is not None else []
    if not extensions:
        return "<p>No extensions found. Put extensions in the <code>extensions/</code> folder.</p>"
    rows = []
    for extension in extensions:
        status = status_of(extension)
        css = "sdweb-ext-error" if extension.error else ""
        rows.append(f"<tr class='{css}'><td>{html.escape(extension.name)}</td>"
                    f"<td>{'built-in' if extension.builtin else 'user'}</td><td>{html.escape(status)}</td>"
                    f"<td>{html.escape(', '.join(extension.scripts))}</td></tr>")
    return ("<table class='sdweb-extensions'><thead><tr><th>Extension</th><th>Kind</th><th>Status</th>"
            f"<th>Scripts</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def apply_choices(state: AppState, enabled: list[str], disable_all: str) -> str:
    """Save `disabled_extensions` / `disable_all_extensions`; they take effect at the next start."""
    names = [ext.name for ext in state.extensions.extensions] if state.extensions is not None else []
    disabled = sorted(name for name in names if name not in set(enabled or []))
    try:
        changed = state.settings.update({"disabled_extensions": disabled, "disable_all_extensions": disable_all})
    except UserError as error:
        raise gr.Error(f"{error.message} {error.hint}".strip()) from None
    if not changed:
        return "Nothing changed."
    return ("Saved. Restart sdweb to apply (with the launcher, use the API's server-restart or restart "
            "`webui.sh`).")


def build_extensions_tab(state: AppState) -> ExtensionsTab:
    extensions = state.extensions.extensions if state.extensions is not None else []
    names = [ext.name for ext in extensions]
    with gr.Tabs(elem_id="tabs_extensions"), gr.Tab("Installed", elem_id="extensions_installed_tab"):
        with gr.Row():
            apply = gr.Button("Apply (restart to take effect)", variant="primary", scale=0, min_width=260,
                              elem_id="extensions_apply")
            result = gr.Markdown("", elem_id="extensions_result")
        enabled = gr.CheckboxGroup(label="Enabled extensions", choices=names,
                                   value=[ext.name for ext in extensions if ext.enabled],
                                   elem_id="extensions_enabled")
        disable_all = gr.Radio(label="Disable all extensions", choices=list(DISABLE_ALL),
                               value=str(state.settings.get("disable_all_extensions", "none")),
                               elem_id="extensions_disable_all")
        table = gr.HTML(installed_table(state), elem_id="extensions_table")
    apply.click(lambda chosen, mode: apply_choices(state, chosen, mode), inputs=[enabled, disable_all],
                outputs=result, api_visibility="private")
    return ExtensionsTab(enabled=enabled, disable_all=disable_all, apply=apply, table=table, result=result)
