"""Extension installer: clones from local file:// repositories, never the network."""

import json
import os
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sdweb.cli import parse_options
from sdweb.core.errors import NotFoundError, UserError
from sdweb.extensions.giturl import folder_name_from_url, normalize_git_url, redact_url, validate_git_url
from sdweb.extensions.index import load_index, read_index
from sdweb.extensions.installer import (
    ExtensionAccessError,
    check_for_updates,
    cleanup_leftovers,
    exposure_refusal,
    find_installed,
    install_from_url,
    list_installed,
    remove,
    require_extension_access,
    run_install_script,
    update,
)
from sdweb.extensions.metadata import is_enabled, parse_metadata, read_metadata, set_enabled

INSTALL_PY = """\
import os, pathlib, sys
here = pathlib.Path(__file__).resolve().parent
(here / "installed.marker").write_text(os.getcwd() + "\\n" + os.environ.get("PYTHONPATH", ""))
print("install.py ran")
"""


def _git(cwd, *args):
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main",
               *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def upstream(tmp_path):
    repo = tmp_path / "upstream" / "sd-webui-test-ext.git"
    (repo / "scripts").mkdir(parents=True)
    (repo / "install.py").write_text(INSTALL_PY)
    (repo / "scripts" / "x.py").write_text("VALUE = 1\n")
    (repo / "metadata.ini").write_text("[Extension]\nName = Test-Ext\nRequires = other, another\n")
    (repo / "requirements.txt").write_text("# nothing to install\n\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


@pytest.fixture
def extensions_dir(tmp_path):
    folder = tmp_path / "data" / "extensions"
    folder.mkdir(parents=True)
    return folder


def _install(url, extensions_dir, branch=None, folder_name=None, run_install=True, lines=None):
    return install_from_url(url, branch, folder_name, extensions_dir=extensions_dir, run_install=run_install,
                            python=sys.executable, progress=(lines.append if lines is not None else print))


def _commit_upstream(repo, name, text):
    (repo / name).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", f"add {name}")
    return _git(repo, "rev-parse", "HEAD")


def test_install_from_file_url_runs_install_py_and_lists_it(upstream, extensions_dir):
    lines = []
    result = _install(upstream.as_uri(), extensions_dir, lines=lines)
    target = extensions_dir / "sd-webui-test-ext"
    assert result.path == target and result.name == "sd-webui-test-ext" and result.ok
    assert (target / "scripts" / "x.py").is_file()
    cwd, pythonpath = (target / "installed.marker").read_text().splitlines()
    assert os.path.realpath(cwd) == os.path.realpath(target)  # install.py ran in the extension folder
    assert pythonpath.split(os.pathsep)[0]  # the webui root leads PYTHONPATH, as in A1111
    assert "install.py ran" in lines
    assert result.install_script_rc == 0 and result.requirements_rc is None  # comment-only requirements
    assert [p.name for p in extensions_dir.iterdir()] == ["sd-webui-test-ext"]  # no temporary clone left

    (listed,) = list_installed(extensions_dir)
    head = _git(upstream, "rev-parse", "HEAD")
    assert listed.name == "sd-webui-test-ext" and listed.git is not None
    assert listed.git.commit_hash == head and listed.version == head[:8]
    assert listed.git.branch == "main" and listed.git.remote == upstream.as_uri()
    assert isinstance(listed.git.commit_date, int) and listed.git.commit_date > 0
    assert listed.metadata.canonical_name == "test-ext" and listed.metadata.requires == ("other", "another")
    assert find_installed(extensions_dir, "sd-webui-test-ext").path == target


def test_install_with_branch_and_folder_name(upstream, extensions_dir):
    _git(upstream, "checkout", "-q", "-b", "dev")
    _commit_upstream(upstream, "dev.txt", "dev")
    _git(upstream, "checkout", "-q", "main")
    result = _install(upstream.as_uri(), extensions_dir, branch="dev", folder_name="my-ext", run_install=False)
    assert result.path.name == "my-ext" and (result.path / "dev.txt").is_file()
    assert result.git.branch == "dev"
    assert not (result.path / "installed.marker").exists()  # run_install=False


@pytest.mark.parametrize("name", ["../evil", "..", ".hidden", "a/b", "a\\b", "CON", "nul.txt", "x:y"])
def test_refuses_unsafe_folder_names(upstream, extensions_dir, name):
    with pytest.raises(UserError) as caught:
        _install(upstream.as_uri(), extensions_dir, folder_name=name)
    assert caught.value.code == "invalid_extension_name" and caught.value.hint
    assert list(extensions_dir.iterdir()) == []
    assert not (extensions_dir.parent / "evil").exists()


@pytest.mark.parametrize("url", [
    "file:///tmp/somewhere/..", "https://github.com/user/..", "https://github.com/user/../",
    "ext::sh -c touch% /tmp/pwned", "fd::17", "-uhelp", "ftp://example.com/repo.git", "not a url",
    "https:///no-host", "file://remote-host/repo", "",
])
def test_refuses_bad_urls(extensions_dir, url):
    with pytest.raises(UserError):
        _install(url, extensions_dir)
    assert list(extensions_dir.iterdir()) == []


def test_url_forms_and_normalization():
    assert folder_name_from_url("https://github.com/Mikubill/sd-webui-controlnet.git") == "sd-webui-controlnet"
    assert folder_name_from_url("https://host/user/My%20Ext.git/") == "My_Ext"
    assert folder_name_from_url("git@github.com:user/repo.git") == "repo"
    assert folder_name_from_url("https://host/user/v1..2") == "v1..2"
    assert folder_name_from_url("ssh://git@host:2222/x/repo") == "repo"
    assert validate_git_url(" file:///srv/repo ") == "file:///srv/repo"
    same = {normalize_git_url(u) for u in ("https://github.com/A/B.git", "http://github.com/a/b/",
                                           "git@github.com:a/b", "https://user:pw@github.com/a/b")}
    assert same == {"github.com/a/b"}
    assert redact_url("https://user:secret@host/x") == "https://***@host/x"


def test_existing_folder_and_same_url_are_refused(upstream, extensions_dir):
    (extensions_dir / "sd-webui-test-ext").mkdir()
    (extensions_dir / "sd-webui-test-ext" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        _install(upstream.as_uri(), extensions_dir)
    assert (extensions_dir / "sd-webui-test-ext" / "keep.txt").read_text() == "mine"
    _install(upstream.as_uri(), extensions_dir, folder_name="second", run_install=False)
    with pytest.raises(UserError, match="already installed as 'second'"):
        _install(upstream.as_uri() + "/", extensions_dir, folder_name="third", run_install=False)


def test_failed_clone_leaves_nothing(tmp_path, extensions_dir):
    with pytest.raises(UserError) as caught:
        _install((tmp_path / "missing-repo").as_uri(), extensions_dir)
    assert caught.value.code == "git_clone_failed"
    assert list(extensions_dir.iterdir()) == []


def test_failing_install_py_keeps_the_extension_with_a_warning(upstream, extensions_dir):
    _commit_upstream(upstream, "install.py", "import sys\nprint('boom')\nsys.exit(3)\n")
    result = _install(upstream.as_uri(), extensions_dir)
    assert result.install_script_rc == 3 and not result.ok and "exit code 3" in result.warnings[0]
    assert result.path.is_dir()


def test_install_script_timeout(tmp_path):
    (tmp_path / "install.py").write_text("import time\nprint('waiting', flush=True)\ntime.sleep(30)\n")
    with pytest.raises(UserError) as caught:
        run_install_script(tmp_path, python=sys.executable, progress=lambda _: None, timeout=1)
    assert caught.value.code == "command_timeout" and "waiting" in caught.value.hint


def test_exposure_refusal_follows_a1111():
    refusal = exposure_refusal(parse_options(["--listen"], {}))
    assert refusal and "--listen" in refusal and "--enable-insecure-extension-access" in refusal
    assert "--share" in exposure_refusal(parse_options(["--share", "--server-name", "0.0.0.0"], {}))
    assert exposure_refusal(parse_options(["--listen", "--enable-insecure-extension-access"], {})) is None
    assert exposure_refusal(parse_options([], {})) is None
    with pytest.raises(ExtensionAccessError) as caught:
        require_extension_access(parse_options(["--server-name", "example"], {}))
    assert caught.value.status_code == 403 and "--server-name" in caught.value.hint
    require_extension_access(parse_options(["--gradio-auth", "u:p"], {}))


def test_check_for_updates_and_update(upstream, extensions_dir):
    _install(upstream.as_uri(), extensions_dir, run_install=False)
    ext = find_installed(extensions_dir, "sd-webui-test-ext")
    assert check_for_updates(ext).status == "latest"
    new_head = _commit_upstream(upstream, "new.txt", "new")
    status = check_for_updates(ext)
    assert status.status == "new commits" and status.can_update and status.behind == 1
    assert status.remote_commit == new_head
    result = update(ext)
    assert result.changed and result.new_commit == new_head
    assert (ext.path / "new.txt").read_text() == "new"
    assert check_for_updates(find_installed(extensions_dir, ext.name)).status == "latest"


def test_update_never_discards_local_commits(upstream, extensions_dir):
    _install(upstream.as_uri(), extensions_dir, run_install=False)
    ext = find_installed(extensions_dir, "sd-webui-test-ext")
    _commit_upstream(ext.path, "local.txt", "mine")
    _commit_upstream(upstream, "new.txt", "new")
    status = check_for_updates(ext)
    assert status.status == "diverged" and not status.can_update
    with pytest.raises(UserError, match="Updating sd-webui-test-ext failed"):
        update(ext)
    assert (ext.path / "local.txt").read_text() == "mine"


def test_remote_error_is_a_status_not_a_crash(upstream, extensions_dir, tmp_path):
    _install(upstream.as_uri(), extensions_dir, run_install=False)
    upstream.rename(tmp_path / "moved")
    status = check_for_updates(find_installed(extensions_dir, "sd-webui-test-ext"))
    assert status.status == "unknown (remote error)" and not status.can_update


def test_remove_deletes_only_that_folder(upstream, extensions_dir, tmp_path):
    _install(upstream.as_uri(), extensions_dir, folder_name="one", run_install=False)
    (extensions_dir / "two").mkdir()
    (extensions_dir / "two" / "file.txt").write_text("two")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    (extensions_dir / "linked").symlink_to(outside, target_is_directory=True)

    removed = remove(find_installed(extensions_dir, "one"))
    assert removed == (extensions_dir / "one").resolve() and not removed.exists()
    with pytest.raises(UserError) as caught:
        remove(find_installed(extensions_dir, "linked"))
    assert caught.value.code == "extension_is_link"
    assert (outside / "precious.txt").read_text() == "keep"
    assert sorted(p.name for p in extensions_dir.iterdir()) == ["linked", "two"]
    assert (extensions_dir / "two" / "file.txt").is_file()
    with pytest.raises(NotFoundError):
        find_installed(extensions_dir, "one")


def test_listing_non_git_and_hidden_folders(extensions_dir):
    (extensions_dir / "plain").mkdir()
    (extensions_dir / ".installing-x-123").mkdir()
    (extensions_dir / "file.txt").write_text("x")
    (listed,) = list_installed(extensions_dir)
    assert listed.name == "plain" and listed.git is None and listed.version == "unknown"
    assert listed.metadata.canonical_name == "plain"
    assert check_for_updates(listed).status == "unknown (not a git repository)"
    assert cleanup_leftovers(extensions_dir) == [extensions_dir / ".installing-x-123"]
    assert list_installed(extensions_dir / "missing") == []


# -- metadata.ini and enable/disable (pure) ---------------------------------------------------------------------
@pytest.mark.parametrize(("text", "name", "requires", "error"), [
    ("", "folder", (), False),
    ("[Extension]\nName=Canon\n", "canon", (), False),
    ("[Extension]\nName =  \nRequires = a,b  c\n", "folder", ("a", "b", "c"), False),
    ("[extension]\nName=lower-section-is-not-a1111\n", "folder", (), False),
    ("Name=no section header\n", "folder", (), True),
    ("[Extension\nName=x", "folder", (), True),
    ("[Extension]\nName=%(interp)s\n", "%(interp)s", (), False),
])
def test_parse_metadata_table(text, name, requires, error):
    meta = parse_metadata(text, "Folder")
    assert (meta.canonical_name, meta.requires, meta.error is not None) == (name, requires, error)


def test_metadata_script_order_and_file(tmp_path):
    (tmp_path / "metadata.ini").write_text(
        "[Extension]\nName=e\n[scripts/main.py]\nRequires=x\nBefore=y/scripts/a.py, z\nAfter=\n"
        "[callbacks/e/main.py/on_ui]\nAfter=other\n")
    meta = read_metadata(tmp_path)
    assert meta.script_order("scripts/main.py") == (("x",), ("y/scripts/a.py", "z"), ())
    assert meta.callback_order("e", "main.py", "on_ui") == ((), ("other",))
    assert meta.script_order("scripts/none.py") == ((), (), ())


def test_enable_disable_rules():
    assert is_enabled("a", is_builtin=False, disabled=["b"])
    assert not is_enabled("b", is_builtin=False, disabled=["b"])
    assert not is_enabled("a", is_builtin=False, disabled=[], disable_all="extra")
    assert is_enabled("a", is_builtin=True, disabled=[], disable_all="extra")
    assert not is_enabled("a", is_builtin=True, disabled=[], disable_all="all")
    assert set_enabled(["b", "a"], "c", False) == ["a", "b", "c"]
    assert set_enabled(["b", "a"], "a", True) == ["b"]


# -- extension index -------------------------------------------------------------------------------------------
INDEX = {
    "tags": {"script": "Scripts", "ads": "Ads"},
    "extensions": [
        {"name": "ControlNet", "url": "https://github.com/Mikubill/sd-webui-controlnet", "description": "cn",
         "tags": ["script", 3], "added": "2023-02-13", "created_at": "2023-02-12T00:00:00Z", "stars": 17000},
        {"name": "Other", "url": "https://github.com/x/other.git", "stars": True},
        {"name": "", "url": "https://github.com/x/noname"},
        {"name": "No URL"},
        "not an object",
    ],
}


def test_index_from_file_skips_malformed_and_marks_installed(tmp_path):
    path = tmp_path / "index.json"
    path.write_text(json.dumps(INDEX))
    installed = {"sd-webui-controlnet": "git@github.com:mikubill/sd-webui-controlnet.git", "plain": None}
    index = read_index(str(path), installed=installed)
    assert index.skipped == 3 and index.tags["script"] == "Scripts"
    cn, other = index.entries
    assert cn.installed and cn.installed_as == "sd-webui-controlnet" and cn.tags == ("script",)
    assert cn.stars == 17000 and cn.added == "2023-02-13"
    assert not other.installed and other.stars == 0 and other.description == ""
    assert [e.name for e in load_index(path.as_uri())] == ["ControlNet", "Other"]


@pytest.mark.parametrize("content", ["not json", "[]", '{"extensions": {}}'])
def test_index_refuses_what_is_not_an_index(tmp_path, content):
    path = tmp_path / "index.json"
    path.write_text(content)
    with pytest.raises(UserError):
        load_index(str(path))
    with pytest.raises(UserError):
        load_index(str(tmp_path / "missing.json"))


def test_index_over_http_from_a_local_server(tmp_path):
    (tmp_path / "index.json").write_text(json.dumps(INDEX))
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert len(load_index(f"{base}/index.json", timeout=10)) == 2
        with pytest.raises(UserError, match="HTTP 404"):
            load_index(f"{base}/missing.json", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
