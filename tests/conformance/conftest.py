"""Prints the share of broken adapters the self-test caught (collected across xdist workers)."""

from __future__ import annotations

import json
from typing import Any

import pytest

_SEEN: dict[str, bool] = {}
_PENDING: set[str] = set()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when not in ("call", "teardown"):
        return
    for key, value in report.user_properties:
        if key == "llorch_selftest":
            data = json.loads(str(value))
            _SEEN[data["name"]] = bool(data["caught"])
            if data.get("pending"):
                _PENDING.add(data["name"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _SEEN:
        return
    caught = sum(_SEEN.values())
    missed = sorted(n for n, ok in _SEEN.items() if not ok)
    terminalreporter.write_sep("-", "llorch-conformance self-test")
    terminalreporter.write_line(
        f"broken adapters caught: {caught}/{len(_SEEN)} ({100.0 * caught / len(_SEEN):.0f}%)"
        + (f"; missed: {', '.join(missed)}" if missed else "")
    )
    late = sorted(n for n in _PENDING if _SEEN.get(n))
    if late:
        terminalreporter.write_line(f"caught although marked pending: {', '.join(late)}")
