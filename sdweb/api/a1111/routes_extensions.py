"""sdweb's own extension routes (A1111 has no HTTP API for these): list, install, check for updates,
update, remove. A1111's GET /sdapi/v1/extensions stays as it is (routes_info.py).

    GET  /sdweb/v1/extensions                 installed extensions (built-in and user), with load status and
                                              `needs_attention` (why, e.g. a requirement refused; else null)
    POST /sdweb/v1/extensions/install         {"url", "branch"?, "name"?}
    POST /sdweb/v1/extensions/check-updates   {"names"?: [...]}   (git fetch; all when names is omitted)
    POST /sdweb/v1/extensions/update          {"name"}
    POST /sdweb/v1/extensions/remove          {"name"}

Changes are refused with 403 on an exposed server (--listen, --server-name, ... without
--enable-insecure-extension-access), exactly as in the Extensions tab. The API auth middleware guards
these routes like /sdapi/v1. Installs and updates run in the request (a clone can take a while); the
installer's output comes back in `output`. Every change needs a restart to take effect.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sdweb.api.a1111.schemas_info import ErrorResponse
from sdweb.extensions.actions import ExtensionActions
from sdweb.extensions.installer import GitInfo
from sdweb.state import AppState

PREFIX = "/sdweb/v1/extensions"
REFUSED = {403: {"model": ErrorResponse, "description": "extension access disabled by command-line flags"}}
MAX_OUTPUT_LINES = 200


class InstallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2048, description="git URL (https, ssh or file://)")
    branch: str | None = Field(default=None, max_length=255, description="branch or tag; default: the remote's")
    name: str | None = Field(default=None, max_length=255, description="folder in extensions/; default from URL")


class NameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255, description="folder name in extensions/")


class NamesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    names: list[str] | None = Field(default=None, description="folder names; all installed when omitted")


def _git(info: GitInfo | None) -> dict[str, Any]:
    return {"remote": info.remote if info else None, "branch": info.branch if info else None,
            "commit_hash": info.commit_hash if info else None, "version": info.version if info else "",
            "commit_date": info.commit_date if info else None}


def _compat(ext: Any) -> dict[str, Any]:
    """Which API the extension was written for ("sdweb" / "A1111"; null: installed since this start), why it is
    incompatible, and why its install.py failed."""
    return {"api": ext.api if ext else None, "incompatible": ext.incompatible if ext else None,
            "install_error": ext.install_error if ext else None}


def _listing(state: AppState, actions: ExtensionActions) -> list[dict[str, Any]]:
    loaded = {ext.name: ext for ext in state.extensions.extensions} if state.extensions is not None else {}
    on_disk = {ext.name: ext for ext in actions.installed()}
    attention = actions.needing_attention()
    listed = []
    for name, ext in loaded.items():
        if ext.builtin:
            listed.append({"name": name, "builtin": True, "enabled": ext.enabled, "loaded": ext.loaded,
                           "error": ext.error, "needs_attention": None, "scripts": list(ext.scripts),
                           **_compat(ext), **_git(None)})
    for name, installed in on_disk.items():
        ext = loaded.get(name)
        listed.append({"name": name, "builtin": False, "enabled": ext.enabled if ext else None,
                       "loaded": ext.loaded if ext else False, "error": ext.error if ext else None,
                       "needs_attention": attention.get(name), "scripts": list(ext.scripts) if ext else [],
                       **_compat(ext), **_git(installed.git)})
    return listed


def _tail(lines: list[str]) -> list[str]:
    return lines[-MAX_OUTPUT_LINES:]


def extension_router(state: AppState) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["sdweb extensions"])
    actions = ExtensionActions.for_state(state)

    @router.get("", response_model=list[dict[str, Any]])
    def listing() -> list[dict[str, Any]]:
        """Built-in and installed extensions; `enabled`/`loaded` describe this run (null: installed since)."""
        return _listing(state, actions)

    @router.post("/install", response_model=dict[str, Any], responses=REFUSED)
    def install(body: InstallBody) -> dict[str, Any]:
        output: list[str] = []
        result = actions.install(body.url, body.branch, body.name, progress=output.append)
        return {"name": result.name, "path": str(result.path), "url": result.url, **_git(result.git),
                "requirements_rc": result.requirements_rc, "install_script_rc": result.install_script_rc,
                "warnings": list(result.warnings), "restart_required": result.restart_required,
                "output": _tail(output)}

    @router.post("/check-updates", response_model=list[dict[str, Any]], responses=REFUSED)
    def check_updates(body: NamesBody | None = None) -> list[dict[str, Any]]:
        statuses = actions.check_updates(body.names if body is not None else None)
        return [{"name": s.name, "status": s.status, "can_update": s.can_update, "behind": s.behind,
                 "local_commit": s.local_commit, "remote_commit": s.remote_commit, "message": s.message}
                for s in statuses]

    @router.post("/update", response_model=dict[str, Any], responses=REFUSED)
    def update(body: NameBody) -> dict[str, Any]:
        output: list[str] = []
        result = actions.update(body.name, progress=output.append)
        return {"name": result.name, "old_commit": result.old_commit, "new_commit": result.new_commit,
                "changed": result.changed, "restart_required": result.changed, "output": _tail(output)}

    @router.post("/remove", response_model=dict[str, Any], responses=REFUSED)
    def remove(body: NameBody) -> dict[str, Any]:
        path = actions.remove(body.name)
        return {"name": body.name, "removed": str(path), "restart_required": True}

    return router
