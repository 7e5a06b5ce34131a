"""Extra Network cards: previews and user metadata beside the model files, the text a click adds or removes."""

import json
from pathlib import Path

import pytest

from sdweb.core.errors import UserError
from sdweb.models.cards import (
    Card,
    filter_and_sort,
    find_preview,
    prompt_text,
    read_user_metadata,
    save_user_metadata,
    toggle_in_prompt,
    toggle_negative,
)


def _lora(metadata=None, name="detail"):
    return Card(kind="lora", name=name, path=Path(f"/models/Lora/{name}.safetensors"), metadata=metadata or {})


@pytest.mark.parametrize(("metadata", "expected"), [
    ({}, "<lora:detail:1>"),
    ({"preferred weight": 0.6}, "<lora:detail:0.6>"),
    ({"preferred weight": "0.75", "activation text": "detailed, sharp"}, "<lora:detail:0.75> detailed, sharp"),
    ({"preferred weight": 0}, "<lora:detail:1>"),  # 0 = the default multiplier, as A1111
    ({"preferred weight": "heavy"}, "<lora:detail:1>"),  # junk in the json is ignored
])
def test_lora_text_uses_the_preferred_weight_and_activation_text(metadata, expected):
    assert prompt_text(_lora(metadata), 1.0)[0] == expected


def test_embedding_text_is_its_name_and_the_negative_text_goes_to_the_negative_prompt():
    card = Card(kind="textual_inversion", name="badhands", path=Path("/e/badhands.pt"))
    assert prompt_text(card, 1.0) == ("badhands", "")
    assert prompt_text(_lora({"negative text": "lowres"}), 1.0)[1] == "lowres"


@pytest.mark.parametrize(("prompt", "expected"), [
    ("", "<lora:detail:0.6> detailed"),
    ("a cat", "a cat <lora:detail:0.6> detailed"),
    ("a cat <lora:detail:0.6> detailed", "a cat"),  # a second click removes it
    ("a cat <lora:detail:1.3>, blue", "a cat, blue"),  # whatever weight the user typed
    ("a cat <lyco:detail>", "a cat"),
    ("<lora:detailed:1> a cat", "<lora:detailed:1> a cat <lora:detail:0.6> detailed"),  # another LoRA
])
def test_toggle_in_prompt(prompt, expected):
    card = _lora({"preferred weight": 0.6, "activation text": "detailed"})
    assert toggle_in_prompt(prompt, card, prompt_text(card, 1.0)[0]) == expected


def test_toggle_an_embedding_matches_the_whole_word_only():
    card = Card(kind="textual_inversion", name="bad", path=Path("/e/bad.pt"))
    assert toggle_in_prompt("badly drawn", card, "bad") == "badly drawn bad"
    assert toggle_in_prompt("a bad, cat", card, "bad") == "a, cat"
    assert toggle_negative("", "lowres") == "lowres" and toggle_negative("lowres", "lowres") == ""


def test_preview_files_as_a1111_looks_them_up(tmp_path):
    model = tmp_path / "detail.safetensors"
    model.write_bytes(b"x")
    assert find_preview(model) is None
    (tmp_path / "detail.png").write_bytes(b"png")
    assert find_preview(model) == tmp_path / "detail.png"
    (tmp_path / "detail.preview.jpg").write_bytes(b"jpg")
    assert find_preview(model) == tmp_path / "detail.preview.jpg"  # .preview.* first


def test_user_metadata_saved_atomically_keeping_other_keys(tmp_path):
    model = tmp_path / "detail.safetensors"
    (tmp_path / "detail.json").write_text(json.dumps({"sd version": "SD1", "notes": "old"}), encoding="utf-8")
    save_user_metadata(model, {"description": "adds detail", "preferred weight": "0.7", "notes": "new"})
    saved = read_user_metadata(model)
    assert saved == {"sd version": "SD1", "notes": "new", "description": "adds detail", "preferred weight": 0.7}
    assert not [path for path in tmp_path.iterdir() if path.suffix == ".tmp"]


def test_a_damaged_metadata_file_reads_empty_and_is_not_overwritten(tmp_path):
    model = tmp_path / "detail.safetensors"
    (tmp_path / "detail.json").write_text("{not json", encoding="utf-8")
    assert read_user_metadata(model) == {}
    with pytest.raises(UserError, match="detail.json"):
        save_user_metadata(model, {"description": "x"})
    assert (tmp_path / "detail.json").read_text(encoding="utf-8") == "{not json"


def test_search_and_sort():
    cards = [Card("lora", "b", Path("/b"), metadata={"description": "sharp"}, created=1, modified=5),
             Card("lora", "a", Path("/a"), created=2, modified=4), Card("lora", "c", Path("/c"), created=3)]
    assert [card.name for card in filter_and_sort(cards, "", "Name", False)] == ["a", "b", "c"]
    assert [card.name for card in filter_and_sort(cards, "", "Date Created", True)] == ["c", "a", "b"]
    assert [card.name for card in filter_and_sort(cards, "SHARP", "Default", False)] == ["b"]
    assert filter_and_sort(cards, "nothing", "Name", False) == []
