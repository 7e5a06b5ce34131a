"""A1111's `modules.ui_components`: its small Gradio building blocks, as Gradio 3 aliases (gradio3.py)."""

from __future__ import annotations

from typing import Any

from sdweb.compat.a1111 import gradio3 as gr


class FormComponent:
    webui_do_not_create_gradio_pyi_thank_you = True


def ToolButton(value: str = "", elem_classes: list[str] | None = None, **kwargs: Any) -> Any:  # noqa: N802
    """A small square button (A1111 adds the `tool` class)."""
    return gr.Button(value=value, elem_classes=["tool", *(elem_classes or [])], size="sm", **kwargs)


def FormRow(**kwargs: Any) -> Any:  # noqa: N802
    return gr.Row(**kwargs)


def FormColumn(**kwargs: Any) -> Any:  # noqa: N802
    return gr.Column(**kwargs)


def FormGroup(**kwargs: Any) -> Any:  # noqa: N802
    return gr.Group(**kwargs)


def FormHTML(value: str = "", **kwargs: Any) -> Any:  # noqa: N802
    return gr.HTML(value=value, **kwargs)


def ResizeHandleRow(**kwargs: Any) -> Any:  # noqa: N802
    return gr.Row(**kwargs)


def DropdownMulti(**kwargs: Any) -> Any:  # noqa: N802
    return gr.Dropdown(multiselect=True, **kwargs)


def DropdownEditable(**kwargs: Any) -> Any:  # noqa: N802
    return gr.Dropdown(allow_custom_value=True, **kwargs)


class InputAccordion:
    """A1111's accordion whose open/closed state is an input (a checkbox). Here: an accordion holding an
    "Enable" checkbox; `with InputAccordion(...) as enabled:` gives that checkbox, whose value is the input."""

    def __init__(self, value: bool, label: str = "", elem_id: str | None = None, visible: bool = True,
                 open: bool | None = None, **kwargs: Any) -> None:  # noqa: A002
        self.accordion = gr.Accordion(label=label, open=bool(value if open is None else open), visible=visible,
                                      elem_id=f"{elem_id}-accordion" if elem_id else None)
        self.checkbox: Any = None
        self.value, self.label, self.elem_id = bool(value), label, elem_id

    def __enter__(self) -> Any:
        self.accordion.__enter__()
        self.checkbox = gr.Checkbox(value=self.value, label=f"Enable {self.label}".strip(), elem_id=self.elem_id)
        return self.checkbox

    def __exit__(self, *exc: Any) -> None:
        self.accordion.__exit__(*exc)

    def extra(self) -> Any:
        return gr.Column(scale=0, min_width=32)
