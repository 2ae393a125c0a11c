"""The results model: status folding, verdicts, exit codes, JSON round trip."""

from __future__ import annotations

from pathlib import Path

from conformance import RunResults, ScenarioResult
from conformance._results import fold_statuses


def _s(
    adapter: str, reqs: list[str], status: str, failed: list[str] | None = None
) -> ScenarioResult:
    return ScenarioResult(
        nodeid=f"n{adapter}{reqs}{status}", feature="f", scenario="s", adapter=adapter, dialect=adapter,
        requirements=reqs, status=status, failed_requirements=failed or [],  # type: ignore[arg-type]
    )  # fmt: skip


def test_fold_prefers_fail_then_error_then_pass() -> None:
    assert fold_statuses(["pass", "fail", "error"]) == "fail"
    assert fold_statuses(["pass", "error"]) == "error"
    assert fold_statuses(["unsupported", "pass"]) == "pass"
    assert fold_statuses(["skipped", "unsupported"]) == "unsupported"
    assert fold_statuses([]) == "skipped"


def test_exit_codes_follow_levels_and_errors() -> None:
    ok = RunResults(
        "r", 0, {}, scenarios=[_s("a", ["ADAPT-3000"], "pass"), _s("a", ["OC-ADAPT-5001a"], "fail")]
    )
    assert ok.exit_code() == 0  # a SHOULD failure does not fail the default run
    assert ok.exit_code(fail_on="should") == 1
    bad = RunResults("r", 0, {}, scenarios=[_s("a", ["ADAPT-3000"], "fail", ["ADAPT-3000"])])
    assert bad.exit_code() == 1
    err = RunResults("r", 0, {}, scenarios=[_s("a", ["ADAPT-3000"], "error")])
    assert err.exit_code() == 2
    unsup = RunResults("r", 0, {}, scenarios=[_s("a", ["WA-INT-3002"], "unsupported")])
    assert unsup.exit_code() == 0


def test_json_round_trip_keeps_everything(tmp_path: Path) -> None:
    res = RunResults("run-1", 42, {"targets": []}, scenarios=[_s("a", ["ADAPT-3000"], "pass")])
    path = res.write(tmp_path / "results.json")
    back = RunResults.read(path)
    assert back.to_dict()["scenarios"] == res.to_dict()["scenarios"]
    assert back.seed == 42 and back.run_id == "run-1"
    assert "AUTH-1006" in {d["id"] for d in res.to_dict()["not_covered_layer_not_built"]}
