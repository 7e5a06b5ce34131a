"""pip runs for extensions never replace sdweb's packages (issue 17, item 6). Offline: tiny local wheels
(`--no-index --find-links`) and an overlay environment, so nothing a test installs reaches the test venv."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from sdweb.cli import parse_options
from sdweb.extensions.actions import ExtensionActions
from sdweb.extensions.pip_guard import (
    RequirementConflict,
    conflicts_in_output,
    constraints_text,
    protected_versions,
    run_pip_for_extension,
)
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client
from sdweb.testing.pip_env import installed_version, overlay_environment, write_wheel
from sdweb.ui.tabs.extensions_tables import installed_html

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")

HOSTILE_INSTALL_PY = """\
import subprocess
# what sd-dynamic-prompts' install.py did: pip straight from install.py, its exit code ignored
subprocess.run([{python!r}, "-m", "pip", "install", "transformers==4.57.0"])
print("install.py done")
"""


def write_test_wheels(folder: Path) -> Path:
    """The local index: a package needing transformers<5, transformers 4.57.0 itself, one needing torchvision,
    torchvision, and one that fits (needs numpy, which is installed)."""
    write_wheel(folder, "needs-old-transformers", "1.0", ["transformers<5"])
    write_wheel(folder, "transformers", "4.57.0")
    write_wheel(folder, "needs-torchvision", "1.0", ["torchvision"])
    write_wheel(folder, "torchvision", "0.28.0")
    write_wheel(folder, "fits-fine", "1.0", ["numpy"])
    # like dynamicprompts: its "magic" extra needs transformers<5, its "small" extra fits
    write_wheel(folder, "prompts-like", "1.0", ['needs-old-transformers; extra == "magic"',
                                                'small-helper; extra == "small"'], extras=["magic", "small"])
    write_wheel(folder, "small-helper", "1.0")
    write_wheel(folder, "plain-helper", "1.0")
    return folder


@pytest.fixture(scope="module")
def overlay(tmp_path_factory):
    """(overlay python, wheels folder) with pip pointed at the local wheels only, for this module's tests."""
    root = tmp_path_factory.mktemp("pip")
    wheels = write_test_wheels(root / "wheels")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_NO_INDEX", "1")
        patch.setenv("PIP_FIND_LINKS", str(wheels))
        patch.delenv("PIP_CONSTRAINT", raising=False)
        yield overlay_environment(root / "env"), wheels


def test_protected_versions_are_sdwebs_dependencies_transitively_plus_torch():
    versions = protected_versions()
    for name in ("torch", "transformers", "huggingface-hub", "diffusers", "gradio", "pydantic", "numpy",
                 "safetensors", "fastapi", "starlette"):  # starlette only through gradio -> fastapi
        assert versions[name] == metadata.version(name), name
    assert "pytest" not in versions and "sdweb" not in versions  # dev extras and sdweb itself are not pinned
    text = constraints_text(versions)
    assert f"transformers=={metadata.version('transformers')}\n" in text
    assert "torchvision<0" in text.splitlines() or "torchvision" in versions


def test_pip_conflict_report_is_read():
    lines = ["ERROR: Cannot install fakeext==1.0 because these package versions have conflicting dependencies.",
             "", "The conflict is caused by:", "    fakeext 1.0 depends on transformers<5",
             "    The user requested (constraint) transformers==5.25.0", "", "To fix this you could try to:",
             "1. loosen the range of package versions you've specified"]
    conflict = conflicts_in_output(lines)
    assert conflict is not None and conflict.packages == ("transformers",)
    assert conflict.causes == ("fakeext 1.0 depends on transformers<5",)
    assert conflicts_in_output(["ERROR: No matching distribution found for nothing-here"]) is None


@pytest.mark.parametrize("args", [["install", "needs-old-transformers"], ["install", "transformers==4.57.0"],
                                  ["install", "--no-deps", "--force-reinstall", "transformers<5"]])
def test_a_requirement_against_a_protected_package_is_refused_and_nothing_installed(overlay, args):
    python, _ = overlay
    before = installed_version(python, "transformers")
    with pytest.raises(RequirementConflict) as refused:
        run_pip_for_extension("sd-dynamic-prompts", args, python=str(python), progress=lambda _line: None)
    assert "transformers" in refused.value.message and "sd-dynamic-prompts" in refused.value.message
    assert refused.value.status_code == 409
    assert installed_version(python, "transformers") == before == metadata.version("transformers")
    assert installed_version(python, "needs-old-transformers") is None


def test_torchvision_is_never_installed(overlay):
    python, _ = overlay
    if "torchvision" in protected_versions():
        pytest.skip("torchvision is installed here (then it is pinned like the rest)")
    with pytest.raises(RequirementConflict, match="torchvision") as refused:
        run_pip_for_extension("sd-webui-controlnet", ["install", "needs-torchvision"], python=str(python),
                              progress=lambda _line: None)
    assert "never installs" in refused.value.message
    assert installed_version(python, "torchvision") is None


def test_a_requirement_that_fits_is_installed(overlay):
    python, _ = overlay
    lines: list[str] = []
    assert run_pip_for_extension("fine-ext", ["install", "fits-fine"], python=str(python), progress=lines.append) == 0
    assert installed_version(python, "fits-fine") == "1.0"
    assert any("Checking what pip would install" in line for line in lines)


