"""The results model: status folding, verdicts, exit codes, JSON round trip."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llorch_conformance.conformance import RunResults, ScenarioResult, Verdict
from llorch_conformance.conformance._results import fold_statuses


def _s(
    adapter: str,
    reqs: list[str],
    status: str,
    failed: list[str] | None = None,
    declared: list[str] | None = None,
) -> ScenarioResult:
    return ScenarioResult(
        nodeid=f"n{adapter}{reqs}{status}{declared}", feature="f", scenario="s", adapter=adapter,
        dialect=adapter, requirements=reqs, status=status,  # type: ignore[arg-type]
        failed_requirements=failed or [], declared=declared or [],
    )  # fmt: skip


def test_fold_prefers_fail_then_error_then_pass() -> None:
    assert fold_statuses(["pass", "fail", "error"]) == "fail"
    assert fold_statuses(["pass", "error"]) == "error"
    assert fold_statuses(["unsupported", "pass"]) == "pass"
    assert fold_statuses(["declared", "pass"]) == "pass-declared"
    assert fold_statuses(["declared"]) == "unsupported"
    assert fold_statuses(["skipped", "unsupported"]) == "unsupported"
    assert fold_statuses(["unjudged"]) == "skipped"
    assert fold_statuses([]) == "skipped"


def _verdict(res: RunResults, rid: str) -> Verdict:
    return next(v for v in res.verdicts() if v.requirement == rid)


def test_a_must_declared_away_is_a_failure_not_a_pass() -> None:
    """The issue-13 case: one scenario passed, the cancel scenario was declared away."""
    res = RunResults("r", 0, {}, scenarios=[
        _s("a", ["WA-INT-3002", "ADAPT-3101"], "pass"),
        _s("a", ["WA-INT-3002", "ADAPT-3000", "ADAPT-3101"], "unsupported", declared=["cancel"]),
        _s("a", ["ADAPT-3002", "ADAPT-3005"], "pass"),
        _s("a", ["ADAPT-3002", "ADAPT-3005"], "unsupported", declared=["deadline"]),
    ])  # fmt: skip
    for rid in ("WA-INT-3002", "ADAPT-3002", "ADAPT-3005"):
        v = _verdict(res, rid)
        assert v.status == "fail", v
        assert "may not be declared away" in v.message and v.declared
    assert res.exit_code() == 1
    assert {v.requirement for v in res.failing()} == {"WA-INT-3002", "ADAPT-3002", "ADAPT-3005"}


def test_an_allowed_declaration_is_visible_and_never_a_plain_pass() -> None:
    res = RunResults("r", 0, {}, scenarios=[
        _s("a", ["ADAPT-3000"], "pass"),
        _s("a", ["ADAPT-3000", "ADAPT-3101"], "unsupported", declared=["cancel"]),
        _s("a", ["OC-ADAPT-5001a"], "unsupported", declared=["metrics_scrape"]),
    ])  # fmt: skip
    v = _verdict(res, "ADAPT-3000")
    assert v.status == "pass-declared" and v.declared == ("cancel",)
    assert v.label == "pass, declared: cancel"
    only = _verdict(res, "OC-ADAPT-5001a")
    assert only.status == "unsupported" and only.declared == ("metrics_scrape",)
    assert res.exit_code(fail_on="should") == 0
    body = res.to_dict()
    assert {"pass-declared"} <= {d["status"] for d in body["verdicts"]}


def test_a_failure_fails_the_ids_it_names_not_every_tag() -> None:
    res = RunResults("r", 0, {}, scenarios=[
        _s("a", ["HTU-SEC-1401", "WA-INT-3001"], "fail", failed=["WA-INT-3001"]),
        _s("a", ["HTU-SEC-1401"], "pass"),
        _s("a", ["HTU-1001", "ADAPT-3000"], "fail"),  # names nothing: every carried ID fails
    ])  # fmt: skip
    assert _verdict(res, "WA-INT-3001").status == "fail"
    assert _verdict(res, "HTU-SEC-1401").status == "pass"
    assert _verdict(res, "HTU-1001").status == "fail"
    assert _verdict(res, "ADAPT-3000").status == "fail"
    lone = RunResults("r", 0, {}, scenarios=[_s("a", ["X-1", "ADAPT-3000"], "fail", ["X-1"])])
    v = _verdict(lone, "ADAPT-3000")
    assert v.status == "skipped" and "not judged" in v.message


def test_a_must_left_unproven_by_a_should_failure_still_fails_the_run() -> None:
    """OC-ADAPT-5001a is a SHOULD: a check naming only it must not wave ADAPT-3000 through."""
    res = RunResults("r", 0, {}, scenarios=[
        _s("a", ["OC-ADAPT-5001a", "ADAPT-3000"], "fail", ["OC-ADAPT-5001a"]),
    ])  # fmt: skip
    v = _verdict(res, "ADAPT-3000")
    assert v.status == "skipped" and v.unproven
    assert res.exit_code() == 1 and [f.requirement for f in res.failing()] == ["ADAPT-3000"]
    proven = RunResults("r", 0, {}, scenarios=[
        _s("a", ["OC-ADAPT-5001a", "ADAPT-3000"], "fail", ["OC-ADAPT-5001a"]),
        _s("a", ["ADAPT-3000"], "pass"),
    ])  # fmt: skip
    assert proven.exit_code() == 0  # proven by another scenario: precise attribution holds


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


# --- results.json is written fast and byte for byte as json.dumps(indent=2) wrote it ---------
_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(blacklist_categories=["Cs"])),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@dataclass
class _Nested:
    name: str
    items: list[object]


@settings(deadline=None, max_examples=300)
@given(evidence=st.dictionaries(st.text(max_size=8), _JSONISH, max_size=5), nested=st.booleans())
def test_write_is_byte_identical_to_json_dumps_indent_2(
    tmp_path_factory: pytest.TempPathFactory, evidence: dict[str, object], nested: bool
) -> None:
    if nested:  # asdict turns a dataclass inside the evidence into a dict: so does write
        evidence["nested"] = [_Nested("x", [_Nested("y", [1.5, (1, 2)])])]
    s = _s("a", ["ADAPT-3000"], "pass")
    s.evidence = evidence
    res = RunResults("r", 1, {"targets": [{"name": "a"}]}, scenarios=[s, _s("b", [], "fail")])
    path = res.write(tmp_path_factory.mktemp("w") / "results.json")
    expected = json.dumps(res.to_dict(), indent=2, ensure_ascii=False) + "\n"
    assert path.read_bytes() == expected.encode("utf-8")


def test_write_fails_as_before_on_what_json_cannot_write(tmp_path: Path) -> None:
    s = _s("a", ["ADAPT-3000"], "pass")
    s.evidence = {"text": "a\ud800b"}  # a lone surrogate is not UTF-8
    with pytest.raises(UnicodeEncodeError):
        RunResults("r", 1, {}, scenarios=[s]).write(tmp_path / "a.json")
    s.evidence = {"obj": object()}
    with pytest.raises(TypeError, match="not JSON serializable"):
        RunResults("r", 1, {}, scenarios=[s]).write(tmp_path / "b.json")


@settings(deadline=None, max_examples=300)
@given(
    evidence=st.dictionaries(st.text(max_size=8), _JSONISH, max_size=5),
    raw_text=st.sampled_from(['"\\ud800"', "NaN", "-Infinity", "1e400", '"\\udd1e\\ud834"', "1"]),
)
def test_read_gives_what_json_loads_gives(
    tmp_path_factory: pytest.TempPathFactory, evidence: dict[str, object], raw_text: str
) -> None:
    s = _s("a", ["ADAPT-3000"], "pass")
    s.evidence = evidence
    res = RunResults("r", 1, {"odd": 0}, scenarios=[s])
    path = res.write(tmp_path_factory.mktemp("r") / "r.json")
    # values msgspec refuses (json.loads takes them): spliced into the text as written
    text = path.read_text("utf-8").replace('"odd": 0', f'"odd": {raw_text}', 1)
    path.write_text(text, "utf-8")
    back = RunResults.read(path)
    expected = json.loads(text)
    # repr: NaN equals NaN, and -0.0 against 0.0 or 1 against 1.0 count as different
    assert repr(back.scenarios[0].evidence) == repr(expected["scenarios"][0]["evidence"])
    assert repr(back.target) == repr(expected["target"])


def test_read_fails_as_json_loads_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"run_id": "r", "seed": 1,}')
    with pytest.raises(json.JSONDecodeError):
        RunResults.read(bad)
    bad.write_bytes(b'{"run_id": "\xff"}')
    with pytest.raises(UnicodeDecodeError):
        RunResults.read(bad)
