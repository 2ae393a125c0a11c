"""Waivers: schema errors name file, entry and field; waived is never pass; expiry and staleness."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from llorch_conformance.adapters.api import ConfigError
from llorch_conformance.reports.gate import (
    apply_waivers,
    diff_views,
    load_bundle,
    load_waivers,
    render_gate_markdown,
)

from ._bundles import build, scenario

GOOD = """\
version: 1
waivers:
  - requirement: ADAPT-3001
    adapter: acme_*
    reason: drops the last token on n_predict, acme#42
    expires: 2026-06-30
  - requirement: ADAPT-3002
    adapter: acme_llamacpp
    reason: fixed upstream, waiting for the release
    expires: 2026-12-31
    issue: https://example.invalid/acme/7
"""


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "waivers.yaml"
    p.write_text(text, "utf-8")
    return p


def test_a_valid_file_loads(tmp_path: Path) -> None:
    ws = load_waivers(_write(tmp_path, GOOD))
    assert [w.requirement for w in ws] == ["ADAPT-3001", "ADAPT-3002"]
    assert ws[0].expires == dt.date(2026, 6, 30)
    assert ws[1].issue.endswith("/7")
    assert ws[0].matches("acme_llamacpp", "ADAPT-3001")
    assert not ws[0].matches("llamacpp", "ADAPT-3001")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("    reason: fixed upstream, waiting for the release\n", ""),
            r"entry 2 \(ADAPT-3002\), missing field 'reason'",
        ),
        (
            GOOD.replace("2026-06-30", "2026-02-30"),
            r"entry 1 \(ADAPT-3001\), field 'expires': '2026-02-30' is not a calendar date",
        ),
        (
            GOOD.replace("2026-06-30", "next week"),
            r"entry 1 \(ADAPT-3001\), field 'expires': 'next week' is not a date like 2026-12-31",
        ),
        (
            GOOD.replace("ADAPT-3002", "ADAPT-9999"),
            r"entry 2 \(ADAPT-9999\), field 'requirement': ADAPT-9999 is not a catalogue ID",
        ),
        (
            GOOD.replace("    issue:", "    ticket:"),
            r"entry 2 \(ADAPT-3002\), unknown field 'ticket' \(known: ",
        ),
        ("waivers: [1, 2]\n", r"entry 1, is int, expected a mapping of fields"),
        (
            GOOD.replace("  - requirement: ADAPT-3001\n", "  - adapter2: x\n"),
            r"entry 1, ",
        ),
        (
            "waivers:\n  - adapter: a\n    reason: why not\n    expires: 2026-01-01\n",
            r"entry 1, names nothing to waive: add 'requirement', 'requirements' or 'cause'",
        ),
        (
            GOOD.replace("ADAPT-3001", "ADAPT3001"),
            r"entry 1 \(ADAPT3001\), field 'requirement': 'ADAPT3001' is not a requirement ID",
        ),
        ("- 1\n", r"expected a mapping with a 'waivers:' list"),
        ("version: 1\n", r"missing field 'waivers'"),
        ("waivers:\n  - {requirement: [\n", r"not valid YAML"),
        ("", r"empty waiver file"),
    ],
)
def test_bad_files_name_file_entry_and_field(tmp_path: Path, text: str, expected: str) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_waivers(p)
    assert str(info.value).startswith(str(p))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read waiver file"):
        load_waivers(tmp_path / "nope.yaml")


def test_states_active_expired_stale_unused(tmp_path: Path) -> None:
    ws = load_waivers(_write(tmp_path, GOOD))
    verdicts = {
        ("acme_llamacpp", "ADAPT-3001"): "fail",
        ("acme_vllm", "ADAPT-3001"): "pass",
        ("acme_llamacpp", "ADAPT-3002"): "pass",
        ("acme_llamacpp", "ADAPT-3005"): "error",
    }
    statuses, outcomes = apply_waivers(verdicts, ws, today=dt.date(2026, 6, 30))  # last valid day
    assert statuses[("acme_llamacpp", "ADAPT-3001")] == "waived"
    assert statuses[("acme_vllm", "ADAPT-3001")] == "pass"
    assert [o.state for o in outcomes] == ["active", "stale"]
    assert outcomes[0].waived == ("acme_llamacpp",)
    # one day later the first waiver has expired and waives nothing
    statuses, outcomes = apply_waivers(verdicts, ws, today=dt.date(2026, 7, 1))
    assert statuses[("acme_llamacpp", "ADAPT-3001")] == "fail"
    assert outcomes[0].state == "expired"
    # an error is never waived; a waiver matching nothing is unused
    err = load_waivers(_write(tmp_path, GOOD.replace("ADAPT-3002", "ADAPT-3005")))
    statuses, outcomes = apply_waivers(verdicts, err, today=dt.date(2026, 1, 1))
    assert statuses[("acme_llamacpp", "ADAPT-3005")] == "error"
    assert outcomes[1].state == "unused"


def test_the_gate_reports_waived_never_pass_and_fails_on_expiry(tmp_path: Path) -> None:
    a = build(tmp_path / "a", "a", [scenario("x", adapter="acme_llamacpp", reqs=("ADAPT-3001",))])
    b = build(
        tmp_path / "b",
        "b",
        [scenario("x", adapter="acme_llamacpp", reqs=("ADAPT-3001",), status="fail")],
    )
    ws = load_waivers(_write(tmp_path, GOOD))
    live = diff_views(load_bundle(a), load_bundle(b), waivers=ws, today=dt.date(2026, 6, 1))
    (change,) = live.status_changes
    assert (change.base, change.new, change.kind, change.gating) == (
        "pass",
        "waived",
        "newly waived",
        False,
    )
    assert live.exit_code == 0
    assert live.to_dict()["counts"]["waived"] == 1
    md = render_gate_markdown(live)
    assert md.startswith("## ✅") and "| pass | waived | newly waived |" in md
    assert "| active |" in md
    expired = diff_views(load_bundle(a), load_bundle(b), waivers=ws, today=dt.date(2026, 7, 2))
    assert expired.exit_code == 1
    assert [c.kind for c in expired.regressions()] == ["newly failing"]
    assert len(expired.expired_waivers()) == 1
    assert "Expired waivers" in render_gate_markdown(expired)


def test_error_messages_are_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        from llorch_conformance.reports.gate import parse_waivers

        parse_waivers({"waivers": [{"requirement": "ADAPT-3001", "adapter": "a"}]}, source="w.yaml")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("w.yaml: entry 1 (ADAPT-3001), missing field")


CAUSE = """\
version: 1
waivers:
  - cause: "comes before 'started'"
    adapter: acme
    reason: started is sent late until acme#41
    expires: 2026-12-31
