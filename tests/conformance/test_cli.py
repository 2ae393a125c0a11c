"""``llorch-conformance run``/``list``: exit codes and one-line errors, black-box."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llorch_conformance.conformance import CATALOGUE

from ._cli import run_cli, run_results


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["run", "--adapter", "no_such_module_xyz:factory", "--dialect", "llamacpp"],
            "cannot import module",
        ),
        (["run", "--adapter", "broken_adapters:drop_last_token"], "needs --dialect"),
        (["run", "--adapter", "not-an-entry-point"], "unknown adapter 'not-an-entry-point'"),
        (["run", "--dialect", "bogus"], "unknown dialect 'bogus'"),
        (["run", "--requirement", "NOPE-0001"], "not a catalogue ID"),
        (["run", "--jobs", "many"], "--jobs must be a number"),
        (["run", "--engine-url", "http://127.0.0.1:9"], "needs --dialect"),
        (["run", "--level", "sometimes"], "invalid choice"),
    ],
)
def test_bad_usage_is_one_clear_line_and_exit_2(args: list[str], needle: str) -> None:
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]


def test_list_requirements_prints_the_whole_catalogue() -> None:
    proc = run_cli("list", "requirements", "--format", "json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    ids = [r["id"] for r in json.loads(proc.stdout)]
    assert ids == [r.id for r in CATALOGUE]
    table = run_cli("list", "requirements", timeout=60)
    assert table.returncode == 0
    assert "not covered (layer not built)" in table.stdout
    assert "PB-1012" in table.stdout


def test_run_passes_writes_results_and_prints_wall_time(tmp_path: Path) -> None:
    proc = run_cli(
        "run", "--only", "mock", "--requirement", "ORCH-3058", "--seed", "7",
        "--out", str(tmp_path), "-j", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "wall time:" in proc.stdout
    assert "not covered (layer not built)" in proc.stdout
    results = run_results(tmp_path)
    assert results.seed == 7
    assert [s.status for s in results.scenarios] == ["pass"]


def test_live_engine_faults_run_through_the_fault_proxy(tmp_path: Path) -> None:
    """Against a live engine the fault scenarios run through the fault proxy in front of it
    (mock_engines._proxy): they pass, with the proxy's journal as evidence."""
    from llorch_conformance.mock_engines import run_mock_engine

    with run_mock_engine("llamacpp", seed=3) as engine:
        proc = run_cli(
            "run", "--dialect", "llamacpp", "--engine-url", engine.base_url,
            "--requirement", "WA-INT-3008", "--out", str(tmp_path), "-j", "1", "--no-progress",
        )  # fmt: skip
        seen = [e for e in engine.journal.entries if e.generation]
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    results = run_results(tmp_path)
    statuses = {s.status for s in results.scenarios}
    assert statuses == {"pass"}, [(s.scenario, s.status, s.message) for s in results.scenarios]
    for s in results.scenarios:
        assert s.evidence["target"]["engine_url"] == engine.base_url
        assert s.evidence.get("journal"), s.scenario
    assert seen, "the live engine itself was never reached"


def test_level_must_leaves_out_should_only_scenarios(tmp_path: Path) -> None:
    """OC-ADAPT-5001a is a SHOULD: with --level must nothing proves it, which is a usage error."""
    proc = run_cli(
        "run", "--only", "llamacpp", "--level", "must", "--requirement", "OC-ADAPT-5001a",
        "--out", str(tmp_path), "-j", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-800:] + proc.stderr[-800:]
    assert "no scenario matches the selection" in proc.stderr
