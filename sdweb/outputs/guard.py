"""Where outputs may be written and read, and which existing files a save may replace.

- Output folders: on a local server any folder the user configured (relative ones under the data dir, absolute
  ones as given, as A1111 allows); on a server reachable from other machines without
  --enable-insecure-extension-access (`exposure`) only folders under the default output folders of the data dir
  (outputs/ and log/images), and batch input folders only inside the data dir.
- Names made by the file-name patterns stay inside their output folder (filenames.safe_parts), and `inside`
  checks the real path, links followed, just before writing: a link in the output folder cannot lead out.
- An existing file is replaced only when this process wrote it (A1111's "Replace" for its own files); any
  other gets a numbered name (`is_taken` is the filenames module's `taken`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from sdweb.config.exposure import exposure_advice
from sdweb.core.errors import UserError

__all__ = ["OutputGuard", "OutputPathError"]

DEFAULT_OUTPUT_ROOTS = ("outputs", "log/images")
_REMEMBERED_FILES = 10000


class OutputPathError(UserError):
    """A folder or file outside what this server may write or read."""

    status_code = 403

    def __init__(self, message: str, *, code: str = "output_path_refused", hint: str = "") -> None:
        super().__init__(message, code=code, hint=hint)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _normalized(value: str | os.PathLike[str], base: Path) -> Path:
    path = Path(value).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


class OutputGuard:
    def __init__(self, data_dir: Path, exposure: str | None = None) -> None:
        self.data_dir = Path(os.path.normpath(Path(data_dir).absolute()))
        self.exposure = exposure
        self.roots = tuple(self.data_dir / root for root in DEFAULT_OUTPUT_ROOTS)
        self._lock = threading.Lock()
        self._written: OrderedDict[str, tuple[int, int, int, int]] = OrderedDict()

    # -- folders ----------------------------------------------------------------------------------------------
    def output_folder(self, value: str | os.PathLike[str], setting: str) -> Path:
        """The folder a setting (or a tab's output folder box) names, relative to the data dir; OutputPathError
        naming `setting` where this server may not write."""
        folder = _normalized(value, self.data_dir)
        if self.exposure is not None and not any(_within(folder, root) for root in self.roots):
            allowed = " or ".join(str(root) for root in self.roots)
            raise OutputPathError(
                f"{setting}: {folder} is outside the output folders. The server is reachable from other machines "
                f"({self.exposure}), so files are written only under {allowed}.",
                hint=f"Choose a folder there. {exposure_advice(self.exposure)}")
        return folder

    def input_folder(self, value: str | os.PathLike[str], label: str) -> Path:
        """A folder of images to read (batch tabs); on an exposed server only inside the data dir."""
        folder = _normalized(value, self.data_dir)
        if self.exposure is not None and not _within(folder, self.data_dir):
            raise OutputPathError(
                f"{label}: {folder} is outside the data folder {self.data_dir}. The server is reachable from "
                f"other machines ({self.exposure}), so it reads no other folder of this computer.",
                hint=f"Put the images in a folder inside {self.data_dir}. {exposure_advice(self.exposure)}")
        return folder

    @staticmethod
    def inside(path: Path, folder: Path) -> Path:
        """`path` when its real location (links followed) is inside the real `folder`; else OutputPathError."""
        real_folder = Path(os.path.realpath(folder))
        real_parent = Path(os.path.realpath(path.parent))
        if not _within(real_parent, real_folder) or path.name in ("", ".", ".."):
            raise OutputPathError(f"{path} would be written outside its output folder {folder} (a link inside "
                                  f"that folder leads to {real_parent}).",
                                  hint="Remove the link, or choose another output folder.")
        return path

    # -- files ------------------------------------------------------------------------------------------------
    def record(self, path: Path) -> None:
        """Remember a file this process just wrote (so "Replace" may replace it, and only it)."""
        try:
            stat = os.lstat(path)
        except OSError:
            return
        key = os.path.abspath(path)
        with self._lock:
            self._written[key] = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
            self._written.move_to_end(key)
            while len(self._written) > _REMEMBERED_FILES:
                self._written.popitem(last=False)

    def _ours(self, path: Path) -> bool:
        try:
            stat = os.lstat(path)
        except OSError:
            return False
        with self._lock:
            known = self._written.get(os.path.abspath(path))
        return known == (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def is_taken(self, path: Path) -> bool:
        """True when `path` exists (a link counts) and is not a file this process wrote and left unchanged."""
        return (path.exists() or path.is_symlink()) and not self._ours(path)

    def taken_with_sidecar(self, sidecar: bool) -> Callable[[Path], bool]:
        """A `taken` for the file-name builders that also guards the image's `.txt` (setting save_txt)."""
        if not sidecar:
            return self.is_taken
        return lambda path: self.is_taken(path) or self.is_taken(path.with_suffix(".txt"))
