"""The Extra Networks panel (🎴) of txt2img / img2img: tabs of cards for Checkpoints, Textual Inversion, Lora
and Hypernetworks (empty: not supported), with search, sort, refresh, a click that toggles the card's text in
the prompt (a checkpoint card selects the checkpoint), and an editor for the card's user metadata."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageDraw, UnidentifiedImageError

from sdweb.core.errors import UserError
from sdweb.models.cards import (
    KIND_LABELS,
    KINDS,
    SORT_KEYS,
    Card,
    cards_of,
    filter_and_sort,
    preferred_weight,
    prompt_text,
    read_user_metadata,
    save_user_metadata,
    toggle_in_prompt,
    toggle_negative,
)
from sdweb.state import AppState
from sdweb.ui.common import PromptRow, user_error

THUMBNAIL = 256


@dataclass
class ExtraNetworksPanel:
    group: gr.Column
    open: gr.State  # whether the panel is shown
    search: gr.Textbox
    sort: gr.Dropdown
    descending: gr.Checkbox
    refresh: gr.Button
    galleries: dict[str, gr.Gallery]  # kind -> cards
    shown: dict[str, gr.State]  # kind -> the card keys in gallery order
    item: gr.Dropdown  # the card whose metadata is edited
    description: gr.Textbox
    activation: gr.Textbox
    negative: gr.Textbox
    weight: gr.Slider
    notes: gr.Textbox
    save: gr.Button
    message: gr.Markdown


@lru_cache(maxsize=512)
def _thumbnail(path: str, stamp: int) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        thumb = image.convert("RGB")
    thumb.thumbnail((THUMBNAIL, THUMBNAIL))
    return thumb


@lru_cache(maxsize=1)
def _placeholder() -> Image.Image:
    image = Image.new("RGB", (THUMBNAIL, THUMBNAIL), (60, 60, 70))
    ImageDraw.Draw(image).text((THUMBNAIL // 2 - 30, THUMBNAIL // 2 - 6), "no preview", fill=(200, 200, 210))
    return image


def card_image(card: Card) -> Image.Image:
    if card.preview is not None:
        try:
            return _thumbnail(str(card.preview), card.preview.stat().st_mtime_ns)
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            pass  # a broken preview shows the placeholder
    return _placeholder()


def build_extra_networks_panel(tab: str) -> ExtraNetworksPanel:
    galleries: dict[str, gr.Gallery] = {}
    with gr.Column(visible=False, variant="panel", elem_id=f"{tab}_extra_networks_panel") as group:
        with gr.Row(equal_height=False, elem_classes=["sdweb-align-end"]):
            search = gr.Textbox(label="Search", placeholder="Search...", scale=4, elem_id=f"{tab}_extra_search")
            sort = gr.Dropdown(label="Sort", choices=list(SORT_KEYS), value="Default", scale=2,
                               elem_id=f"{tab}_extra_sort")
            descending = gr.Checkbox(label="Descending", value=False, scale=1, elem_id=f"{tab}_extra_sortorder")
            refresh = gr.Button("🔄", size="sm", scale=0, min_width=40, elem_id=f"{tab}_extra_refresh")
        with gr.Tabs(elem_id=f"{tab}_extra_tabs"):
            for kind in KINDS:
                with gr.Tab(KIND_LABELS[kind], id=kind, elem_id=f"{tab}_{kind}_tab"):
                    if kind == "hypernetworks":
                        gr.Markdown("Hypernetworks are not supported; none are listed.")
                    galleries[kind] = gr.Gallery(show_label=False, columns=6, height=300, object_fit="cover",
                                                 allow_preview=False, interactive=False, format="webp",
                                                 elem_id=f"{tab}_{kind}_cards", elem_classes=["sdweb-cards"])
        with gr.Accordion("Edit metadata", open=False, elem_id=f"{tab}_extra_metadata"):
            item = gr.Dropdown(label="Card", choices=[], value=None, elem_id=f"{tab}_extra_metadata_item")
            description = gr.Textbox(label="Description", lines=2, elem_id=f"{tab}_extra_description")
            with gr.Row():
                activation = gr.Textbox(label="Activation text", elem_id=f"{tab}_extra_activation_text")
                negative = gr.Textbox(label="Negative prompt", elem_id=f"{tab}_extra_negative_text")
                weight = gr.Slider(label="Preferred weight (0 = the default multiplier)", minimum=-1, maximum=2,
                                   step=0.05, value=0, elem_id=f"{tab}_extra_preferred_weight")
            notes = gr.Textbox(label="Notes", lines=2, elem_id=f"{tab}_extra_notes")
            with gr.Row(elem_classes=["sdweb-align-end"]):
                save = gr.Button("Save metadata", variant="primary", scale=0, min_width=160,
                                 elem_id=f"{tab}_extra_metadata_save")
                message = gr.Markdown("", elem_id=f"{tab}_extra_metadata_message")
    return ExtraNetworksPanel(group=group, open=gr.State(False), search=search, sort=sort, descending=descending,
                              refresh=refresh, galleries=galleries, shown={kind: gr.State([]) for kind in KINDS},
                              item=item, description=description, activation=activation, negative=negative,
                              weight=weight, notes=notes, save=save, message=message)


def all_cards(state: AppState) -> dict[str, list[Card]]:
    by_alias = state.settings.get("lora_preferred_name", "Alias from file") != "Filename"
    return {kind: cards_of(state.registry, kind, by_alias) for kind in KINDS}


def find_card(state: AppState, key: str | None) -> Card | None:
    for cards in all_cards(state).values():
        for card in cards:
            if card.key == key:
                return card
    return None


def _editor_values(card: Card | None) -> tuple[str, str, str, float, str]:
    meta = read_user_metadata(card.path) if card is not None else {}
    return (str(meta.get("description") or ""), str(meta.get("activation text") or ""),
            str(meta.get("negative text") or ""), preferred_weight(meta.get("preferred weight")),
            str(meta.get("notes") or ""))


def wire_extra_networks(state: AppState, row: PromptRow, panel: ExtraNetworksPanel, checkpoint: gr.Dropdown,
                        load_checkpoint: Callable[[str | None], Any], load_outputs: Sequence[Any]) -> None:
    """A checkpoint card sets the top bar's `checkpoint`, then `load_checkpoint(title)` (a generator of updates
    for `load_outputs`) loads it."""
    kinds = list(KINDS)

    def render(search: str, sort: str, descending: bool) -> list[Any]:
        cards = all_cards(state)
        galleries, keys = [], []
        for kind in kinds:
            shown = filter_and_sort(cards[kind], search, sort, bool(descending))
            galleries.append([(card_image(card), card.name) for card in shown])
            keys.append([card.key for card in shown])
        names = [card.key for kind in kinds for card in cards[kind] if kind != "hypernetworks"]
        return [*galleries, *keys, gr.Dropdown(choices=names)]

    view_inputs = [panel.search, panel.sort, panel.descending]
    view_outputs = [*(panel.galleries[kind] for kind in kinds), *(panel.shown[kind] for kind in kinds), panel.item]

    def toggle(is_open: bool, search: str, sort: str, descending: bool) -> list[Any]:
        shown = not is_open
        return [shown, gr.Column(visible=shown), *(render(search, sort, descending) if shown
                                                  else [gr.skip()] * len(view_outputs))]

    row.extra_networks.click(toggle, inputs=[panel.open, *view_inputs], outputs=[panel.open, panel.group,
                                                                                   *view_outputs],
                             api_visibility="private")
    for control, event in ((panel.search, "change"), (panel.sort, "change"), (panel.descending, "change")):
        getattr(control, event)(render, inputs=view_inputs, outputs=view_outputs, trigger_mode="always_last",
                                show_progress="hidden", api_visibility="private")

    def refresh(search: str, sort: str, descending: bool) -> list[Any]:
        state.registry.refresh_all()
        return render(search, sort, descending)

    panel.refresh.click(refresh, inputs=view_inputs, outputs=view_outputs, api_visibility="private")
    for kind in kinds:
        event = _wire_card_click(state, row, panel, kind, checkpoint)
        if kind == "checkpoints":
            event.then(load_checkpoint, inputs=checkpoint, outputs=list(load_outputs), show_progress="minimal",
                       show_progress_on=[load_outputs[-1]], api_visibility="private")
    _wire_editor(state, panel, render, view_inputs, view_outputs)


def _wire_card_click(state: AppState, row: PromptRow, panel: ExtraNetworksPanel, kind: str,
                     checkpoint: gr.Dropdown) -> Any:
    def click(keys: list[str], prompt: str, negative: str, evt: gr.SelectData) -> list[Any]:
        index = evt.index if isinstance(evt.index, int) else -1
        card = find_card(state, keys[index]) if 0 <= index < len(keys or []) else None
        if card is None:
            raise user_error("That card is gone; press 🔄 to refresh the list.")
        if card.kind == "checkpoints":
            return [prompt, negative, card.key, card.title]
        multiplier = float(state.settings.get("extra_networks_default_multiplier", 1.0))
        addition, negative_addition = prompt_text(card, multiplier)
        return [toggle_in_prompt(prompt, card, addition), toggle_negative(negative, negative_addition), card.key,
                gr.skip()]

    return panel.galleries[kind].select(click, inputs=[panel.shown[kind], row.prompt, row.negative_prompt],
                                        outputs=[row.prompt, row.negative_prompt, panel.item, checkpoint],
                                        api_visibility="private")


def _wire_editor(state: AppState, panel: ExtraNetworksPanel, render: Callable[..., list[Any]],
                 view_inputs: list[Any], view_outputs: list[Any]) -> None:
    fields = [panel.description, panel.activation, panel.negative, panel.weight, panel.notes]

    def load(key: str | None) -> tuple[Any, ...]:
        return _editor_values(find_card(state, key))

    def save(key: str | None, description: str, activation: str, negative: str, weight: float, notes: str,
             search: str, sort: str, descending: bool) -> list[Any]:
        card = find_card(state, key)
        if card is None:
            raise user_error("Choose a card first (click it in the panel, or pick it in the Card list).")
        try:
            written = save_user_metadata(card.path, {"description": description, "activation text": activation,
                                                     "negative text": negative, "preferred weight": weight,
                                                     "notes": notes})
        except UserError as error:
            raise user_error(f"{error.message} {error.hint}".strip()) from None
        return [f"Saved {Path(written).name}.", *render(search, sort, descending)]

    panel.item.change(load, inputs=panel.item, outputs=fields, show_progress="hidden", api_visibility="private")
    panel.save.click(save, inputs=[panel.item, *fields, *view_inputs], outputs=[panel.message, *view_outputs],
                     api_visibility="private")
