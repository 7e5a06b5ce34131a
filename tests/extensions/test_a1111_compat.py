"""Issue 21: A1111 extensions installed from a (file://) git URL through sdweb's install route, then loaded at the
next start through the compatibility layer (sdweb/compat/a1111). The extensions are minimal stand-ins under
tests/data/a1111_extensions that use the same imports and hooks as the real ones (see the README there).

pip never reaches the network: PIP_NO_INDEX with a local folder of tiny wheels; the only pip run (the
dynamic-prompts-like install.py asking for a package that needs torch==1.0) is refused before anything installs.
"""

from __future__ import annotations

import importlib.util
import random
import shutil
import sys
from importlib import metadata
from pathlib import Path

import gradio
import pytest
from extension_world import listing, txt2img

from sdweb.cli import parse_options
from sdweb.extensions.actions import ExtensionActions
from sdweb.extensions.pip_guard import protected_versions
from sdweb.server import create_app
from sdweb.state import build_app_state
from sdweb.testing.client import local_client
from sdweb.testing.git_repo import git_repo_from
from sdweb.testing.pip_env import write_wheel
from sdweb.testing.tiny import write_tiny
from sdweb.ui.tabs.extensions_tables import installed_html

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "a1111_extensions"
EXTENSIONS = ("tagcomplete-like", "dynamic-prompts-like", "wildcards-like", "images-browser-like",
              "controlnet-like", "regional-prompter-like", "failing-install-like")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("a1111")
    data = root / "data"
    write_tiny("sd1", data / "models" / "Stable-diffusion" / "tiny.safetensors", seed=1)
    wheels = root / "wheels"
    write_wheel(wheels, "dynamicprompts-like", "1.0", ["torch==1.0"])  # would replace sdweb's torch
    urls = {name: git_repo_from(FIXTURES / name, root / "src" / name) for name in EXTENSIONS}
    before = protected_versions()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_NO_INDEX", "1")
        patch.setenv("PIP_FIND_LINKS", str(wheels))
        patch.delenv("PIP_CONSTRAINT", raising=False)
        state = build_app_state(parse_options(["--data-dir", str(data), "--api"], {}))
        try:
            api = local_client(create_app(state))
            installed = {name: api.post("/sdweb/v1/extensions/install", json={"url": url})
                         for name, url in urls.items()}
        finally:
            state.queue.shutdown()
        # the restart, with images-browser-like's own flag in COMMANDLINE_ARGS as an A1111 user has it
        restart = parse_options(["--data-dir", str(data)], {"COMMANDLINE_ARGS": "--api --image-browser-tmp-db"})
        state = build_app_state(restart)
        try:
            yield {"state": state, "api": local_client(create_app(state)), "installed": installed, "data": data,
                   "before": before}
        finally:
            state.queue.shutdown()


def test_every_extension_installs_through_the_install_route(world):
    for name, response in world["installed"].items():
        assert response.status_code == 200, (name, response.text)
    dynamic = world["installed"]["dynamic-prompts-like"].json()
    assert dynamic["install_script_rc"] == 1  # launch.run_pip was refused, so install.py failed
    assert any("torch" in warning for warning in dynamic["warnings"]), dynamic["warnings"]


def test_launch_run_pip_is_held_to_sdwebs_constraints(world):
    """install.py's launch.run_pip("install dynamicprompts-like") needs torch==1.0: refused, nothing installed,
    sdweb's own packages unchanged after the install and the restart (which ran install.py again)."""
    assert protected_versions() == world["before"]
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("dynamicprompts-like")
    entry = listing(world)["dynamic-prompts-like"]
    assert entry["install_error"] and "torch" in entry["install_error"], entry


def test_extensions_are_listed_as_a1111_with_their_status(world):
    found = listing(world)
    for name in EXTENSIONS:
        assert found[name]["api"] == "A1111", found[name]
    for name in ("tagcomplete-like", "dynamic-prompts-like", "wildcards-like", "images-browser-like",
                 "failing-install-like"):
        assert found[name]["loaded"] is True and found[name]["incompatible"] is None, found[name]
    assert found["controlnet"]["api"] == "sdweb" and found["controlnet"]["loaded"] is True
    for name in ("controlnet-like", "regional-prompter-like"):
        assert found[name]["loaded"] is False and found[name]["error"] is None
        assert "model internals" in found[name]["incompatible"] and "ldm" in found[name]["incompatible"]


