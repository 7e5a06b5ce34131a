"""What the Extensions tab's buttons do, without Gradio: plain functions of AppState and the form's values
that return text for the page (tests call them directly). Every change goes through ExtensionActions, so it
is refused on an exposed server exactly as in the API; a refusal or a UserError becomes the message shown.
Installs run in a background thread and their output is streamed (`stream_task`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sdweb.core.errors import UserError
from sdweb.extensions.actions import ExtensionActions
from sdweb.extensions.index import DEFAULT_INDEX_URL, INDEX_URL_ENV, IndexEntry, read_index
from sdweb.extensions.installer import Progress
from sdweb.state import AppState

log = logging.getLogger(__name__)

POLL_S = 0.25
RESTART_DELAY_S = 1.0
MAX_LOG_LINES = 400


def explain(error: UserError) -> str:
    return f"**{error.message}** {error.hint}".strip()


def default_index_url() -> str:
    return os.environ.get(INDEX_URL_ENV) or DEFAULT_INDEX_URL


# -- background tasks with streamed output ------------------------------------------------------------------
@dataclass
class Task:
    """One action running in a daemon thread (it finishes even if the page goes away)."""

    lines: list[str] = field(default_factory=list)
    message: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def output(self) -> str:
        return "\n".join(self.lines[-MAX_LOG_LINES:])


def start_task(work: Callable[[Progress], str], name: str) -> Task:
    task = Task()

    def run() -> None:
        try:
            task.message = work(task.lines.append)
        except UserError as error:
            task.message = explain(error)
            task.lines.append(f"{error.message} {error.hint}".strip())
        except Exception:  # noqa: BLE001 - report, never take the server down
            log.exception("Extension action %s failed", name)
            task.message = f"**{name} failed unexpectedly**; the server log has the details."
        finally:
            task.done.set()

    threading.Thread(target=run, name=f"sdweb-{name}", daemon=True).start()
    return task


def stream_task(task: Task, poll_s: float = POLL_S) -> Iterator[tuple[str, str]]:
    """(output so far, status) while the task runs, then (output, its final message)."""
    shown = -1
    while not task.done.wait(poll_s):
        if len(task.lines) != shown:
            shown = len(task.lines)
            yield task.output(), "Working…"
    yield task.output(), task.message


# -- install ---------------------------------------------------------------------------------------------------
def _install_work(actions: ExtensionActions, url: str, branch: str | None,
                  name: str | None) -> Callable[[Progress], str]:
    def work(progress: Progress) -> str:
        result = actions.install(url, branch, name, progress=progress)
        version = f" at {result.git.version}" if result.git and result.git.version else ""
        text = f"Installed **{result.name}**{version} into `{result.path}`."
        if result.warnings:
            text += " " + " ".join(result.warnings)
        progress(f"Installed {result.name}; restart sdweb to load it.")
        return text + " " + restart_hint()
    return work


def restart_hint() -> str:
    """How to load a new extension, naming the button as the Installed tab shows it."""
    if can_restart():
        return "Press Installed › **Apply and restart UI** to load it."
    return ("Press Installed › **Apply**, then stop sdweb and start it again to load it (started by webui.sh or "
            "webui.bat, sdweb can restart itself).")


def install_from_url(state: AppState, url: str, branch: str = "", name: str = "") -> Iterator[tuple[str, str]]:
    """Install from URL: refused at once on an exposed server, else cloned in the background with the
    installer's output streamed."""
    actions = ExtensionActions.for_state(state)
    refusal = actions.refusal()
    if refusal:
        yield "", f"**Refused.** {refusal}"
        return
    if not (url or "").strip():
        yield "", "**URL:** enter the git URL of the extension to install."
        return
    task = start_task(_install_work(actions, url.strip(), branch or None, name or None), "install")
    yield from stream_task(task)


def install_from_index(state: AppState, entries: list[IndexEntry], chosen: str) -> Iterator[tuple[str, str]]:
    """Install the index entry named `chosen` (the Available tab)."""
    entry = next((e for e in entries or [] if e.name == chosen), None)
    if entry is None:
        yield "", "**Extension:** choose one from the loaded index first (press Load from: to read it)."
        return
    yield from install_from_url(state, entry.url)


# -- available ---------------------------------------------------------------------------------------------------
def load_available(state: AppState, url: str) -> tuple[list[IndexEntry], str]:
    """Read the index (the only network use of this tab), entries marked with what is installed."""
    actions = ExtensionActions.for_state(state)
    installed = {ext.name: ext.remote for ext in actions.installed()}
    try:
        index = read_index((url or "").strip(), installed=installed)
    except UserError as error:
        return [], explain(error)
    skipped = f" ({index.skipped} malformed entries skipped)" if index.skipped else ""
    return list(index.entries), f"Loaded {len(index.entries)} extensions{skipped}."


