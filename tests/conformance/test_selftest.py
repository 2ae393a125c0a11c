"""The harness's self-test: every deliberately broken adapter fails the right requirement.

Each broken adapter (``broken_adapters.py``, ``broken_adapters_vllm.py``) runs through the suite
restricted to the requirements of its case; the run must exit 1 with the requirement it breaks
among the failed verdicts, and without failing the requirements it must leave alone (precise
attribution). No broken adapter may produce exit 2. The unmodified built-in adapters, over the
same selections, exit 0. The adapters run in groups, one interpreter each
(``_selftest_main.py``), so xdist can spread them; the caught share is printed at the end of the
session (``conftest.py``: "broken adapters caught: N/M").

Cases marked ``pending`` (what the suite cannot catch yet) run and count in the share but are
not asserted: a case loses its mark when the check that catches it lands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ._cli import HERE, run_cli, run_results
from .broken_adapters import CASES

_NAMES = sorted(CASES)
_N_GROUPS = 4
_GROUPS = [_NAMES[i::_N_GROUPS] for i in range(_N_GROUPS)]


def _selftest(args: list[str], tmp_path: Path) -> dict[str, dict[str, object]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(
        [sys.executable, "-m", "_selftest_main", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report: dict[str, dict[str, object]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("group", _GROUPS, ids=[f"group{i}" for i in range(len(_GROUPS))])
def test_broken_adapters_are_caught(
    group: list[str], tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    report = _selftest(group, tmp_path)
    for name in group:
        record_property(
            "llorch_selftest",
            json.dumps({"name": name, "pending": CASES[name].pending, **report[name]}),
        )
    harness_errors = {n: r for n, r in report.items() if r["exit"] == 2}
    assert not harness_errors, f"a broken adapter made the harness exit 2: {harness_errors}"
    missed = {n: r for n, r in report.items() if not r["caught"] and CASES[n].pending is None}
    assert not missed, f"broken adapters not caught: {missed}"


@pytest.mark.parametrize("dialect", ["vllm", "llamacpp"])
def test_the_unmodified_adapters_pass_the_same_selections(dialect: str, tmp_path: Path) -> None:
    report = _selftest([f"@{dialect}"], tmp_path)[f"@{dialect}"]
    assert report["exit"] == 0, report


def test_every_case_names_a_catalogue_requirement_and_a_factory() -> None:
    from llorch_conformance.conformance import is_known

    from . import broken_adapters

    for name, case in CASES.items():
        assert callable(getattr(broken_adapters, name, None)), name
        assert all(is_known(r) for r in case.selection), (name, case)
        assert case.dialect in ("vllm", "llamacpp"), (name, case)
    assert len(CASES) >= 40


def test_a_failing_adapter_exits_1_through_the_cli(tmp_path: Path) -> None:
    proc = run_cli(
        "run", "--adapter", "broken_adapters:drop_last_token", "--dialect", "llamacpp",
        "--requirement", "WA-INT-3001", "--out", str(tmp_path), "-j", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-1500:] + proc.stderr[-800:]
    assert "FAIL [drop_last_token]" in proc.stdout and "WA-INT-3001 (MUST)" in proc.stdout


def test_a_declared_must_fails_and_shows_the_declaration(tmp_path: Path) -> None:
    """Issue 13: declaring cancel away used to leave WA-INT-3002 at pass and exit 0. The
    declaration shows in the table, summary.json (schema-valid), test_report.md and report.html."""
    from llorch_conformance.reports import validate_summary

    proc = run_cli(
        "run", "--adapter", "broken_adapters:vllm_declares_cancel", "--dialect", "vllm",
        "--requirement", "WA-INT-3002", "--requirement", "ADAPT-3000", "--out", str(tmp_path),
        "-j", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-1500:] + proc.stderr[-800:]
    assert "fail, declared: cancel" in proc.stdout
    assert "pass, declared: cancel" in proc.stdout  # ADAPT-3000: cancel is best-effort
    (root,) = {p.parent for p in tmp_path.rglob("summary.json")}
    summary = json.loads((root / "summary.json").read_text("utf-8"))
    assert validate_summary(summary) == []
    verdicts = {v["requirement"]: v for v in summary["verdicts"]}
    assert verdicts["ADAPT-3000"]["status"] == "pass-declared"
    assert verdicts["ADAPT-3000"]["declared"] == ["cancel"]
    assert verdicts["WA-INT-3002"]["status"] == "fail"
    assert summary["verdict_counts"]["pass-declared"] >= 1
    report = (root / "test_report.md").read_text("utf-8")
    assert "PASS, declared: cancel" in report and "FAIL, declared: cancel" in report
    assert "## Folding rules and declarations" in report
    assert "| WA-INT-3002 | `cancel` | no |" in report
    assert "pass, declared: cancel" in (root / "report.html").read_text("utf-8")


def test_a_broken_factory_is_a_harness_error_not_a_failure(tmp_path: Path) -> None:
    proc = run_cli(
        "run", "--adapter", "broken_adapters:explodes", "--dialect", "llamacpp",
        "--requirement", "ADAPT-3000", "--out", str(tmp_path), "-j", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-800:]
    results = run_results(tmp_path)
    statuses = {s.status for s in results.scenarios}
    assert "error" in statuses and "fail" not in statuses, statuses
