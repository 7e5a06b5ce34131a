"""Prompt styles: A1111's merge and extract rules, styles.csv reading and atomic saving."""

import pytest

from sdweb.prompts.styles import (
    PromptStyle,
    StyleDatabase,
    apply_style_texts,
    extract_style_text,
    extract_styles_from_prompt,
    merge_prompts,
    read_styles_csv,
)

MERGE = [
    ("masterpiece", "a cat", "a cat, masterpiece"),
    ("masterpiece", "", "masterpiece"),
    ("", "a cat", "a cat"),
    ("  masterpiece ", " a cat ", "a cat, masterpiece"),
    ("photo of {prompt}, 4k", "a cat", "photo of a cat, 4k"),
    ("{prompt} {prompt}", "cat", "cat cat"),  # every placeholder
    ("{prompt}", "", ""),
]


@pytest.mark.parametrize(("style", "prompt", "expected"), MERGE)
def test_merge_prompts(style, prompt, expected):
    assert merge_prompts(style, prompt) == expected


def test_styles_apply_in_order():
    assert apply_style_texts("cat", ["best", "photo of {prompt}"]) == "photo of cat, best"
    assert apply_style_texts("cat", ["photo of {prompt}", "best"]) == "photo of cat, best"
    assert apply_style_texts("cat", ["[{prompt}]", "({prompt})"]) == "([cat])"


EXTRACT = [
    # A1111's docstring examples
    ("masterpiece", "1girl, art by greg, masterpiece", (True, "1girl, art by greg")),
    ("masterpiece, {prompt}", "masterpiece, 1girl, art by greg", (True, "1girl, art by greg")),
    ("masterpiece, {prompt}", "exquisite, 1girl, art by greg", (False, "exquisite, 1girl, art by greg")),
    ("masterpiece", "1girl", (False, "1girl")),
    ("photo of {prompt}, 4k", " photo of a cat, 4k ", (True, "a cat")),
    ("best", "best", (True, "")),
]


@pytest.mark.parametrize(("style", "prompt", "expected"), EXTRACT)
def test_extract_style_text(style, prompt, expected):
    assert extract_style_text(style, prompt) == expected


def test_extract_styles_reverses_apply():
    styles = [PromptStyle("quality", "best quality", "lowres"), PromptStyle("photo", "photo of {prompt}, 4k", ""),
              PromptStyle("empty")]
    prompt = apply_style_texts("a cat", ["best quality", "photo of {prompt}, 4k"])
    negative = apply_style_texts("blurry", ["lowres", ""])
    assert (prompt, negative) == ("photo of a cat, best quality, 4k", "blurry, lowres")
    assert extract_styles_from_prompt(styles, prompt, negative) == (["quality", "photo"], "a cat", "blurry")


def test_extract_needs_the_negative_to_match_too():
    styles = [PromptStyle("quality", "best quality", "lowres")]
    assert extract_styles_from_prompt(styles, "cat, best quality", "blurry") == ([], "cat, best quality", "blurry")


CSV = (
    '\ufeffname,prompt,negative_prompt\r\n'
    'quality,"best quality, masterpiece",lowres\r\n'
    '"photo, 4k","photo of {prompt}, ""4k""",\r\n'
    '# divider,,\r\n'
    ',"nameless",\r\n'
    'multi,"line one\nline two",neg\r\n'
)


def test_read_a1111_csv(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_bytes(CSV.encode("utf-8"))
    styles = read_styles_csv(path)
    assert [s.name for s in styles] == ["quality", "photo, 4k", "multi"]
    assert styles[0] == PromptStyle("quality", "best quality, masterpiece", "lowres", path)
    assert styles[1].prompt == 'photo of {prompt}, "4k"' and styles[1].negative_prompt == ""
    assert styles[2].prompt == "line one\nline two"


def test_legacy_text_column(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_text("name,text\nold,old style text\n", encoding="utf-8")
    assert read_styles_csv(path) == [PromptStyle("old", "old style text", "", path)]


def test_database_apply_reports_unknown_names(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_bytes(CSV.encode("utf-8"))
    database = StyleDatabase([path])
    assert database.names() == ["quality", "photo, 4k", "multi"]
    prompt, negative, missing = database.apply("a cat", "", ["photo, 4k", "nope", "quality"])
    assert prompt == 'photo of a cat, "4k", best quality, masterpiece'
    assert negative == "lowres"
    assert missing == ["nope"]


def test_save_writes_atomically_keeps_a_backup_and_round_trips(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_bytes(CSV.encode("utf-8"))
    database = StyleDatabase([path])
    database.save_style(PromptStyle("new, odd \"name\"", "x, {prompt}", "y\nz"))
    assert (tmp_path / "styles.csv.bak").read_bytes() == CSV.encode("utf-8")
    assert path.read_bytes().startswith(b"\xef\xbb\xbfname,prompt,negative_prompt\r\n")
    again = StyleDatabase([path])
    assert again.get("new, odd \"name\"") == PromptStyle("new, odd \"name\"", "x, {prompt}", "y\nz", path)
    assert again.names() == ["quality", "photo, 4k", "multi", "new, odd \"name\""]
    assert not list(tmp_path.glob(".styles.csv.*.tmp"))


def test_save_replaces_by_name_and_delete_removes(tmp_path):
    path = tmp_path / "styles.csv"
    database = StyleDatabase([path])
    assert database.names() == []  # a missing file is an empty database
    database.save_style(PromptStyle("a", "one"))
    database.save_style(PromptStyle("a", "two"))
    assert StyleDatabase([path]).get("a").prompt == "two"
    assert database.delete_style("a") and not database.delete_style("a")
    assert StyleDatabase([path]).names() == []


def test_outside_edits_are_picked_up(tmp_path):
    path = tmp_path / "styles.csv"
    database = StyleDatabase([path])
    assert database.get("s") is None
    path.write_text("name,prompt,negative_prompt\ns,hello,\n", encoding="utf-8")
    assert database.get("s").prompt == "hello"


def test_several_files_and_patterns_later_names_win(tmp_path):
    (tmp_path / "a.csv").write_text("name,prompt\nshared,from a\nonly_a,x\n", encoding="utf-8")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "b.csv").write_text("name,prompt\nshared,from b\n", encoding="utf-8")
    database = StyleDatabase([tmp_path / "a.csv", tmp_path / "extra" / "*.csv"])
    assert database.get("shared").prompt == "from b"
    assert database.default_path == tmp_path / "a.csv"
    database.save_style(PromptStyle("shared", "changed"))  # saved back into the file it came from
    assert "changed" in (tmp_path / "extra" / "b.csv").read_text(encoding="utf-8-sig")
    assert "changed" not in (tmp_path / "a.csv").read_text(encoding="utf-8")


def test_unreadable_file_is_skipped_and_left_alone(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    database = StyleDatabase([path])
    assert database.names() == []
    assert path.read_bytes() == b"\xff\xfe\x00garbage"
