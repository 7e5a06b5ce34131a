"""The import scope of A1111 extensions: `modules.*`, `launch` and Gradio 3 names exist only for them.

An A1111 extension's modules get their own `__builtins__` whose `__import__` answers `modules.*` and `launch`
from this package, `gradio` with the Gradio 3 aliases (gradio3.py) and `subprocess` with pip runs held to sdweb's
pip guard (pip_subprocess.py); everything else is imported as usual.
Modules of an extension's own packages (sd_dynamic_prompts/, ...) get the same builtins through a finder that
only acts on files inside A1111 extension folders. Nothing is added to `sys.modules` under A1111's names, so
sdweb and its libraries never see them.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader
from pathlib import Path
from types import ModuleType
from typing import Any

PROVIDED = {"modules": "sdweb.compat.a1111.modules", "launch": "sdweb.compat.a1111.launch"}
GRADIO3 = "sdweb.compat.a1111.gradio3"
GUARDED_SUBPROCESS = "sdweb.compat.a1111.pip_subprocess"  # pip started by extension code goes through the guard
# A1111's own model code: sdweb runs diffusers models, so an extension that patches these cannot work.
MODEL_PACKAGES = ("ldm", "sgm", "repositories", "k_diffusion_extra")
MODEL_MODULES = ("modules.sd_hijack_", "modules.sd_samplers_kdiffusion", "modules.sd_samplers_timesteps",
                 "modules.sd_samplers_cfg_denoiser", "modules.sd_unet", "modules.sd_models_xl", "modules.lowvram",
                 "modules.sd_models_config", "modules.sd_hijack_optimizations", "modules.processing_scripts")
NEVER_INSTALLED = {"torchvision": "sdweb never installs torchvision (it must match torch's build)",
                   "xformers": "sdweb never installs xformers (pip would replace torch)"}


class IncompatibleExtension(ImportError):
    """The extension needs something of A1111 that sdweb does not have; `reason` says what."""

    def __init__(self, reason: str, name: str) -> None:
        super().__init__(reason, name=name)
        self.reason = reason


def model_internals_reason(name: str) -> str:
    return (f"it patches A1111's model internals ({name}); sdweb runs diffusers models, which do not have "
            f"them")


def _incompatible(name: str) -> IncompatibleExtension:
    if name.split(".")[0] in MODEL_PACKAGES or name.startswith(MODEL_MODULES):
        return IncompatibleExtension(model_internals_reason(name), name)
    return IncompatibleExtension(f"it imports {name}, a part of A1111 that sdweb's compatibility layer does not "
                                 f"provide", name)


def reason_for(error: BaseException) -> str | None:
    """Why an extension that raised `error` while loading is incompatible, or None for an ordinary failure."""
    if isinstance(error, IncompatibleExtension):
        return error.reason
    if isinstance(error, ModuleNotFoundError) and error.name:
        root = error.name.split(".")[0]
        if root in NEVER_INSTALLED:
            return f"it needs {root}: {NEVER_INSTALLED[root]}"
        if root in MODEL_PACKAGES:
            return model_internals_reason(error.name)
    return None


def _provided_module(name: str) -> ModuleType:
    root, _, rest = name.partition(".")
    target = PROVIDED[root] + (f".{rest}" if rest else "")
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith(PROVIDED[root]):
            raise _incompatible(name) from None
        raise


def scoped_import(name: str, globals: dict | None = None, locals: dict | None = None,  # noqa: A002
                  fromlist: Sequence[str] | None = (), level: int = 0) -> ModuleType:
    """`__import__` for A1111 extensions' modules (see the module docstring)."""
    root = name.partition(".")[0]
    if level == 0 and root in PROVIDED:
        module = _provided_module(name)
        for item in fromlist or ():
            if item != "*" and not hasattr(module, item):
                _provided_module(f"{name}.{item}")
        return module if fromlist else _provided_module(root)
    if level == 0 and root == "gradio" and (name == "gradio" or not fromlist):
        return importlib.import_module(GRADIO3)
    if level == 0 and name == "subprocess":
        return importlib.import_module(GUARDED_SUBPROCESS)
    if level == 0 and (root in MODEL_PACKAGES):
        raise _incompatible(name)
    return builtins.__import__(name, globals, locals, fromlist, level)


SCOPED_BUILTINS: dict[str, Any] = {**vars(builtins), "__import__": scoped_import}


def prepare_module(module: ModuleType) -> None:
    """Give `module` (before its code runs) the A1111 import scope."""
    module.__dict__["__builtins__"] = SCOPED_BUILTINS


class _ScopedLoader(SourceFileLoader):
    def exec_module(self, module: ModuleType) -> None:
        prepare_module(module)
        super().exec_module(module)


class ExtensionPackageFinder(MetaPathFinder):
    """Finds modules inside A1111 extension folders (their own packages) and gives them the A1111 scope."""

    def __init__(self) -> None:
        self.roots: set[str] = set()

    def _inside(self, location: str) -> bool:
        return any(location == root or location.startswith(root + "/") for root in self.roots)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if not self.roots:
            return None
        search = [entry for entry in (path if path is not None else sys.path) if self._inside(str(entry))]
        if not search:
            return None
        spec = PathFinder.find_spec(fullname, search)
        if spec is None or not isinstance(spec.loader, SourceFileLoader) or not spec.origin:
            return spec if spec is not None and spec.loader is None else None  # namespace packages as found
        spec.loader = _ScopedLoader(fullname, spec.origin)
        return spec


FINDER = ExtensionPackageFinder()


def add_extension_root(folder: Path) -> None:
    """Modules under `folder` get the A1111 scope from now on (the finder is installed once)."""
    FINDER.roots.update({str(Path(folder)), str(Path(folder).resolve())})
    if FINDER not in sys.meta_path:
        sys.meta_path.insert(0, FINDER)