# -- installed ---------------------------------------------------------------------------------------------------
def all_names(state: AppState) -> list[str]:
    """Loaded extensions, then folders installed since the start."""
    names = [ext.name for ext in state.extensions.extensions] if state.extensions is not None else []
    extra = [ext.name for ext in ExtensionActions.for_state(state).installed() if ext.name not in names]
    return names + extra


def enabled_names(state: AppState) -> list[str]:
    """What the Enabled checkboxes show: loaded and enabled, plus new folders not listed as disabled."""
    disabled = set(state.settings.get("disabled_extensions", []) or [])
    loaded = {ext.name: ext for ext in state.extensions.extensions} if state.extensions is not None else {}
    return [name for name in all_names(state)
            if (loaded[name].enabled if name in loaded else name not in disabled)]


def apply_choices(state: AppState, enabled: list[str], disable_all: str) -> tuple[str, bool]:
    """Save `disabled_extensions` / `disable_all_extensions`; (message, saved?). They apply at the next start."""
    refusal = ExtensionActions.for_state(state).refusal()
    if refusal:
        return f"**Refused.** {refusal}", False
    chosen = set(enabled or [])
    disabled = sorted(name for name in all_names(state) if name not in chosen)
    try:
        changed = state.settings.update({"disabled_extensions": disabled, "disable_all_extensions": disable_all})
    except UserError as error:
        return explain(error), False
    return ("Saved." if changed else "Nothing changed."), True


def can_restart() -> bool:
    """True when the launcher (webui.sh / webui.bat) runs sdweb in its restart loop."""
    return bool(os.environ.get("SD_WEBUI_RESTART"))


def restart_server(delay_s: float = RESTART_DELAY_S) -> None:
    """Leave the launcher's marker and end this process gracefully (uvicorn stops on SIGTERM); the launcher
    starts it again. Delayed so the page gets its answer first."""
    marker = Path(os.environ["SD_WEBUI_RESTART"])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("restart\n", encoding="utf-8")
    log.info("Restarting at the user's request (Extensions tab)")
    timer = threading.Timer(delay_s, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()


def apply_and_restart(state: AppState, enabled: list[str], disable_all: str,
                      restart: Callable[[], None] | None) -> tuple[str, bool]:
    """Save the choices, then restart through `restart` (None: not started by the launcher).
    (message, restarting?)"""
    message, saved = apply_choices(state, enabled, disable_all)
    if not saved:
        return message, False
    if restart is None:
        return (f"{message} Restart sdweb to apply: this server was not started by webui.sh / webui.bat, "
                "so it cannot restart itself."), False
    restart()
    return f"{message} Restarting sdweb… the page reloads when it is back.", True


def check_updates(state: AppState) -> tuple[dict[str, str], list[str], str]:
    """`git fetch` every installed extension: (status by name, names that can update, message)."""
    try:
        statuses = ExtensionActions.for_state(state).check_updates()
    except UserError as error:
        return {}, [], explain(error)
    by_name = {s.name: s.status + (f" ({s.behind} behind)" if s.behind else "") for s in statuses}
    behind = [s.name for s in statuses if s.can_update]
    if not statuses:
        return by_name, behind, "No installed extensions to check."
    found = f"Updates for: {', '.join(behind)}." if behind else "Everything is up to date."
    return by_name, behind, f"Checked {len(statuses)} extensions. {found}"


def update_selected(state: AppState, names: list[str]) -> tuple[str, str]:
    """Fast-forward each chosen extension: (output, message)."""
    if not names:
        return "", "**Update:** run Check for updates and tick the extensions to update."
    actions = ExtensionActions.for_state(state)
    refusal = actions.refusal()
    if refusal:
        return "", f"**Refused.** {refusal}"
    lines: list[str] = []
    done, failed = [], []
    for name in names:
        try:
            result = actions.update(name, progress=lines.append)
        except UserError as error:
            lines.append(f"{name}: {error.message} {error.hint}".strip())
            failed.append(f"{name} ({error.message})")
            continue
        done.append(f"{name} {(result.old_commit or '?')[:8]} → {(result.new_commit or '?')[:8]}")
    message = f"Updated {', '.join(done)}; restart to load the new code." if done else "Nothing updated."
    if failed:
        message += f" **Failed:** {', '.join(failed)}"
    return "\n".join(lines[-MAX_LOG_LINES:]), message


def remove_extension(state: AppState, name: str, confirmed: bool) -> str:
    if not name:
        return "**Remove:** choose the extension to remove."
    if not confirmed:
        return f"**Remove:** tick “Yes, delete {name}” first; its folder and everything in it is deleted."
    try:
        path = ExtensionActions.for_state(state).remove(name)
    except UserError as error:
        return explain(error)
    return f"Removed **{name}** ({path}). Restart sdweb to unload it."


def removable_names(state: AppState) -> list[str]:
    return [ext.name for ext in ExtensionActions.for_state(state).installed()]


def update_choices(statuses: Mapping[str, str]) -> list[str]:
    return [name for name, status in statuses.items() if status.startswith("new commits")]
