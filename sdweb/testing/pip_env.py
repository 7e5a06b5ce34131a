"""For tests of pip runs on behalf of extensions, offline: tiny local wheels, and an overlay environment whose
python sees every package of the running one but installs into its own folder, so a test's pip installs (or a
hostile downgrade on unguarded code) never change the environment that runs the tests."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Sequence
from pathlib import Path


def write_wheel(folder: Path, name: str, version: str, requires: Sequence[str] = (),
                extras: Sequence[str] = ()) -> Path:
    """A pure-Python wheel `name==version` with `requires` as its dependencies (one module, `name`); `extras`
    are the extras it provides (a requirement is an extra's with `; extra == "name"`)."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                            + "".join(f"Provides-Extra: {extra}\n" for extra in extras)
                            + "".join(f"Requires-Dist: {requirement}\n" for requirement in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: sdweb.testing\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def digest(text: str) -> str:
        raw = hashlib.sha256(text.encode()).digest()
        return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    files[f"{info}/RECORD"] = "".join(f"{path},{digest(text)},{len(text.encode())}\n" for path, text in files.items()) \
        + f"{info}/RECORD,,\n"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
    return path


def overlay_environment(folder: Path) -> Path:
    """A venv in `folder` (no pip of its own) that also sees the running environment's packages (pip included)
    through a .pth file; pip run with its python installs into `folder` only. Returns that python."""
    folder = Path(folder)
    venv.EnvBuilder(with_pip=False, symlinks=sys.platform != "win32").create(folder)
    python = folder / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(own) / "sdweb-test-overlay.pth").write_text("\n".join(sorted(shared)) + "\n", encoding="utf-8")
    return python


def installed_versions(python: Path | str, names: Sequence[str]) -> dict[str, str | None]:
    """The version of each of `names` that `python` sees (None when not installed), in one run."""
    code = ("import importlib.metadata as m, json, sys\nfound = {}\nfor name in sys.argv[1:]:\n"
            "    try: found[name] = m.version(name)\n    except m.PackageNotFoundError: found[name] = None\n"
            "print(json.dumps(found))")
    run = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def installed_version(python: Path | str, name: str) -> str | None:
    """The version of `name` that `python` sees (None when not installed)."""
    return installed_versions(python, [name])[name]
