"""Session-wide pieces every test folder shares: the hostile suite's figures table."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.hostile._figures import ENV, HostileFigures, table


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or a plain session) makes the folder; xdist workers inherit its name."""
    if os.environ.get(ENV) and hasattr(config, "workerinput"):
        return
    folder = tempfile.mkdtemp(prefix="llorch-hostile-")
    os.environ[ENV] = folder
    config.stash[_FOLDER] = Path(folder)


_FOLDER = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def hostile_figures() -> HostileFigures:
    """``record(area, cases, http_500=, worst_latency_s=, deadline_s=, peak_rss_mb=)``."""
    folder = os.environ.get(ENV)
    return HostileFigures(Path(folder) if folder else None)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    folder = config.stash.get(_FOLDER, None)
    if folder is None:
        return
    lines = table(folder)
    shutil.rmtree(folder, ignore_errors=True)
    if lines:
        terminalreporter.section("hostile-input figures")
        for line in lines:
            terminalreporter.write_line(line)
