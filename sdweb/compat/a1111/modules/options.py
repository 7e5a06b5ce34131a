"""A1111's `modules.options`: `OptionInfo`, `options_section`, `categories`, and `Options` (shared.opts), a view
over sdweb's settings plus the options A1111 extensions add."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdweb.compat.a1111.defaults import A1111_ONLY_DEFAULTS
from sdweb.compat.a1111.world import WORLD
from sdweb.core.errors import UserError
from sdweb.extensions.api import OptionSpec

log = logging.getLogger(__name__)


class OptionInfo:
    """A1111's option description (default, label, Gradio component and its arguments, section)."""

    def __init__(self, default: Any = None, label: str = "", component: Any = None,
                 component_args: Any = None, onchange: Callable[[], None] | None = None,
                 section: tuple[str, str] | None = None, refresh: Callable[[], None] | None = None,
                 comment_before: str = "", comment_after: str = "", infotext: str | None = None,
                 restrict_api: bool = False, category_id: str | None = None) -> None:
        self.default, self.label, self.component = default, label, component
        self.component_args, self.onchange, self.section, self.refresh = component_args, onchange, section, refresh
        self.comment_before, self.comment_after, self.infotext = comment_before, comment_after, infotext
        self.restrict_api, self.category_id = restrict_api, category_id
        self.do_not_save = False

    def link(self, label: str, url: str) -> OptionInfo:
        self.comment_before += f"[<a href='{url}' target='_blank'>{label}</a>]"
        return self

    def js(self, label: str, js_func: str) -> OptionInfo:
        return self

    def info(self, info: str) -> OptionInfo:
        self.comment_after += f"<span class='info'>({info})</span>"
        return self

    def html(self, html: str) -> OptionInfo:
        self.comment_after += html
        return self

    def needs_restart(self) -> OptionInfo:
        return self

    def needs_reload_ui(self) -> OptionInfo:
        return self


class OptionHTML(OptionInfo):
    def __init__(self, text: str) -> None:
        super().__init__(str(text).strip(), label="")
        self.do_not_save = True


def options_section(section_identifier: tuple[str, str], options_dict: dict[str, OptionInfo]) -> dict[str, Any]:
    for value in options_dict.values():
        if len(section_identifier) == 2:
            value.section = section_identifier
        elif len(section_identifier) == 3:
            value.section, value.category_id = section_identifier[0:2], section_identifier[2]
    return options_dict


class _Categories:
    def register_category(self, category_id: str, label: str) -> str:
        return category_id


categories = _Categories()


def _component_args(info: OptionInfo) -> dict[str, Any]:
    args = info.component_args
    if callable(args):
        try:
            args = args()
        except Exception:  # a lazy argument list that needs A1111's state: keep the default only
            return {}
    return dict(args) if isinstance(args, dict) else {}


def option_spec(key: str, info: OptionInfo) -> OptionSpec:
    """sdweb's description of an A1111 option: kind from the component (slider, dropdown, radio) or default."""
    args = _component_args(info)
    component = getattr(info.component, "__name__", "")
    section = info.section[1] if info.section and len(info.section) > 1 else "Extensions"
    choices = tuple(str(choice if not isinstance(choice, tuple) else choice[0]) for choice in args.get("choices", ()))
    kind = None
    if choices and component in ("Dropdown", "Radio") and not args.get("multiselect"):
        kind = "choice"
    elif isinstance(info.default, list) or args.get("multiselect"):
        kind, choices = "list", ()
    elif component == "Slider":
        step = args.get("step", 1)
        kind = "int" if isinstance(info.default, int) and float(step).is_integer() else "float"
    minimum, maximum = args.get("minimum"), args.get("maximum")
    return OptionSpec(key=key, default=info.default, label=info.label or key, section=section, kind=kind,
                      choices=choices if kind == "choice" else (),
                      minimum=float(minimum) if isinstance(minimum, int | float) else None,
                      maximum=float(maximum) if isinstance(maximum, int | float) else None)


def _in_data_folder(key: str, value: Any) -> Any:
    """A folder setting (outdir_txt2img_samples = "outputs/txt2img-images") as the folder sdweb uses: a relative
    one is in the data folder. A1111 reads it relative to its working directory, its data folder by default;
    sdweb's working directory can be anywhere, and an extension must not write there."""
    option = WORLD.settings.option(key) if WORLD.settings is not None else None
    if option is None or not option.is_path or not isinstance(value, str) or not value or WORLD.paths is None:
        return value
    folder = Path(value).expanduser()
    return value if folder.is_absolute() else str(Path(WORLD.paths.data_dir) / folder)


class Options:
    """`shared.opts`: attribute access to sdweb's settings and to the options A1111 extensions added."""

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        if key in WORLD.option_values:
            return WORLD.option_values[key]
        settings = WORLD.settings
        if settings is not None and (settings.option(key) is not None or key in settings.as_dict()):
            return _in_data_folder(key, settings.get(key))
        if key in WORLD.extension_options:
            return WORLD.extension_options[key].default
        if key in A1111_ONLY_DEFAULTS:
            return copy.deepcopy(A1111_ONLY_DEFAULTS[key])
        raise AttributeError(f"shared.opts has no option {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        """Change an option for this run (in memory; saved with sdweb's settings only when it is one of them)."""
        settings = WORLD.settings
        try:
            if settings is not None and settings.option(key) is not None:
                settings.update({key: value}, save=False)
            else:
                WORLD.option_values[key] = value
        except UserError as error:
            log.warning("An extension set option %s to %r: %s", key, value, error.message)
            return False
        for callback in WORLD.onchange.get(key, []) if run_callbacks else []:
            callback()
        return True

    def get_default(self, key: str) -> Any:
        if key in WORLD.extension_options:
            return WORLD.extension_options[key].default
        option = WORLD.settings.option(key) if WORLD.settings is not None else None
        return option.default if option is not None else copy.deepcopy(A1111_ONLY_DEFAULTS.get(key))

    def add_option(self, key: str, info: OptionInfo) -> None:
        """Called from on_ui_settings callbacks (run while the extension loads): the option appears in sdweb's
        Settings under its section."""
        WORLD.extension_options[key] = info
        if WORLD.loading is not None and not info.do_not_save:
            WORLD.loading.context.add_option(option_spec(key, info))

    def onchange(self, key: str, func: Callable[[], None], call: bool = True) -> None:
        WORLD.onchange.setdefault(key, []).append(func)
        if call:
            func()

    def save(self, filename: str | None = None) -> None:
        if WORLD.settings is not None:
            WORLD.settings.save()

    def same_type(self, x: Any, y: Any) -> bool:
        return x is None or y is None or type(x) is type(y)

    @property
    def data(self) -> dict[str, Any]:
        """A snapshot of every option value (writes to it are not kept: use opts.set)."""
        values = {key: info.default for key, info in WORLD.extension_options.items()}
        values.update(WORLD.settings.as_dict() if WORLD.settings is not None else {})
        values.update(WORLD.option_values)
        return {key: _in_data_folder(key, value) for key, value in values.items()}

    @property
    def data_labels(self) -> dict[str, OptionInfo]:
        return dict(WORLD.extension_options)
