"""A1111's `file=` route (sdweb/compat/a1111/files.py): what an A1111 extension's javascript may fetch, and what
it may not (anything outside the extension folders and the data folder's tmp/, hidden names, code)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from sdweb.compat.a1111.files import file_route, servable
from sdweb.testing.client import local_client


@pytest.fixture
def folders(tmp_path):
    data = tmp_path / "data"
    extension = data / "extensions" / "tagger"
    for name, text in {"tags/danbooru.csv": "1girl,0\n", "scripts/helper.py": "x = 1\n", ".git/config.txt": "[core]",
                       "notes.txt": "note"}.items():
        (extension / name).parent.mkdir(parents=True, exist_ok=True)
        (extension / name).write_text(text, encoding="utf-8")
    (data / "tmp").mkdir()
    (data / "tmp" / "tagAutocompletePath.txt").write_text(str(extension / "tags"), encoding="utf-8")
    (data / "tmp" / "deep").mkdir()
    (data / "tmp" / "deep" / "inner.txt").write_text("inner", encoding="utf-8")
    (data / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "outside.txt").write_text("secret", encoding="utf-8")
    return data, extension


def test_extension_files_and_tmp_are_served(folders):
    data, extension = folders
    assert servable(str(extension / "tags" / "danbooru.csv"), data, [extension]) == extension / "tags/danbooru.csv"
    assert servable("extensions/tagger/notes.txt", data, [extension]) == extension / "notes.txt"  # data-relative
    assert servable("tmp/tagAutocompletePath.txt", data, [extension]) == data / "tmp/tagAutocompletePath.txt"


@pytest.mark.parametrize("path", ["extensions/tagger/scripts/helper.py", "extensions/tagger/.git/config.txt",
                                  "config.json", "../outside.txt", "extensions/tagger/../../../outside.txt",
                                  "tmp/deep/inner.txt", "extensions/tagger/missing.txt", "tmp"])
def test_other_files_are_refused(folders, path):
    data, extension = folders
    assert servable(path, data, [extension]) is None


def test_route_serves_and_refuses(folders):
    data, extension = folders
    app = FastAPI()
    file_route(data, [extension])(app)
    client = local_client(app)
    served = client.get(f"/file={extension}/tags/danbooru.csv")
    assert served.status_code == 200 and served.text == "1girl,0\n"
    assert client.get("/file=tmp/tagAutocompletePath.txt").text == str(extension / "tags")
    refused = client.get("/file=extensions/tagger/scripts/helper.py")
    assert refused.status_code == 404 and "No extension file" in refused.text
