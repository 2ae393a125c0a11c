"""The compatibility matrix and the ``diff``/``matrix`` commands (exit codes 0/1/2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llorch_conformance.conformance.cli import main
from llorch_conformance.reports.gate import (
    build_matrix,
    load_bundle,
    render_matrix_html,
    render_matrix_markdown,
)

from ._bundles import build, scenario


def _stale(bundle: Path) -> None:
    """Make a bundle look as if an older catalogue (other text for one ID) had made it."""
    p = bundle / "requirements.json"
    doc = json.loads(p.read_text("utf-8"))
    doc["catalogue"][0]["text"] += " (older wording)"
    p.write_text(json.dumps(doc), "utf-8")


def test_matrix_rows_columns_states_and_newest_wins(tmp_path: Path) -> None:
    ok_old = build(
        tmp_path / "1",
        "r1",
        [scenario("x", adapter="acme", reqs=("ADAPT-3001",))],
        started_at="2026-01-01T00:00:00Z",
    )
    bad_new = build(
        tmp_path / "2",
        "r2",
        [scenario("x", adapter="acme", reqs=("ADAPT-3001",), status="fail")],
        started_at="2026-02-01T00:00:00Z",
    )
    other_engine = build(
        tmp_path / "3",
        "r3",
        [scenario("x", adapter="acme", reqs=("ADAPT-3001",), engine_version="b7000<x>")],
    )
    stale = build(tmp_path / "4", "r4", [scenario("x", adapter="zeta", reqs=("ADAPT-3001",))])
    _stale(stale)
    m = build_matrix([load_bundle(p) for p in (ok_old, bad_new, other_engine, stale)])
    assert [r[0] for r in m.rows] == ["acme", "zeta"]
    assert {c[1] for c in m.columns} == {"b6710-mock", "b7000<x>"}
    row = next(r for r in m.rows if r[0] == "acme")
    (newest,) = m.cells[(row, ("llamacpp", "b6710-mock"))]
    assert newest.run_id == "r2" and newest.state == "failing" and newest.superseded == 1
    (z,) = next(es for (r, _), es in m.cells.items() if r[0] == "zeta")
    assert z.state == "stale" and z.label() == "stale (was verified)"
    md = render_matrix_markdown(m)
    assert "❌ failing (1)" in md and "⚠️ stale (was verified)" in md and "✅ verified" in md
    page = render_matrix_html(m)
    assert "b7000&lt;x&gt;" in page and "b7000<x>" not in page


def test_diff_command_exit_codes_markdown_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = build(tmp_path / "a", "a", [scenario("x", adapter="acme", reqs=("ADAPT-3001",))])
    b = build(
        tmp_path / "b", "b", [scenario("x", adapter="acme", reqs=("ADAPT-3001",), status="fail")]
    )
    assert main(["diff", str(a), str(a)]) == 0
    assert "no regressions" in capsys.readouterr().out
    md, js = tmp_path / "gate.md", tmp_path / "gate.json"
    assert main(["diff", str(a), str(b), "--markdown", str(md), "--json", str(js)]) == 1
    assert md.read_text("utf-8").startswith("## ❌")
    data = json.loads(js.read_text("utf-8"))
    assert data["exit_code"] == 1 and data["status_changes"][0]["kind"] == "newly failing"
    capsys.readouterr()
    assert main(["diff", str(a), str(b), "--json", "-"]) == 1
    assert json.loads(capsys.readouterr().out)["result"] == "regression"


@pytest.mark.parametrize(
    "argv",
    [
        ["diff", "{a}", "{missing}"],
        ["diff", "{a}", "{a}", "--max-regression", "-5"],
        ["diff", "{a}", "{a}", "--waivers", "{missing}"],
        ["diff", "{a}", "{notbundle}"],
        ["matrix", "{missing}"],
    ],
)
def test_bad_input_is_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    a = build(tmp_path / "a", "a", [scenario("x", adapter="acme", reqs=("ADAPT-3001",))])
    (tmp_path / "notbundle").mkdir()
    paths = {"a": a, "missing": tmp_path / "missing", "notbundle": tmp_path / "notbundle"}
    capsys.readouterr()
    assert main([x.format(**paths) for x in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llorch-conformance: error:") and "\n" not in err


def test_matrix_command_writes_html_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = build(tmp_path / "a", "a", [scenario("x", adapter="acme", reqs=("ADAPT-3001",))])
    html, js = tmp_path / "m.html", tmp_path / "m.json"
    assert main(["matrix", str(a), "--html", str(html), "--json", str(js)]) == 0
    assert "compatibility matrix" in capsys.readouterr().out
    assert html.read_text("utf-8").startswith("<!DOCTYPE html>")
    (entry,) = json.loads(js.read_text("utf-8"))["entries"]
    assert entry["label"] == "verified" and entry["adapter"] == "acme"


def test_run_gate_options_fail_fast_before_the_suite_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "w.yaml"
    bad.write_text("waivers:\n  - requirement: ADAPT-3001\n", "utf-8")
    cases = [
        (["--baseline", str(tmp_path / "missing")], "not a directory"),
        (["--waivers", str(bad)], "entry 1 (ADAPT-3001), missing field"),
        (["--waivers", str(bad), "--no-bundle"], "drop --no-bundle"),
        (["--max-regression", "-1"], "percentage"),
    ]
    for extra, needle in cases:
        capsys.readouterr()
        assert main(["run", "--only", "llamacpp", "--no-progress", *extra]) == 2, extra
        assert needle in capsys.readouterr().err


def test_finish_gate_with_waivers_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import datetime as dt

    from llorch_conformance.conformance import RunResults
    from llorch_conformance.reports.gate import finish_gate, load_waivers
    from llorch_conformance.reports.gate._run_gate import GatePlan

    bundle = build(
        tmp_path / "proof",
        "r1",
        [
            scenario("x", adapter="acme", reqs=("ADAPT-3001",), status="fail"),
            scenario("y", adapter="acme", reqs=("ADAPT-3002",)),
        ],
    )
    results = RunResults.read(bundle / "results.json")
    assert results.failing()  # the raw results keep the failure
    w = tmp_path / "w.yaml"
    w.write_text(
        "waivers:\n  - {requirement: ADAPT-3001, adapter: acme, reason: known bug, "
        "expires: 2026-03-01}\n",
        "utf-8",
    )
    args = argparse.Namespace(
        proof_dir=str(tmp_path / "proof"), out=tmp_path / "out", fail_on="must"
    )
    plan = GatePlan(baseline=None, waivers=load_waivers(w))
    assert finish_gate(plan, args, results, 1, today=dt.date(2026, 3, 1)) == 0
    gate = json.loads((tmp_path / "out" / "gate.json").read_text("utf-8"))
    assert gate["unwaived_failures"] == [] and gate["waivers"][0]["state"] == "active"
    assert "| active |" in capsys.readouterr().out
    assert finish_gate(plan, args, results, 1, today=dt.date(2026, 3, 2)) == 1  # expired
    gate = json.loads((tmp_path / "out" / "gate.json").read_text("utf-8"))
    assert gate["waivers"][0]["state"] == "expired"
    assert gate["unwaived_failures"] == [{"adapter": "acme", "requirement": "ADAPT-3001"}]
    assert finish_gate(plan, args, results, 2) == 2  # harness errors: nothing to gate
    assert finish_gate(None, args, results, 1) == 1  # no gate asked: the run's own code


def test_a_redaction_hit_fails_the_gated_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from llorch_conformance.conformance import RunResults
    from llorch_conformance.reports.gate import finish_gate
    from llorch_conformance.reports.gate._run_gate import GatePlan

    a = build(tmp_path / "base", "a", [scenario("x", adapter="acme", reqs=("ADAPT-3001",))])
    b = build(tmp_path / "proof", "b", [scenario("x", adapter="acme", reqs=("ADAPT-3001",))])
    audit = b / "redaction_audit.json"
    doc = json.loads(audit.read_text("utf-8"))
    doc["hits"] = [{"file": "scenarios/acme/x/events.ndjson", "line": 2, "rule": "bearer"}]
    audit.write_text(json.dumps(doc), "utf-8")
    args = argparse.Namespace(
        proof_dir=str(tmp_path / "proof"), out=tmp_path / "out", fail_on="must"
    )
    plan = GatePlan(baseline=load_bundle(a))
    results = RunResults.read(b / "results.json")
    assert finish_gate(plan, args, results, 1) == 1
    assert "redaction audit: 1 hit" in capsys.readouterr().out
    doc["hits"] = []
    audit.write_text(json.dumps(doc), "utf-8")
    assert finish_gate(plan, args, results, 0) == 0


def test_can_i_deploy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = build(
        tmp_path / "1",
        "r1",
        [scenario("x", adapter="acme", reqs=("ADAPT-3001",))],
        started_at="2026-01-01T00:00:00Z",
    )
    stale = build(
        tmp_path / "2",
        "r2",
        [scenario("x", adapter="zeta", reqs=("ADAPT-3001",))],
    )
    _stale(stale)
    failing = build(
        tmp_path / "3",
        "r3",
        [scenario("x", adapter="acme", reqs=("ADAPT-3001",), status="fail", engine_version="b7")],
        started_at="2026-02-01T00:00:00Z",
    )
    argv = ["matrix", str(ok), str(stale), str(failing), "--can-i-deploy"]
    assert main([*argv, "acme", "llamacpp@b6710-mock"]) == 0
    assert capsys.readouterr().out.startswith("yes: acme")
    assert main([*argv, "acme", "llamacpp@b7"]) == 1
    assert "failing" in capsys.readouterr().out
    assert main([*argv, "acme", "llamacpp"]) == 1  # the newest acme/llamacpp run (r3) fails
    assert main([*argv, "zeta", "llamacpp"]) == 1
    assert "stale (was verified)" in capsys.readouterr().out
    assert main([*argv, "nobody", "vllm"]) == 1
    assert "no bundle has nobody" in capsys.readouterr().out


def test_finish_gate_reads_the_bundle_where_it_really_went(tmp_path: Path) -> None:
    """Parallel runs with one generated id get ``<run_id>-2``: the run hook says where."""
    import argparse

    from llorch_conformance.conformance import RunResults
    from llorch_conformance.reports.gate import finish_gate
    from llorch_conformance.reports.gate._run_gate import GatePlan

    base = build(tmp_path / "base", "r1", [scenario("x", adapter="acme", reqs=("ADAPT-3001",))])
    # an unrelated, passing bundle sits where the run id alone would point
    build(tmp_path / "proof", "r1", [scenario("x", adapter="acme", reqs=("ADAPT-3001",))])
    ours = build(
        tmp_path / "proof",
        "r1-2",
        [scenario("x", adapter="acme", reqs=("ADAPT-3001",), status="fail")],
    )
    results = RunResults.read(ours / "results.json")
    results.run_id = "r1"
    args = argparse.Namespace(
        proof_dir=str(tmp_path / "proof"), out=tmp_path / "out", fail_on="must", bundle_path=ours
    )
    assert finish_gate(GatePlan(baseline=load_bundle(base)), args, results, 1) == 1


def _vendor_bundle(
    base: Path, run_id: str, *, version: str | None, name: str = "acme-vllm"
) -> Path:
    """A vendor run (origin vendor, module on PYTHONPATH) plus a scenario no target could run."""
    from llorch_conformance.conformance._results import RunResults
    from llorch_conformance.reports import write_bundle

    placeholder = scenario("n/a", adapter="?", reqs=("OC-ADAPT-5001",), status="skipped")
    res = RunResults(
        run_id=run_id,
        seed=7,
        target={
            "targets": [
                {
                    "name": name,
                    "dialect": "vllm",
                    "origin": "vendor",
                    "spec": "acme_adapter:make",
                    "engine_url": None,
                    "version": version,
                }
            ]
        },
        started_at=f"2026-03-0{run_id[-1]}T00:00:00Z",
        scenarios=[scenario("x", adapter=name, reqs=("ADAPT-3001",)), placeholder],
    )
    return write_bundle(res, base=base, run_id=run_id).path


def test_matrix_has_no_phantom_rows_and_keeps_unversioned_runs_apart(tmp_path: Path) -> None:
    one = _vendor_bundle(tmp_path / "1", "run1", version=None)
    two = _vendor_bundle(tmp_path / "2", "run2", version=None)
    m = build_matrix([load_bundle(one), load_bundle(two)])
    assert [r[0] for r in m.rows] == ["acme-vllm", "acme-vllm"]  # no "?" / "unknown" row
    versions = sorted(r[1] for r in m.rows)
    assert versions == [
        "unversioned (acme_adapter:make, run run1)",
        "unversioned (acme_adapter:make, run run2)",
    ]
    # a named version (--adapter-version) is one identity: the newest run wins the cell
    three = _vendor_bundle(tmp_path / "3", "run3", version="1.4.0")
    four = _vendor_bundle(tmp_path / "4", "run4", version="1.4.0")
    m = build_matrix([load_bundle(three), load_bundle(four)])
    (row,) = m.rows
    assert row == ("acme-vllm", "1.4.0")
    ((entry,),) = m.cells.values()
    assert entry.run_id == "run4" and entry.superseded == 1
