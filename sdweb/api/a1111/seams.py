"""Where other layers plug into the API: scripts (the extension layer) and postprocessing (Extras).

The API does not know how scripts or upscalers work; it asks these small interfaces. `mount_api` takes
an `ApiBackends`; without one there is no postprocessing (so /extra-* and /interrogate answer 501 naming
what is missing), and a script name the catalog does not know is A1111's 422 "not found".

By default (backends.default_backends) scripts and extensions come from AppState.extensions, the
extension layer; postprocessing is wired by passing `ApiBackends(..., postprocess=<adapter>)` to mount_api
(server.create_app). The catalog only describes scripts; running them is the generation service's job:
the typed request carries `script_name` (the canonical title), `script_args` and `alwayson_scripts`
(keys are canonical titles, values `{"args": [...]}`), and the service hands them to the extension hooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from sdweb.core.errors import UserError


@dataclass(frozen=True)
class ScriptDescription:
    """What GET /script-info shows for one script, and what request validation needs."""

    name: str  # the title; requests name it case-insensitively
    is_alwayson: bool
    is_img2img: bool
    args: tuple[Mapping[str, Any], ...] = ()  # [{label, value, minimum, maximum, step, choices}]


class ScriptCatalog(Protocol):
    """The extension layer's scripts for one tab ("txt2img" or "img2img")."""

    def scripts(self, mode: str) -> Sequence[ScriptDescription]: ...


class NoScripts:
    """No extension layer yet: no scripts anywhere."""

    def scripts(self, mode: str) -> Sequence[ScriptDescription]:
        return ()


class ExtensionList(Protocol):
    """GET /extensions: [{name, remote, branch, commit_hash, version, commit_date, enabled}]."""

    def extensions(self) -> list[dict[str, Any]]: ...


class NoExtensions:
    def extensions(self) -> list[dict[str, Any]]:
        return []


class PostprocessBackend(Protocol):
    """Extras, upscaler lists, face restoration and interrogation (sdweb.postprocess, adapted by the lead).

    `params` holds A1111's ExtrasBaseRequest field names and values (resize_mode, upscaling_resize,
    upscaler_1, gfpgan_visibility, ...). A failure the user can fix raises UserError.
    """

    def extras(self, images: Sequence[Image.Image], params: Mapping[str, Any]) -> tuple[list[Image.Image], str]:
        """Postprocess each image; returns the images and A1111's html_info text."""
        ...

    def upscalers(self) -> list[dict[str, Any]]:
        """[{name, model_name, model_path, model_url, scale}] as GET /upscalers shows them."""
        ...

    def face_restorers(self) -> list[dict[str, Any]]: ...

    def realesrgan_models(self) -> list[dict[str, Any]]: ...

    def interrogate(self, image: Image.Image, model: str) -> str: ...


@dataclass(frozen=True)
class ApiBackends:
    scripts: ScriptCatalog = field(default_factory=NoScripts)
    extensions: ExtensionList = field(default_factory=NoExtensions)
    postprocess: PostprocessBackend | None = None


class ScriptError(UserError):
    """A1111 answers 422 for an unknown script or a script in the wrong field."""

    status_code = 422

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message, code="script_not_found", hint=hint)


@dataclass(frozen=True)
class ScriptSelection:
    script_name: str | None
    script_args: list[Any]
    alwayson_scripts: dict[str, Any]


def _available(scripts: Sequence[ScriptDescription], alwayson: bool) -> str:
    names = [s.name for s in scripts if s.is_alwayson == alwayson]
    return f"Installed: {', '.join(names)}." if names else "None are installed."


def select_scripts(catalog: ScriptCatalog, mode: str, script_name: str | None, script_args: Sequence[Any],
                   alwayson_scripts: Mapping[str, Any]) -> ScriptSelection:
    """A1111's init_script_args checks: names are titles (any case); a selectable script must not be in
    alwayson_scripts; each always-on entry is {"args": [...]}. Returns the canonical titles."""
    scripts = list(catalog.scripts(mode))
    by_title = {s.name.lower(): s for s in scripts}
    selected = None
    if script_name:
        found = by_title.get(script_name.lower())
        if found is None or found.is_alwayson:
            raise ScriptError(f"Script '{script_name}' not found",
                              hint=f"GET /sdapi/v1/scripts lists the {mode} scripts. {_available(scripts, False)}")
        selected = found.name
    alwayson: dict[str, Any] = {}
    for name, value in alwayson_scripts.items():
        found = by_title.get(str(name).lower())
        if found is None:
            raise ScriptError(f"always on script {name} not found",
                              hint=f"GET /sdapi/v1/scripts lists them. {_available(scripts, True)}")
        if not found.is_alwayson:
            raise ScriptError("Cannot have a selectable script in the always on scripts params",
                              hint=f"Send '{found.name}' as script_name with script_args instead.")
        args = value.get("args", []) if isinstance(value, Mapping) else value  # a bare list is the args
        if not isinstance(args, list):
            raise ScriptError(f"always on script {name}: expected {{\"args\": [...]}}",
                              hint="Each alwayson_scripts entry is an object with an args list.")
        alwayson[found.name] = {"args": list(args)}
    return ScriptSelection(selected, list(script_args) if selected else [], alwayson)
