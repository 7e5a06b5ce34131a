"""Before a flow model is built, the loader compares the RAM its components need in the compute dtype with what
the machine has, and refuses with the figures instead of letting the OOM killer end the server mid-load."""

from __future__ import annotations

import math

import pytest
import torch

from sdweb.core.errors import UserError
from sdweb.models.flow_loader import _Source, check_ram
from sdweb.models.reading import read_header
from sdweb.models.weights import open_tensor_file
from sdweb.runtime.memory import available_ram_bytes
from sdweb.testing.tiny_flow import TinyFlowFiles


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    files = TinyFlowFiles(tmp_path_factory.mktemp("data"))
    transformer, encoder = files.paths("z-image", "qwen3-4b")
    with open_tensor_file(transformer, read_header(transformer)) as first, \
            open_tensor_file(encoder, read_header(encoder)) as second:
        yield {"transformer": _Source(first, ""), "text_encoder": _Source(second, "model.")}


def _elements(source: _Source) -> int:
    return sum(math.prod(shape) for shape in source.shapes.values())


def test_enough_ram_passes(sources):
    check_ram("z_image_turbo-tiny.safetensors", sources, torch.bfloat16, 1 << 40)
    check_ram("z_image_turbo-tiny.safetensors", sources, torch.bfloat16, None)  # unknown: no check


def test_too_little_ram_names_the_file_and_the_figures(sources):
    needed = sum(_elements(source) for source in sources.values()) * 4  # fp32
    with pytest.raises(UserError) as caught:
        check_ram("z_image_turbo-tiny.safetensors", sources, torch.float32, needed - 1)
    message = str(caught.value)
    assert "z_image_turbo-tiny.safetensors" in message and "GB of RAM" in message
    assert caught.value.code == "not_enough_ram" and "float32" in caught.value.hint
    check_ram("z_image_turbo-tiny.safetensors", sources, torch.float32, needed)  # exactly enough


def test_the_dtype_sets_the_size(sources):
    needed_bf16 = sum(_elements(source) for source in sources.values()) * 2
    check_ram("x", sources, torch.bfloat16, needed_bf16)
    with pytest.raises(UserError):
        check_ram("x", sources, torch.float32, needed_bf16)


def test_available_ram_is_read_on_linux():
    available = available_ram_bytes()
    assert available is None or available > 0