def test_extensions_tab_shows_api_and_status(world):
    state = world["state"]
    table = installed_html(state.extensions.extensions, ExtensionActions.for_state(state).installed())
    assert "<th>API</th>" in table
    assert "incompatible: it patches A1111&#x27;s model internals (ldm" in table
    assert "loaded; install.py failed: install.py failed (1)" in table  # failing-install-like still loads


def test_failing_install_py_still_loads_the_scripts(world):
    info = txt2img(world, "a plain dog")
    assert "Install probe: ran" in info["infotexts"][0]


def test_dynamic_prompts_variant_in_the_infotext(world):
    info = txt2img(world, "a {red|blue} cat")
    first_line = info["infotexts"][0].split("\n")[0]
    assert first_line in ("a red cat", "a blue cat"), info["infotexts"][0]
    assert "Template: a {red|blue} cat" in info["infotexts"][0]


def _generator():
    path = FIXTURES / "dynamic-prompts-like" / "sd_dynamic_prompts_like" / "generator.py"
    spec = importlib.util.spec_from_file_location("fixture_generator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


def test_dynamic_prompts_give_each_image_its_own_prompt(world):
    """all_prompts written by process() reach each image: batch count 3, and a batch of 2 (run as 2 batches)."""
    template = "x {a|b|c|d|e|f|g|h|i|j}"
    generate = _generator()
    for fields in ({"n_iter": 3, "batch_size": 1}, {"n_iter": 1, "batch_size": 2}):
        info = txt2img(world, template, **fields)
        expected = [generate(template, Path("."), random.Random(seed)) for seed in info["all_seeds"]]
        assert info["all_prompts"] == expected, fields
        assert [text.split("\n")[0] for text in info["infotexts"][-len(expected):]] == expected


def test_wildcards_folders(world):
    info = txt2img(world, "a __color__ bird and a __shade__ {cat|cat}")
    assert info["infotexts"][0].split("\n")[0] == "a teal bird and a crimson cat"  # wildcards ext, dynamic's folder
    assert "Wildcard prompt:" in info["infotexts"][0]


def test_tagcomplete_route_settings_and_javascript(world):
    api, state = world["api"], world["state"]
    tags = api.get("/tacapi/v1/tags")
    assert tags.status_code == 200 and tags.text.startswith("1girl,")
    assert api.get("/tacapi/v1/embeddings").json() == []
    # A1111's file= route, which the real tagcomplete reads its tag files through: an A1111 extension's own files
    tag_file = world["data"] / "extensions" / "tagcomplete-like" / "tags" / "danbooru.csv"
    assert api.get(f"/file={tag_file}").text == tags.text
    assert api.get("/file=tmp/tagAutocompletePath.txt").text == str(tag_file.parent)  # written to script_path/tmp
    assert api.get("/file=extensions/tagcomplete-like/scripts/tag_autocomplete_helper.py").status_code == 404
    options = api.get("/sdapi/v1/options").json()
    assert options["tac_maxResults"] == 5 and options["tac_active"] is True and options["wildcards_same_seed"] is False
    script = state.extensions.javascript()
    assert script.index("window.onUiLoaded") < script.index("// tagcomplete-like/tagAutocomplete.js")
    assert '"tac_maxResults": 5' in script


def test_each_javascript_file_is_its_own_script_in_the_page(world):
    """As in A1111, an error in one extension's javascript does not stop the page helpers or the others."""
    files = world["state"].extensions.javascript_files()
    assert "window.onUiLoaded" in files[0] and files[1].startswith("// tagcomplete-like/tagAutocomplete.js")
    page = world["api"].get("/").text
    helpers, tagcomplete = page.index("window.onUiLoaded = "), page.index("// tagcomplete-like/tagAutocomplete.js")
    between = page[helpers:tagcomplete]  # the page carries the head in its JSON config: "<" is \\u003c there
    assert "</script>" in between or "\\u003c/script\\u003e" in between


def test_page_helpers_know_the_extension_tabs_and_a1111_ids(world):
    """page.js opens img2img and the A1111 extensions' tabs (images-browser's) before onUiLoaded callbacks run,
    and reads A1111's quicksettings ids as sdweb's."""
    from sdweb.compat.a1111.page import page_javascript

    script = page_javascript()
    assert 'const renderTabs = ["img2img", "image_browser"];' in script
    assert '"setting_sd_model_checkpoint": "sd_model_checkpoint"' in script
    assert not any(name in script for name in ("__OPTIONS__", "__RENDER_TABS__", "__A1111_IDS__"))


def test_folder_options_are_in_the_data_folder(world):
    """A1111's folder settings are relative to its data folder; an extension reading opts gets sdweb's data
    folder, never the working directory."""
    from sdweb.compat.a1111.modules.options import Options

    expected = str(world["data"] / "outputs" / "txt2img-images")
    assert Options().outdir_txt2img_samples == expected
    assert Options().data["outdir_txt2img_samples"] == expected
    assert Options().outdir_samples == ""  # empty stays empty: "use the three below"


def test_images_browser_tab_lists_the_outputs(world):
    from sdweb.ui.app import build_blocks

    txt2img(world, "a saved tree", save_images=True)
    blocks = build_blocks(world["state"])
    config = blocks.get_config_file()
    tabs = [c["props"] for c in config["components"] if c["type"] == "tabitem"]
    browser_tab = next(tab for tab in tabs if tab.get("elem_id") == "tab_image_browser")
    assert browser_tab["label"] == "Image Browser"
    assert browser_tab["render_children"] is True  # its elements are in the page before it opens, as in A1111
    refresh = next(index for index, dependency in enumerate(config["dependencies"]) if dependency["js"] == "() => []")
    listed = blocks.fns[refresh].fn()["value"]
    saved = sorted((world["data"] / "outputs").rglob("*.png"))
    assert saved and all(str(path) in listed.split("\n") for path in saved)


def test_a1111_names_stay_inside_the_extensions_scope(world):
    assert "modules" not in sys.modules and "launch" not in sys.modules
    assert not hasattr(gradio, "Box")  # the Gradio 3 alias exists for extensions only


def test_cmd_opts_paths_and_a1111_only_options(world):
    """What real extensions read at import: folder flags resolved (A1111 never leaves them None), a flag their
    preload.py adds (images-browser's) as COMMANDLINE_ARGS gave it, script_path the data folder (never sdweb's checkout),
    settings A1111 has and sdweb does not at A1111's defaults."""
    from sdweb.compat.a1111.modules import paths, shared
    from sdweb.compat.a1111.modules.options import Options

    data_paths = world["state"].paths
    assert shared.cmd_opts.lora_dir == str(data_paths.lora)
    assert shared.cmd_opts.ui_settings_file == str(data_paths.config_file)
    assert shared.cmd_opts.image_browser_tmp_db is True  # images-browser-like's preload.py, set at the restart
    assert shared.cmd_opts.no_such_flag_anywhere is None
    flags = world["api"].get("/sdapi/v1/cmd-flags").json()  # A1111 lists extensions' flags there too
    assert flags["image_browser_tmp_db"] is True and "no_such_flag_anywhere" not in flags
    assert paths.script_path == str(world["data"]) == shared.script_path
    assert Options().temp_dir == "" and Options().extra_networks_hidden_models == "When searched"


def test_run_pnginfo_reads_a_saved_image(world):
    from PIL import Image

    from sdweb.compat.a1111.modules.extras import run_pnginfo

    txt2img(world, "a pnginfo lamp", save_images=True)
    saved = max((world["data"] / "outputs").rglob("*.png"), key=lambda path: path.stat().st_mtime)
    with Image.open(saved) as image:
        _, geninfo, html = run_pnginfo(image)
    assert geninfo.startswith("a pnginfo lamp\n") and "<b>parameters</b>" in html
    assert run_pnginfo(None) == ("", None, "")


def test_ui_common_save_files_writes_to_the_data_folders_log(world):
    """A1111's gallery Save, which extensions reuse: the selected image with its infotext into log/images of the
    data folder, plus a log.csv row."""
    import json

    from PIL import Image

    from sdweb.compat.a1111.modules.ui_common import save_files

    images = [Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")]
    data = json.dumps({"infotexts": ["a red square\nSteps: 2, Seed: 5", "a blue square\nSteps: 2, Seed: 6"],
                       "index_of_first_image": 0})
    update, status = save_files(data, images, False, 1)
    (saved,) = [Path(path) for path in update["value"] if path.endswith(".png")]
    assert saved.parent == world["data"] / "log" / "images" and "Saved:" in status
    with Image.open(saved) as image:
        assert image.getpixel((0, 0)) == (0, 0, 255) and image.info["parameters"].startswith("a blue square")
    assert "a blue square" in (saved.parent / "log.csv").read_text(encoding="utf-8")
    assert save_files(data, [], False, -1)[1].endswith("There is no image to save.</p>")
