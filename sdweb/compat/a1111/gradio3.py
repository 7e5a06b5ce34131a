"""Gradio 3 names for A1111 extensions (A1111 ships Gradio 3.41), mapped onto the installed Gradio 6.

What an extension imports as `gradio` (scope.py) is this module: every attribute of the real gradio, except
that component and layout classes are thin subclasses that accept Gradio 3 call styles:
`Component.update(...)` is `gr.update(...)`, a component's `visible=False` keeps it in the page (hidden), as
Gradio 3 did, `.style(...)` is ignored, events take `_js=` as `js=` and
`show_progress=True/False`, constructor keywords Gradio 6 dropped are ignored (`source=` becomes `sources=`),
`gr.Box` is a `gr.Group`, a `gr.Tab`'s elements are in the page before it is opened, and components put
directly in a `gr.Tabs` beside its tabs are placed after it (as Gradio 3 allowed). The subclasses keep their Gradio class name, so the page renders them with
Gradio's own front-end components. sdweb's own code never sees this module.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABCMeta
from collections.abc import Callable
from typing import Any

import gradio
from gradio.blocks import Block
from gradio.components import Component
from gradio.events import Dependency

log = logging.getLogger(__name__)

BUTTON_VARIANTS = ("primary", "secondary", "stop", "huggingface")
_DROPPED_EVENT_KEYWORDS = ("_preprocess", "_postprocess", "status_tracker")
CHAINED_EVENTS = ("then", "success", "failure")


def _style(self: Any, *_args: Any, **_kwargs: Any) -> Any:
    """Gradio 3's `.style(...)`: presentation only, ignored."""
    return self


def _keywords(function: Callable[..., Any]) -> tuple[set[str] | None, list[str]]:
    """(accepted keyword names or None for any, positional parameter names after self)."""
    parameters = list(inspect.signature(function).parameters.values())
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    names = {p.name for p in parameters}
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return (None if accepts_any else names), positional[1:]


def _component_keywords(cls: type, given: dict[str, Any], accepted: set[str] | None) -> dict[str, Any]:
    keywords = dict(given)
    if "source" in keywords and (accepted is None or "sources" in accepted):
        source = keywords.pop("source")
        keywords.setdefault("sources", [source] if isinstance(source, str) else source)
    if keywords.get("visible") is False and _keeps_hidden(cls):
        keywords["visible"] = "hidden"  # Gradio 3 kept invisible components in the page; extensions read them
    if issubclass(cls, gradio.Tab) and (accepted is None or "render_children" in accepted):
        keywords.setdefault("render_children", True)  # Gradio 3 rendered every tab's elements at page load
    if issubclass(cls, gradio.Button) and keywords.get("variant") not in (None, *BUTTON_VARIANTS):
        keywords["variant"] = "secondary"  # Gradio 3's "tool" and others
    if accepted is not None:
        dropped = sorted(set(keywords) - accepted)
        if dropped:
            log.debug("Gradio 3 keywords ignored for %s: %s", cls.__name__, ", ".join(dropped))
        keywords = {name: value for name, value in keywords.items() if name in accepted}
    return keywords


def _keeps_hidden(cls: type) -> bool:
    """True when `cls` is a component that takes visible="hidden" (in the page, not shown), Gradio 3's meaning of
    visible=False. Layouts keep visible=False: Gradio 6 shows a Row given "hidden"."""
    parameter = inspect.signature(cls.__init__).parameters.get("visible")
    return (issubclass(cls, Component) and parameter is not None and "hidden" in str(parameter.annotation))


def _update_for(cls: type) -> Callable[..., dict[str, Any]]:
    """Gradio 3's `Component.update(...)`, which is `gr.update(...)`; for a component, visible=False hides it but
    keeps it in the page (as Gradio 3 did). `gr.update` itself does not know its target and stays Gradio's."""
    keeps_hidden = _keeps_hidden(cls)

    def update(**kwargs: Any) -> dict[str, Any]:
        if keeps_hidden and kwargs.get("visible") is False:
            kwargs["visible"] = "hidden"
        return gradio.update(**kwargs)

    return update


def _event_keywords(given: dict[str, Any], accepted: set[str] | None) -> dict[str, Any]:
    keywords = {name: value for name, value in given.items() if name not in _DROPPED_EVENT_KEYWORDS}
    if "_js" in keywords:
        keywords["js"] = keywords.pop("_js")
    if isinstance(keywords.get("show_progress"), bool):
        keywords["show_progress"] = "full" if keywords["show_progress"] else "hidden"
    if accepted is not None:
        keywords = {name: value for name, value in keywords.items() if name in accepted}
    return keywords


