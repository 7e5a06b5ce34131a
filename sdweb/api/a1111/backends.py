"""The API's default backends, built from AppState: the extension layer's scripts and installed extensions.

Postprocessing (Extras, interrogate) is plugged in by passing an adapter (seams.PostprocessBackend, e.g.
sdweb.postprocess.api_adapter.PostprocessApiAdapter) to default_backends; without one those routes are 501.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sdweb.api.a1111.seams import ApiBackends, PostprocessBackend, ScriptDescription
from sdweb.extensions.installer import list_installed
from sdweb.extensions.loader import ExtensionSet
from sdweb.extensions.scripts import ScriptRunner
from sdweb.state import AppState


class RunnerCatalog:
    """ScriptCatalog over the extension layer's ScriptRunner (what its `bind` will run for a request)."""

    def __init__(self, runner: ScriptRunner) -> None:
        self.runner = runner

    def scripts(self, mode: str) -> Sequence[ScriptDescription]:
        is_img2img = mode == "img2img"
        always, selectable = self.runner.visible(is_img2img)
        found = []
        for loaded, is_alwayson in [*((s, True) for s in always), *((s, False) for s in selectable)]:
            # Only the components' initial values are known without building the UI (no gradio here).
            args = tuple({"label": None, "value": value} for value in self.runner.defaults(loaded, is_img2img))
            found.append(ScriptDescription(loaded.script.title(), is_alwayson, is_img2img, args))
        return found


class InstalledExtensions:
    """GET /extensions: the git checkouts in extensions/ (A1111 lists only those), enabled or not."""

    def __init__(self, loaded: ExtensionSet, folder: Any) -> None:
        self.loaded = loaded
        self.folder = folder

    def extensions(self) -> list[dict[str, Any]]:
        listed = []
        for installed in list_installed(self.folder):
            if installed.git is None:
                continue
            loaded = self.loaded.find(installed.name)
            listed.append({"name": installed.name, "remote": installed.git.remote or "",
                           "branch": installed.git.branch or "", "commit_hash": installed.git.commit_hash or "",
                           "version": installed.git.version, "commit_date": installed.git.commit_date or 0,
                           "enabled": bool(loaded.enabled) if loaded is not None else False})
        return listed


def default_backends(state: AppState, postprocess: PostprocessBackend | None = None) -> ApiBackends:
    """Scripts and extensions from state.extensions (when loaded), and `postprocess` when given, e.g.
    `default_backends(state, PostprocessApiAdapter(state.service.postprocess))` in server.create_app."""
    backends = ApiBackends(postprocess=postprocess)
    if state.extensions is not None:
        backends = replace(backends, scripts=RunnerCatalog(state.extensions.runner),
                           extensions=InstalledExtensions(state.extensions, state.paths.extensions))
    return backends
