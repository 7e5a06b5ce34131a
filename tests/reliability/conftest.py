"""Reliability and security checks (issue 11). Each area adds one summary line with its figures; the lines
are printed together at the end of the run (pytest_terminal_summary), e.g. `reliability fuzz: 1200 cases, ...`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

_LINES = pytest.StashKey[dict[str, str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_LINES] = {}


@pytest.fixture(scope="session")
def summary(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """summary(area, figures): the line `reliability <area>: <figures>` shown at the end of the run."""
    lines = request.config.stash[_LINES]

    def add(area: str, figures: str) -> None:
        lines[area] = f"reliability {area}: {figures}"

    return add


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    lines = config.stash.get(_LINES, {})
    if lines:
        terminalreporter.section("reliability summary")
        for line in lines.values():
            terminalreporter.write_line(line)
