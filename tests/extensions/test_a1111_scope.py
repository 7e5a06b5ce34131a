"""The A1111 import scope (sdweb/compat/a1111/scope.py): names exist for extension code only, and what sdweb
cannot provide is reported as a reason, not a traceback."""

import sys

import gradio
import pytest

from sdweb.compat.a1111.scope import SCOPED_BUILTINS, IncompatibleExtension, reason_for


def run_as_extension(code: str) -> dict:
    namespace = {"__builtins__": SCOPED_BUILTINS, "__name__": "fixture_extension"}
    exec(compile(code, "<extension>", "exec"), namespace)
    return namespace


def test_modules_launch_and_gradio3_are_scoped():
    found = run_as_extension("import gradio as gr\nfrom modules import shared, scripts\nimport launch\n"
                             "import modules.processing as processing\nbox = gr.Box\nupdate = gr.Textbox.update")
    assert found["scripts"].AlwaysVisible is not None and callable(found["launch"].run_pip)
    assert found["processing"].StableDiffusionProcessingTxt2Img.mode == "txt2img"
    assert found["update"](value="x") == {"__type__": "update", "value": "x"}
    assert "modules" not in sys.modules and "launch" not in sys.modules and not hasattr(gradio, "Box")


@pytest.mark.parametrize(("code", "reason"), [
    ("import ldm.modules.attention", "model internals (ldm.modules.attention)"),
    ("from modules.sd_hijack_optimizations import x", "model internals (modules.sd_hijack_optimizations)"),
    ("from modules import sd_samplers_kdiffusion", "model internals (modules.sd_samplers_kdiffusion)"),
    ("import modules.no_such_part", "imports modules.no_such_part, a part of A1111"),
])
def test_missing_parts_of_a1111_are_incompatible_with_a_reason(code, reason):
    with pytest.raises(IncompatibleExtension) as raised:
        run_as_extension(code)
    assert reason in reason_for(raised.value)


def test_an_extension_may_catch_the_missing_import():
    found = run_as_extension("try:\n    import ldm\n    HAVE = True\nexcept ImportError:\n    HAVE = False\n")
    assert found["HAVE"] is False


def test_torchvision_missing_is_a_reason_and_other_errors_are_not():
    error = ModuleNotFoundError("No module named 'torchvision'", name="torchvision")
    assert "torchvision" in reason_for(error)
    assert reason_for(RuntimeError("bug")) is None
