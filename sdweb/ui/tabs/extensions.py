"""The Extensions tab: Installed (enable/disable, check for updates, update, remove, apply and restart),
Available (A1111's index, loaded only when asked) and Install from URL. Thin: the work is in
extensions_handlers.py (no Gradio) and sdweb.extensions.actions; the tables are in extensions_tables.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from sdweb.extensions.actions import ExtensionActions
from sdweb.extensions.index import IndexEntry
from sdweb.state import AppState
from sdweb.ui.tabs import extensions_handlers as handlers
from sdweb.ui.tabs.extensions_tables import available_html, filter_entries, installed_html, status_of

__all__ = ["DISABLE_ALL", "ExtensionsTab", "build_extensions_tab", "installed_table", "status_of"]

DISABLE_ALL = ("none", "extra", "all")
TABLE_CSS = """<style>
.sdweb-ext-scroll { overflow-x: auto; max-height: 60vh; overflow-y: auto; }
table.sdweb-extensions { border-collapse: collapse; width: 100%; font-size: 0.9em; }
table.sdweb-extensions th, table.sdweb-extensions td { padding: 0.3em 0.6em; text-align: left;
  vertical-align: top; border-bottom: 1px solid var(--border-color-primary); }
table.sdweb-extensions th { position: sticky; top: 0; background: var(--background-fill-secondary); }
table.sdweb-extensions td a { word-break: break-all; }
tr.sdweb-ext-error td { color: var(--error-text-color, #c00); }
tr.sdweb-ext-new td { font-style: italic; }
table.sdweb-installed td:nth-child(2), table.sdweb-installed td:nth-child(7) { white-space: nowrap; }
</style>"""
# After "Apply and restart UI": wait until the old server is gone (it stops within a few seconds, open tabs
# included), then reload the page as soon as the new one answers.
RELOAD_WHEN_BACK_JS = """
(enabled, mode) => {
  const ping = () => fetch("./internal/ping", {cache: "no-store"}).then((r) => r.ok, () => false);
  const started = Date.now();
  const waitBack = async () => (await ping()) ? window.location.reload() : setTimeout(waitBack, 1000);
  const waitGone = async () => (await ping()) && Date.now() - started < 20000 ? setTimeout(waitGone, 500) : waitBack();
  setTimeout(waitGone, 500);
  return [enabled, mode];
}
"""


@dataclass
class ExtensionsTab:
    enabled: gr.CheckboxGroup
    disable_all: gr.Radio
    apply: gr.Button
    table: gr.HTML
    result: gr.Markdown
    install_url: gr.Textbox
    install_log: gr.Textbox
    index_url: gr.Textbox


def installed_table(state: AppState, updates: dict[str, str] | None = None) -> str:
    """Every extension found (loaded this run or installed since) with git state and update status."""
    loaded = state.extensions.extensions if state.extensions is not None else []
    actions = ExtensionActions.for_state(state)
    return TABLE_CSS + installed_html(loaded, actions.installed(), updates, actions.needing_attention())


def _access_note(state: AppState) -> str:
    refusal = ExtensionActions.for_state(state).refusal()
    return f"**Installing, updating and removing is disabled.** {refusal}" if refusal else ""


def _installed_updates(state: AppState, updates: dict[str, str]) -> tuple[Any, ...]:
    """Fresh table, Enabled checkboxes and Remove choices after anything changed."""
    names = handlers.all_names(state)
    return (installed_table(state, updates),
            gr.update(choices=names, value=handlers.enabled_names(state)),
            gr.update(choices=handlers.removable_names(state), value=None))


def _build_installed(state: AppState) -> dict[str, Any]:
    restartable = handlers.can_restart()
    ui: dict[str, Any] = {"updates": gr.State({})}
    with gr.Row(equal_height=True):
        ui["apply"] = gr.Button("Apply and restart UI" if restartable else "Apply", variant="primary", size="md",
                                scale=0, min_width=200, elem_id="extensions_apply")
        ui["check"] = gr.Button("Check for updates", size="md", scale=0, min_width=200,
                                elem_id="extensions_check_updates")
        ui["result"] = gr.Markdown("", elem_id="extensions_result")
    ui["enabled"] = gr.CheckboxGroup(label="Enabled extensions (untick to disable at the next start)",
                                     choices=handlers.all_names(state), value=handlers.enabled_names(state),
                                     elem_id="extensions_enabled")
    ui["disable_all"] = gr.Radio(label="Disable all extensions", choices=list(DISABLE_ALL),
                                 value=str(state.settings.get("disable_all_extensions", "none")),
                                 elem_id="extensions_disable_all")
    ui["table"] = gr.HTML(installed_table(state), elem_id="extensions_table")
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            ui["to_update"] = gr.CheckboxGroup(label="Extensions with updates (Check for updates first)",
                                               choices=[], elem_id="extensions_to_update")
            ui["update"] = gr.Button("Update selected", size="md", elem_id="extensions_update")
        with gr.Column(scale=1, min_width=320):
            ui["remove_name"] = gr.Dropdown(label="Remove extension", choices=handlers.removable_names(state),
                                            value=None, elem_id="extensions_remove_name")
            ui["remove_confirm"] = gr.Checkbox(label="Yes, delete its folder", value=False,
                                               elem_id="extensions_remove_confirm")
            ui["remove"] = gr.Button("Remove", variant="stop", size="md", elem_id="extensions_remove")
    ui["log"] = gr.Textbox(label="Output", lines=4, max_lines=12, interactive=False, elem_id="extensions_log")
    return ui


def _wire_installed(state: AppState, ui: dict[str, Any]) -> None:
    refreshed = [ui["table"], ui["enabled"], ui["remove_name"]]
    restart = handlers.restart_server if handlers.can_restart() else None

    def on_apply(chosen: list[str], mode: str) -> str:
        message, restarting = handlers.apply_and_restart(state, chosen, mode, restart)
        if restart is not None and not restarting:  # an error here stops the page from waiting to reload
            raise gr.Error(message.replace("**", ""))
        return message

    apply_event = ui["apply"].click(on_apply, inputs=[ui["enabled"], ui["disable_all"]], outputs=ui["result"],
                                    api_visibility="private")
    if restart is not None:
        apply_event.success(None, inputs=[ui["enabled"], ui["disable_all"]], js=RELOAD_WHEN_BACK_JS,
                            api_visibility="private")

    def on_check() -> tuple[Any, ...]:
        statuses, behind, message = handlers.check_updates(state)
        return (statuses, message, gr.update(choices=behind, value=behind),
                *_installed_updates(state, statuses))

    ui["check"].click(on_check, outputs=[ui["updates"], ui["result"], ui["to_update"], *refreshed],
                      api_visibility="private")

    def on_update(names: list[str], statuses: dict[str, str]) -> tuple[Any, ...]:
        output, message = handlers.update_selected(state, names)
        return (output, message, gr.update(choices=[], value=[]), *_installed_updates(state, {}))

    ui["update"].click(on_update, inputs=[ui["to_update"], ui["updates"]],
                       outputs=[ui["log"], ui["result"], ui["to_update"], *refreshed], api_visibility="private")

    def on_remove(name: str, confirmed: bool, statuses: dict[str, str]) -> tuple[Any, ...]:
        message = handlers.remove_extension(state, name, confirmed)
        return (message, False, *_installed_updates(state, statuses))

    ui["remove"].click(on_remove, inputs=[ui["remove_name"], ui["remove_confirm"], ui["updates"]],
                       outputs=[ui["result"], ui["remove_confirm"], *refreshed], api_visibility="private")


def _build_available(state: AppState, installed: dict[str, Any]) -> gr.Textbox:
    entries = gr.State([])
    with gr.Row(equal_height=True):
        load = gr.Button("Load from:", variant="primary", size="md", scale=0, min_width=140,
                         elem_id="extensions_load_index")
        url = gr.Textbox(value=handlers.default_index_url(), show_label=False, container=False, scale=1,
                         elem_id="extensions_index_url")
    with gr.Row(equal_height=True):
        search = gr.Textbox(label="Search", placeholder="words in name, description or tags", scale=2,
                            elem_id="extensions_search")
        hide_installed = gr.Checkbox(label="Hide installed", value=True, scale=0, min_width=160,
                                     elem_id="extensions_hide_installed")
    with gr.Row():
        chosen = gr.Dropdown(label="Extension to install", choices=[], value=None, scale=2,
                             elem_id="extensions_available_name")
        install = gr.Button("Install", variant="primary", size="md", scale=0, min_width=140,
                            elem_id="extensions_install_named")
    message = gr.Markdown("", elem_id="extensions_available_result")
    log = gr.Textbox(label="Output", lines=4, max_lines=12, interactive=False, autoscroll=True,
                     elem_id="extensions_available_log")
    table = gr.HTML(TABLE_CSS + available_html([], 0), elem_id="extensions_available_table")

    def shown(items: list[IndexEntry], words: str, hide: bool) -> tuple[Any, Any]:
        kept = filter_entries(items, words, hide)
        names = [entry.name for entry in kept if not entry.installed]
        return TABLE_CSS + available_html(kept, len(items)), gr.update(choices=names, value=None)

    def on_load(location: str, words: str, hide: bool) -> tuple[Any, ...]:
        items, text = handlers.load_available(state, location)
        return (items, text, *shown(items, words, hide))

    load.click(on_load, inputs=[url, search, hide_installed], outputs=[entries, message, table, chosen],
               api_visibility="private")
    for control in (search, hide_installed):
        control.change(shown, inputs=[entries, search, hide_installed], outputs=[table, chosen],
                       api_visibility="private", queue=False)

    def on_install(items: list[IndexEntry], name: str) -> Iterator[tuple[str, str]]:
        yield from handlers.install_from_index(state, items, name)

    install.click(on_install, inputs=[entries, chosen], outputs=[log, message], api_visibility="private").then(
        lambda statuses: _installed_updates(state, statuses), inputs=installed["updates"],
        outputs=[installed["table"], installed["enabled"], installed["remove_name"]], api_visibility="private")
    return url


def _build_install_from_url(state: AppState, installed: dict[str, Any]) -> tuple[gr.Textbox, gr.Textbox]:
    url = gr.Textbox(label="URL for extension's git repository", placeholder="https://github.com/user/extension",
                     elem_id="extensions_install_url")
    with gr.Row(equal_height=True):
        branch = gr.Textbox(label="Specific branch name", placeholder="leave empty for the default branch",
                            elem_id="extensions_install_branch")
        folder = gr.Textbox(label="Local directory name", placeholder="leave empty for the repository's name",
                            elem_id="extensions_install_dirname")
    install = gr.Button("Install", variant="primary", size="md", elem_id="extensions_install_button")
    message = gr.Markdown("", elem_id="extensions_install_result")
    log = gr.Textbox(label="Output", lines=8, max_lines=20, interactive=False, autoscroll=True,
                     elem_id="extensions_install_log")

    def on_install(link: str, name_of_branch: str, name: str) -> Iterator[tuple[str, str]]:
        yield from handlers.install_from_url(state, link, name_of_branch, name)

    install.click(on_install, inputs=[url, branch, folder], outputs=[log, message], api_visibility="private").then(
        lambda statuses: _installed_updates(state, statuses), inputs=installed["updates"],
        outputs=[installed["table"], installed["enabled"], installed["remove_name"]], api_visibility="private")
    return url, log


def build_extensions_tab(state: AppState) -> ExtensionsTab:
    note = _access_note(state)
    if note:
        gr.Markdown(note, elem_id="extensions_access_note")
    with gr.Tabs(elem_id="tabs_extensions"):
        with gr.Tab("Installed", elem_id="extensions_installed_tab"):
            installed = _build_installed(state)
        with gr.Tab("Available", elem_id="extensions_available_tab"):
            index_url = _build_available(state, installed)
        with gr.Tab("Install from URL", elem_id="extensions_install_tab"):
            install_url, install_log = _build_install_from_url(state, installed)
    _wire_installed(state, installed)
    return ExtensionsTab(enabled=installed["enabled"], disable_all=installed["disable_all"],
                         apply=installed["apply"], table=installed["table"], result=installed["result"],
                         install_url=install_url, install_log=install_log, index_url=index_url)