def _init_for(cls: type) -> Callable[..., None]:
    signature = inspect.signature(cls.__init__)
    accepted, positional = _keywords(cls.__init__)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        given = {**dict(zip(positional, args, strict=False)), **kwargs}
        cls.__init__(self, **_component_keywords(cls, given, accepted))

    __init__.__signature__ = signature  # type: ignore[attr-defined]  # Gradio reads a component's props from it
    return __init__


def _event_for(cls: type, name: str) -> Callable[..., Any]:
    original = getattr(cls, name)
    accepted, _ = _keywords(original)

    def listener(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _chainable(original(self, *args, **_event_keywords(kwargs, accepted)))

    listener.__name__ = name
    return listener


def _tabs_exit(self: Any, exc_type: Any = None, *args: Any) -> None:
    """Gradio 3 let a Tabs hold other components beside its tabs (images-browser keeps a hidden Textbox there);
    Gradio 6's page mislabels the tabs then, so those components move to the Tabs' parent, after it."""
    strays = [child for child in self.children if not isinstance(child, gradio.Tab)]
    if exc_type is None and strays and self.parent is not None:
        self.children = [child for child in self.children if isinstance(child, gradio.Tab)]
        for child in strays:
            self.parent.add(child)
    gradio.Tabs.__exit__(self, exc_type, *args)


def _chainable(dependency: Any) -> Any:
    """An event's Dependency whose `.then` / `.success` / `.failure` take Gradio 3 keywords too (`_js=`, ...),
    and so do the Dependencies those return. Only this object changes: Gradio's class stays as it is."""
    if isinstance(dependency, Dependency):
        for name in CHAINED_EVENTS:
            original = getattr(dependency, name, None)
            if callable(original):
                setattr(dependency, name, _chained(original))
    return dependency


def _chained(original: Callable[..., Any]) -> Callable[..., Any]:
    try:
        accepted: set[str] | None = _keywords(original)[0]
    except (TypeError, ValueError):
        accepted = None

    def listener(*args: Any, **kwargs: Any) -> Any:
        return _chainable(original(*args, **_event_keywords(kwargs, accepted)))

    return listener


def _alias(cls: type, block_name: str | None = None, name: str | None = None) -> type:
    namespace: dict[str, Any] = {"__init__": _init_for(cls), "style": _style, "update": staticmethod(_update_for(cls)),
                                 "__module__": __name__, "__qualname__": name or cls.__name__}
    for event in getattr(cls, "EVENTS", []):
        event_name = event if isinstance(event, str) else event.event_name
        namespace[event_name] = _event_for(cls, event_name)
    if block_name is not None:
        namespace["get_block_name"] = lambda self: block_name
    if issubclass(cls, gradio.Tabs):
        namespace["__exit__"] = _tabs_exit
    # ABCMeta's constructor, not Gradio's ComponentMeta: that one would write a .pyi stub beside the source
    meta = type(cls)
    make = ABCMeta.__new__ if issubclass(meta, ABCMeta) else type.__new__
    return make(meta, name or cls.__name__, (cls,), namespace)


def _aliases() -> dict[str, type]:
    found: dict[str, type] = {}
    for name in dir(gradio):
        value = getattr(gradio, name)
        if (inspect.isclass(value) and issubclass(value, Block) and not issubclass(value, gradio.Blocks)
                and value.__name__ == name):
            try:
                found[name] = _alias(value)
            except Exception as error:  # a class Gradio itself cannot subclass stays as it is
                log.debug("No Gradio 3 alias for %s: %s", name, error)
    for name in dir(gradio):  # other names of an aliased class (gr.TabItem is gr.Tab) get the same alias
        value = getattr(gradio, name)
        if inspect.isclass(value) and name not in found and value.__name__ in found:
            found[name] = found[value.__name__]
    found["Box"] = _alias(gradio.Group, block_name="group", name="Box")
    return found


ALIASES = _aliases()


def __getattr__(name: str) -> Any:
    if name in ALIASES:
        return ALIASES[name]
    return getattr(gradio, name)


def __dir__() -> list[str]:
    return sorted(set(dir(gradio)) | set(ALIASES))
