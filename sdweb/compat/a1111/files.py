"""A1111's `file=` route for extensions' own files: `GET /file=<path>`, which A1111's page (Gradio 3) answers for
files under the webui folder. Extensions' javascript fetches their data through it: tagcomplete reads
`file=tmp/tagAutocompletePath.txt`, then `file=<its folder>/tags/danbooru.csv`.

Served here: files inside the folders of the loaded A1111 extensions, and files directly in the data folder's
tmp/ (where A1111 extensions write what their javascript reads). A relative path is relative to the data folder
(A1111: the webui folder). Refused: anything else, hidden names (.git, .env), and kinds of file that are not
page data (Python, databases, keys): A1111 serves more, but nothing an extension's page needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from fastapi.responses import FileResponse

PAGE_FILE_SUFFIXES = frozenset({
    ".txt", ".csv", ".tsv", ".json", ".yaml", ".yml", ".md", ".html", ".htm", ".js", ".mjs", ".css", ".map",
    ".png", ".jpg", ".jpeg", ".webp", ".gif", ".svg", ".ico", ".avif", ".bmp", ".woff", ".woff2", ".ttf", ".otf",
    ".mp3", ".wav", ".ogg", ".mp4", ".webm"})


def servable(path_text: str, data_dir: Path, extension_folders: Sequence[Path]) -> Path | None:
    """The file `file=<path_text>` may serve, or None (see the module docstring)."""
    given = Path(path_text)
    path = (given if given.is_absolute() else Path(data_dir) / given).resolve()
    if path.suffix.lower() not in PAGE_FILE_SUFFIXES or not path.is_file():
        return None
    for folder in (Path(folder).resolve() for folder in extension_folders):
        if path.is_relative_to(folder):
            hidden = any(part.startswith(".") for part in path.relative_to(folder).parts)
            return None if hidden else path
    tmp = (Path(data_dir) / "tmp").resolve()
    if path.parent == tmp and not path.name.startswith("."):
        return path
    return None


def file_route(data_dir: Path, extension_folders: Sequence[Path]) -> Callable[[Any], None]:
    """An app-started callback adding `GET /file=<path>` for the extensions in `extension_folders`."""
    folders = tuple(Path(folder) for folder in extension_folders)

    def add(app: Any) -> None:
        @app.get("/file={path:path}", include_in_schema=False)
        def extension_file(path: str) -> FileResponse:
            found = servable(path, Path(data_dir), folders)
            if found is None:
                raise HTTPException(status_code=404, detail=f"No extension file {path}")
            return FileResponse(found)

    return add
