"""Send to txt2img / img2img / inpaint / extras: an image and its pasted generation parameters, mapped by
field name (extras takes the image only; its infotext travels in the image so the result keeps it).

Settings that come with the parameters (Clip skip, the model when `disable_weights_auto_swap` is off, ENSD,
...) fill the tab's "Override settings" box, as in A1111. The prompt row's ↙️ pastes the same way from the
prompt box, or from params.txt (the last job) when the box is empty."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from sdweb.config.settings import Settings
from sdweb.infotext import infotext_to_request_fields, parse_infotext
from sdweb.outputs.save import read_infotext
from sdweb.prompts.styles import StyleDatabase
from sdweb.ui.common import OutputPanel, PromptRow, user_error
from sdweb.ui.overrides import override_box_update
from sdweb.ui.tabs.extras import ExtrasTab
from sdweb.ui.tabs.img2img import (
    INPAINT_AREAS,
    INPAINT_MODES,
    MASK_MODES,
    MASKED_CONTENT,
    RESIZE_MODES,
    Img2ImgTab,
)
from sdweb.ui.tabs.png_info import PngInfoTab
from sdweb.ui.tabs.txt2img import Txt2ImgTab

# Radios that take an index in the request show a label in the UI.
INDEX_CHOICES: dict[str, tuple[str, ...]] = {
    "resize_mode": RESIZE_MODES, "inpainting_mask_invert": MASK_MODES, "inpainting_fill": MASKED_CONTENT,
    "inpaint_full_res": INPAINT_AREAS,
}
SEED_FIELDS = ("seed", "subseed")
SIZE_FIELDS = ("width", "height")


def fields_from_infotext(text: str | None, mode: str, send_seed: bool = True,
                         send_size: bool = True) -> dict[str, Any]:
    """Request field values pasted from an infotext (settings `send_seed` / `send_size` respected)."""
    return pasted_values(text, mode, send_seed, send_size)[0]


def pasted_values(text: str | None, mode: str, send_seed: bool = True, send_size: bool = True,
                  settings: Settings | None = None, styles: StyleDatabase | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request field values, override_settings) of an infotext. With `settings`, overrides equal to the
    current value are dropped and `disable_weights_auto_swap` / `infotext_styles` apply; with `styles`, styles
    found in the prompt are taken out of it and selected."""
    if not text or not text.strip():
        return {}, {}
    current = settings.as_dict() if settings is not None else None
    params = parse_infotext(text, extract_styles=styles.extract if styles is not None else None,
                            infotext_styles=str((current or {}).get("infotext_styles", "Apply if any")))
    fields, overrides = infotext_to_request_fields(
        params, mode=mode, current_settings=current,
        disable_weights_auto_swap=bool((current or {}).get("disable_weights_auto_swap", True)))
    for name in (() if send_seed else SEED_FIELDS) + (() if send_size else SIZE_FIELDS):
        fields.pop(name, None)
    if "mask_blur_x" in fields:
        fields["mask_blur"] = fields["mask_blur_x"]
    if settings is not None:  # settings sdweb does not have (FP8 weight, ...) would be chips that do nothing
        overrides = {key: value for key, value in overrides.items() if settings.option(key) is not None}
    return fields, overrides


def ui_value(name: str, value: Any) -> Any:
    """A request value as its control shows it (index radios by label, 'unset' resize sliders as 0)."""
    if name in INDEX_CHOICES:
        choices = INDEX_CHOICES[name]
        index = int(value)
        return choices[index] if 0 <= index < len(choices) else None
    if name in ("seed_resize_from_w", "seed_resize_from_h") and isinstance(value, int) and value < 0:
        return 0
    return value


