"""The API's default backends, built from AppState: the extension layer's scripts and installed extensions,
and postprocessing (Extras, interrogate) through sdweb.postprocess.api_adapter.PostprocessApiAdapter over the
app's PostprocessService, its GPU work run as jobs of the shared queue. `mount_api` with an ApiBackends
whose `postprocess` is None leaves those routes at 501 (the seam tests use that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from sdweb.api.a1111.seams import ApiBackends, PostprocessBackend, ScriptDescription
from sdweb.extensions.installer import list_installed
from sdweb.extensions.loader import ExtensionSet
from sdweb.extensions.scripts import ScriptRunner
from sdweb.postprocess.api_adapter import PostprocessApiAdapter
from sdweb.postprocess.service import PostprocessService
from sdweb.state import AppState, ExtrasJob


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


class QueuedPostprocess:
    """The PostprocessService methods the API adapter calls, with Extras and interrogation submitted to the
    app's job queue (so they wait for a running generation instead of sharing the GPU with it)."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.service: PostprocessService = state.service.postprocess

    def run_extras(self, request: Any, inputs: Sequence[Any], *, save: bool, output_dir: Path | None = None,
                   settings: Mapping[str, Any] | None = None, progress: Any = None) -> Any:
        return self.state.submit_extras(ExtrasJob(request, tuple(inputs), save, output_dir)).wait()

    def interrogate(self, image: Image.Image, model: str = "clip", settings: Mapping[str, Any] | None = None) -> str:
        return self.state.submit_interrogate(image, model).wait()

    def upscaler_entries(self) -> list[Any]:
        return self.service.upscaler_entries()

    def realesrgan_entries(self) -> list[Any]:
        return self.service.realesrgan_entries()

    def face_restorers(self) -> list[Any]:
        return self.service.face_restorers()


def default_backends(state: AppState, postprocess: PostprocessBackend | None = None) -> ApiBackends:
    """Scripts and extensions from state.extensions (when loaded); `postprocess` defaults to the app's
    PostprocessService behind the job queue."""
    if postprocess is None:
        postprocess = PostprocessApiAdapter(QueuedPostprocess(state))  # type: ignore[arg-type]
    backends = ApiBackends(postprocess=postprocess)
    if state.extensions is not None:
        backends = replace(backends, scripts=RunnerCatalog(state.extensions.runner),
                           extensions=InstalledExtensions(state.extensions, state.paths.extensions))
    return backends