def test_pip_unavailable_protected_requirement_is_a_conflict():
    """pip's answer when a dependency's only allowed version is excluded by a constraint."""
    lines = ["ERROR: Could not find a version that satisfies the requirement transformers[torch]<5; "
             'extra == "magicprompt" (from dynamicprompts[magicprompt]) (from versions: none)',
             "ERROR: No matching distribution found for transformers[torch]<5"]
    conflict = conflicts_in_output(lines, {"transformers"})
    assert conflict is not None and conflict.packages == ("transformers",)
    assert conflict.causes == ("dynamicprompts[magicprompt] depends on transformers[torch]<5",)
    other = ["ERROR: Could not find a version that satisfies the requirement nothing-here (from versions: none)"]
    assert conflicts_in_output(other, {"transformers"}) is None


def test_conflicting_extras_are_left_out_and_the_package_installed(overlay):
    """sd-dynamic-prompts asks for dynamicprompts[magicprompt] (transformers<5): the package and its extras that
    fit are installed, the conflicting extra is left out with a message, sdweb's transformers stays."""
    python, _ = overlay
    lines: list[str] = []
    code = run_pip_for_extension("sd-dynamic-prompts", ["install", "prompts-like[magic,small]"], python=str(python),
                                 progress=lines.append)
    assert code == 0
    assert installed_version(python, "prompts-like") == "1.0" and installed_version(python, "small-helper") == "1.0"
    assert installed_version(python, "needs-old-transformers") is None
    assert installed_version(python, "transformers") == metadata.version("transformers")
    assert any("installing without the extras prompts-like[magic]" in line and "transformers" in line
               for line in lines), lines


def test_pip_started_by_extension_code_goes_through_the_guard(overlay, tmp_path):
    """An A1111 extension's `subprocess.run([python, "-m", "pip", "install", ...])` (sd-dynamic-prompts' way) is
    held to the constraints: refused with the package named; a package that fits installs."""
    from sdweb.compat.a1111.scope import SCOPED_BUILTINS

    python, _ = overlay
    code = (f"import subprocess\nrefused = subprocess.run([{str(python)!r}, '-m', 'pip', 'install', "
            f"'needs-old-transformers'], capture_output=True, text=True)\n"
            f"fits = subprocess.check_call([{str(python)!r}, '-m', 'pip', 'install', 'plain-helper'])\n"
            "echo = subprocess.run(['echo', 'hi'], capture_output=True, text=True).stdout\n")
    namespace = {"__builtins__": SCOPED_BUILTINS, "__name__": "fixture_extension"}
    exec(compile(code, "<extension>", "exec"), namespace)
    assert namespace["refused"].returncode == 1 and "transformers" in namespace["refused"].stdout
    assert namespace["fits"] == 0 and installed_version(python, "plain-helper") == "1.0"
    assert namespace["echo"] == "hi\n"
    assert installed_version(python, "needs-old-transformers") is None
    assert installed_version(python, "transformers") == metadata.version("transformers")


def test_uninstalling_a_protected_package_is_refused(overlay):
    python, _ = overlay
    with pytest.raises(RequirementConflict, match="uninstall transformers"):
        run_pip_for_extension("x", ["uninstall", "-y", "transformers"], python=str(python), progress=print)


def _git_repo(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1"}
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", *command], cwd=folder, env=env, check=True, capture_output=True)
    return folder


def hostile_extension(folder: Path, python: Path) -> Path:
    """An extension whose requirements.txt and install.py both want transformers 4 (pip aimed at `python`)."""
    return _git_repo(folder, {"requirements.txt": "needs-old-transformers\n",
                              "install.py": HOSTILE_INSTALL_PY.format(python=str(python)),
                              "README.md": "hostile test extension\n"})


def test_hostile_extension_install_keeps_sdweb_working_and_needs_attention(overlay, tmp_path):
    python, _ = overlay
    repo = hostile_extension(tmp_path / "upstream" / "sd-dynamic-prompts", python)
    data = tmp_path / "data"
    state = build_app_state(parse_options(["--data-dir", str(data), "--api", "--nowebui"], {}))
    try:
        actions = dataclasses.replace(ExtensionActions.for_state(state), python=str(python))
        lines: list[str] = []
        result = actions.install(repo.as_uri(), progress=lines.append)
        assert result.name == "sd-dynamic-prompts" and not result.ok
        text = " ".join(result.warnings)
        assert "requirements.txt refused" in text and "install.py" in text and "transformers" in text
        assert installed_version(python, "transformers") == metadata.version("transformers")
        assert installed_version(python, "needs-old-transformers") is None

        listing = local_client(create_app(state)).get("/sdweb/v1/extensions").json()
        (entry,) = [item for item in listing if item["name"] == "sd-dynamic-prompts"]
        assert "transformers" in entry["needs_attention"]
        html = installed_html([], actions.installed(), {}, actions.needing_attention())
        assert "needs attention" in html and "transformers" in html

        actions.remove("sd-dynamic-prompts")
        assert actions.needing_attention() == {}
    finally:
        state.queue.shutdown()


def test_install_py_conflict_at_start_marks_the_extension(overlay, tmp_path):
    """An extension copied into extensions/ by hand: its install.py runs at start, under the constraints."""
    python, _ = overlay
    data = tmp_path / "data"
    folder = data / "extensions" / "copied-in"
    folder.mkdir(parents=True)
    (folder / "install.py").write_text(textwrap.dedent(HOSTILE_INSTALL_PY.format(python=str(python))))
    state = build_app_state(parse_options(["--data-dir", str(data), "--nowebui"], {}))
    try:
        assert installed_version(python, "transformers") == metadata.version("transformers")
        attention = ExtensionActions.for_state(state).needing_attention()
        assert "transformers" in attention.get("copied-in", "")
    finally:
        state.queue.shutdown()
