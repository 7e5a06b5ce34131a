"""Shared fixtures of the service tests."""

from __future__ import annotations

import pytest

from sdweb.testing.tiny_flow import TinyFlowFiles


@pytest.fixture(scope="session")
def flow_files(tmp_path_factory: pytest.TempPathFactory) -> TinyFlowFiles:
    """Tiny Flux / Chroma / SD 3.5 checkpoints and module files in an A1111 data folder, each written once
    per session on first use (`flow_files.path("flux-dev")`)."""
    return TinyFlowFiles(tmp_path_factory.mktemp("flow-data"))
