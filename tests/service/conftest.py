"""Shared fixtures of the service tests."""

from __future__ import annotations

import pytest

from sdweb.testing.tiny_flow import TinyFlowFiles


@pytest.fixture(scope="session")
def flow_files(tmp_path_factory: pytest.TempPathFactory) -> TinyFlowFiles:
    """Tiny Flux / Chroma / SD 3.5 checkpoints and module files in an A1111 data folder, each written once
    per session on first use (`flow_files.path("flux-dev")`)."""
    return TinyFlowFiles(tmp_path_factory.mktemp("flow-data"))


@pytest.fixture(scope="module")
def a1111_models(tmp_path_factory: pytest.TempPathFactory):
    """The tiny SD1 and SDXL models of the A1111 parity tests (a1111_harness.py): (app state, {family: model})."""
    from a1111_harness import tiny_models

    yield from tiny_models(tmp_path_factory)


@pytest.fixture(scope="session")
def a1111_parity_rows(tmp_path_factory: pytest.TempPathFactory):
    """The A1111 parity tests' rows (case, PSNR, max abs latent difference), written to
    ``<basetemp>/a1111_parity.tsv`` and printed at the end of the session."""
    from a1111_harness import write_table

    rows: list[tuple] = []
    yield rows
    write_table(rows, tmp_path_factory.getbasetemp())
