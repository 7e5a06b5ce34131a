"""An A1111 extension that fails to load is reported for the model internals its code reaches for
(sdweb/compat/a1111/internals.py), whatever failed first: the real sd-webui-controlnet fails on
`modules.api.models` and regional-prompter on `torchvision` before the code that patches A1111's UNet runs."""

from pathlib import Path

import pytest

from sdweb.compat.a1111.internals import describe, model_internals
from sdweb.compat.a1111.loading import load_extension
from sdweb.compat.a1111.scope import IncompatibleExtension, reason_for


def extension(folder: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    return folder


def test_the_import_forms_and_the_unet_path_are_found(tmp_path):
    folder = extension(tmp_path / "ext", {
        "scripts/a.py": "from modules import devices, lowvram, shared\ntry:\n    from sgm.modules import x\n"
                        "except ImportError:\n    from ldm.modules import x\n",
        "scripts/b.py": "from modules import (\n    shared,\n    sd_samplers_kdiffusion,\n)\n"
                        "def hook(p):\n    return p.sd_model.model.diffusion_model\n",
        "helpers/c.py": "import modules.sd_hijack_optimizations as opt\n",
    })
    found = model_internals(folder)
    assert list(found) == ["sgm", "ldm", "modules.lowvram", "modules.sd_samplers_kdiffusion",
                           "the ldm UNet at sd_model.model.diffusion_model", "modules.sd_hijack_optimizations"]
    assert found["ldm"] == ["scripts/a.py"] and found["modules.sd_hijack_optimizations"] == ["helpers/c.py"]
    assert describe({"ldm": ["scripts/a.py", "scripts/b.py"], "sgm": ["scripts/c.py", "scripts/d.py"]}) == \
        "ldm, sgm in scripts/a.py, scripts/b.py, scripts/c.py and 1 more"


def test_what_sdweb_provides_and_upstream_tests_are_not_internals(tmp_path):
    """tagcomplete reads `sd_hijack.model_hijack.embedding_db` (provided); an extension's tests are not loaded."""
    folder = extension(tmp_path / "ext", {
        "scripts/a.py": "from modules import sd_hijack, shared\nimport modules.sd_models\ndb = "
                        "sd_hijack.model_hijack.embedding_db\n",
        "tests/test_x.py": "import ldm\n",
        ".github/x.py": "import sgm\n",
    })
    assert model_internals(folder) == {}


def test_a_load_failure_is_reported_for_the_internals(tmp_path):
    folder = extension(tmp_path / "rp-like", {
        "scripts/attention.py": "import torchvision\n",
        "scripts/rp.py": "def hook(p):\n    p.sd_model.model.diffusion_model.forward = None\n",
    })
    with pytest.raises(IncompatibleExtension) as raised:
        load_extension("rp-like", folder, None)
    reason = reason_for(raised.value)
    assert reason.startswith("it patches A1111's model internals (the ldm UNet at sd_model.model.diffusion_model "
                             "in scripts/rp.py)"), reason
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)  # the first failure stays in the chain


def test_an_ordinary_failure_stays_ordinary(tmp_path):
    folder = extension(tmp_path / "broken", {"scripts/a.py": "raise RuntimeError('broken at import')\n"})
    with pytest.raises(RuntimeError, match="broken at import"):
        load_extension("broken", folder, None)