"""


def test_one_waiver_per_root_cause_covers_every_requirement_it_failed(tmp_path: Path) -> None:
    """One missing `started` fails three requirements through three different checks: one
    cause waiver covers them all, and an unrelated failure stays unwaived."""
    from tests.reports.test_failures import _no_started_evidence

    def run(base: Path, rid: str, failing: bool) -> Path:
        scen = [
            scenario(
                r,
                adapter="acme",
                reqs=(r,),
                status="fail" if failing else "pass",
                message=f"{r}: {msg}",
            )
            for r, msg in (
                (
                    "WA-INT-3001",
                    "the stream breaks the grammar — event #0 (token) comes before 'started'",
                ),
                (
                    "ADAPT-3003",
                    "determinism signals are missing from started/end and logs — missing: ['seed']",
                ),
                ("ADAPT-3002", "started does not carry the sampler profile version — got None"),
            )
        ]
        for sc in scen:
            sc.evidence = {**sc.evidence, "streams": _no_started_evidence()["streams"]}
        scen.append(
            scenario(
                "HTU-SEC-1402",
                adapter="acme",
                reqs=("HTU-SEC-1402",),
                status="fail" if failing else "pass",
                message="HTU-SEC-1402: an Authorization header was sent — got ['Bearer x']",
            )
        )
        return build(base, rid, scen)

    a, b = run(tmp_path / "a", "a", False), run(tmp_path / "b", "b", True)
    ws = load_waivers(_write(tmp_path, CAUSE))
    report = diff_views(load_bundle(a), load_bundle(b), waivers=ws, today=dt.date(2026, 6, 1))
    (outcome,) = report.waivers
    assert outcome.state == "active"
    assert sorted(r for _, r in outcome.waived_verdicts) == [
        "ADAPT-3002",
        "ADAPT-3003",
        "WA-INT-3001",
    ]
    assert [c.requirement for c in report.regressions()] == ["HTU-SEC-1402"]
    md = render_gate_markdown(report)
    assert "cause “comes before 'started'”" in md and "3 verdict(s) of acme" in md
    # once fixed, the cause no longer occurs: the waiver is stale, to be deleted
    fixed = diff_views(load_bundle(b), load_bundle(a), waivers=ws, today=dt.date(2026, 6, 1))
    assert fixed.waivers[0].state == "stale"


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a, *a]\n",  # recursive: used to end in a RecursionError traceback
        "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",  # the start of a billion-laughs bomb
    ],
    ids=["recursive", "bomb"],
)
def test_a_hostile_waiver_file_is_one_clear_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="aliases"):
        load_waivers(_write(tmp_path, text))


def test_an_oversized_waiver_file_is_refused_unread(tmp_path: Path) -> None:
    p = tmp_path / "huge.yaml"
    p.write_bytes(b"#" * ((1 << 20) + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_waivers(p)