def _accepts(component: Any, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(component, gr.Dropdown):
        return value in [choice[1] if isinstance(choice, tuple) else choice for choice in component.choices]
    return True


def field_updates(components: Mapping[str, Any], values: Mapping[str, Any]) -> dict[Any, Any]:
    """`{component: value}` for each pasted field the tab has (a value its control cannot take is skipped)."""
    updates: dict[Any, Any] = {}
    for name, value in values.items():
        component = components.get(name)
        shown = ui_value(name, value) if component is not None else None
        if component is not None and _accepts(component, shown):
            updates[component] = shown
    return updates


def selected_image(gallery: list[Any] | None, index: int | None) -> Image.Image | None:
    """The selected gallery image (the first one when nothing is selected)."""
    if not gallery:
        return None
    chosen = gallery[index] if isinstance(index, int) and 0 <= index < len(gallery) else gallery[0]
    image = chosen[0] if isinstance(chosen, tuple | list) else chosen
    if isinstance(image, str):  # a file path (Gradio's cache)
        with Image.open(image) as opened:
            opened.load()
            return opened.copy()
    return image if isinstance(image, Image.Image) else None


@dataclass
class Tabs:
    main: gr.Tabs
    txt2img: Txt2ImgTab
    img2img: Img2ImgTab
    png_info: PngInfoTab
    extras: ExtrasTab


@dataclass(frozen=True)
class PasteSources:
    """What pasting reads besides the text: the settings and the styles (to find styles in the prompt)."""

    settings: Settings
    styles: StyleDatabase | None = None


def _send_flags(settings: Settings) -> tuple[bool, bool]:
    return bool(settings.get("send_seed", True)), bool(settings.get("send_size", True))


def pasted_updates(sources: PasteSources, fields: Mapping[str, Any], override: Any, infotext: str | None,
                   mode: str) -> dict[Any, Any]:
    """`{component: value}` for a tab's fields and its Override settings box from an infotext."""
    send_seed, send_size = _send_flags(sources.settings)
    values, overrides = pasted_values(infotext, mode, send_seed, send_size, sources.settings, sources.styles)
    updates = field_updates(fields, values)
    if infotext and infotext.strip():
        updates[override] = override_box_update(overrides)
    return updates


def _to_img2img(tabs: Tabs, sources: PasteSources, mode: str) -> tuple[Callable[..., dict[Any, Any]], list[Any]]:
    """A handler (image, infotext) -> updates that fill the img2img tab in `mode` and switch to it."""
    target = tabs.img2img
    image_component = target.images["inpaint" if mode == "inpaint" else "init_img"]
    outputs = [tabs.main, target.tabs, target.images["mode"], target.inpaint_group, image_component,
               target.override, *target.fields.values()]

    def send(image: Image.Image | None, infotext: str | None) -> dict[Any, Any]:
        if image is None:
            raise user_error("There is no image to send.")
        updates = pasted_updates(sources, target.fields, target.override, infotext, "img2img")
        updates.update({tabs.main: gr.Tabs(selected="img2img"), target.tabs: gr.Tabs(selected=mode),
                        target.images["mode"]: mode,
                        target.inpaint_group: gr.Group(visible=mode in INPAINT_MODES), image_component: image})
        return updates

    return send, outputs


def _to_txt2img(tabs: Tabs, sources: PasteSources) -> tuple[Callable[..., dict[Any, Any]], list[Any]]:
    target = tabs.txt2img

    def send(infotext: str | None) -> dict[Any, Any]:
        if not infotext:
            raise user_error("This image has no generation parameters to send.")
        updates = pasted_updates(sources, target.fields, target.override, infotext, "txt2img")
        updates[tabs.main] = gr.Tabs(selected="txt2img")
        return updates

    return send, [tabs.main, target.override, *target.fields.values()]


def with_infotext(image: Image.Image, infotext: str | None) -> Image.Image:
    """The image carrying its generation parameters (so Extras keeps them in what it saves)."""
    if not infotext or image.info.get("parameters") == infotext:
        return image
    copy = image.copy()
    copy.info = {**image.info, "parameters": infotext}
    return copy


def _to_extras(tabs: Tabs) -> tuple[Callable[..., dict[Any, Any]], list[Any]]:
    """A handler (image, infotext) -> updates that put the image in Extras' Single Image tab and switch to it."""
    target = tabs.extras
    outputs = [tabs.main, target.tabs, target.inputs["mode"], target.inputs["image"]]

    def send(image: Image.Image | None, infotext: str | None) -> dict[Any, Any]:
        if image is None:
            raise user_error("There is no image to send.")
        return {tabs.main: gr.Tabs(selected="extras"), target.tabs: gr.Tabs(selected="single_image"),
                target.inputs["mode"]: "single_image", target.inputs["image"]: with_infotext(image, infotext)}

    return send, outputs


def _gallery_sender(send: Callable[..., dict[Any, Any]]) -> Callable[..., dict[Any, Any]]:
    def from_gallery(gallery: list[Any] | None, index: int | None, infotexts: list[str] | None) -> dict[Any, Any]:
        image = selected_image(gallery, index)
        texts = infotexts or []
        chosen = index if isinstance(index, int) and 0 <= index < len(texts) else 0
        infotext = texts[chosen] if texts else (read_infotext(image)[0] if image is not None else None)
        return send(image, infotext)

    return from_gallery


def _wire_panel(panel: OutputPanel, to_img2img: tuple, to_inpaint: tuple, to_extras: tuple) -> None:
    for button, (send, outputs) in ((panel.send_img2img, to_img2img), (panel.send_inpaint, to_inpaint),
                                    (panel.send_extras, to_extras)):
        button.click(_gallery_sender(send), inputs=[panel.gallery, panel.selected, panel.infotexts],
                     outputs=outputs, api_visibility="private")


def _wire_extras_gallery(tabs: Tabs, to_img2img: tuple, to_inpaint: tuple) -> None:
    """Extras' send buttons: its result image (the source's infotext is kept in it) to img2img / inpaint."""
    extras = tabs.extras
    for button, (send, outputs) in ((extras.send_img2img, to_img2img), (extras.send_inpaint, to_inpaint)):
        def from_extras(gallery: list[Any] | None, index: int | None, send=send) -> dict[Any, Any]:
            image = selected_image(gallery, index)
            return send(image, read_infotext(image)[0] if image is not None else None)

        button.click(from_extras, inputs=[extras.gallery, extras.selected], outputs=outputs,
                     api_visibility="private")


def params_txt_text(path: Any) -> str:
    """The last job's infotext (params.txt), or a gr.Error saying there is none yet."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise user_error("The prompt is empty and there is no previous generation (params.txt) to read "
                         "parameters from; paste an infotext into the prompt box first.") from None


def _wire_paste(sources: PasteSources, row: PromptRow, fields: Mapping[str, Any], override: Any, mode: str,
                params_file: Any) -> None:
    """↙️: parameters from the prompt box (a pasted infotext), or from params.txt when the box is empty."""
    def paste(prompt: str | None) -> dict[Any, Any]:
        text = prompt if prompt and prompt.strip() else params_txt_text(params_file)
        return pasted_updates(sources, fields, override, text, mode)

    row.paste.click(paste, inputs=row.prompt, outputs=[override, *fields.values()], api_visibility="private")


def wire_send_buttons(tabs: Tabs, sources: PasteSources, params_file: Any) -> None:
    to_img2img = _to_img2img(tabs, sources, "img2img")
    to_inpaint = _to_img2img(tabs, sources, "inpaint")
    to_extras = _to_extras(tabs)
    for panel in (tabs.txt2img.panel, tabs.img2img.panel):
        _wire_panel(panel, to_img2img, to_inpaint, to_extras)
    _wire_extras_gallery(tabs, to_img2img, to_inpaint)
    info = tabs.png_info
    send_txt2img, txt2img_outputs = _to_txt2img(tabs, sources)
    info.send_txt2img.click(send_txt2img, inputs=info.parameters, outputs=txt2img_outputs,
                            api_visibility="private")
    for button, (send, outputs) in ((info.send_img2img, to_img2img), (info.send_inpaint, to_inpaint),
                                    (info.send_extras, to_extras)):
        button.click(send, inputs=[info.image, info.parameters], outputs=outputs, api_visibility="private")
    for tab, mode in ((tabs.txt2img, "txt2img"), (tabs.img2img, "img2img")):
        _wire_paste(sources, tab.row, tab.fields, tab.override, mode, params_file)
