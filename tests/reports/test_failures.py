"""Failure blocks grouped by root cause (reports._failures) and their place in the reports."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from llorch_conformance.conformance._results import RunResults, ScenarioResult
from llorch_conformance.reports import write_bundle
from llorch_conformance.reports._failures import (
    group_failures,
    groups_from_json,
    render_console,
    render_markdown,
)
from llorch_conformance.reports._model import assign_dirs

from ._factory import evidence


def _no_started_evidence(**extra: Any) -> dict[str, Any]:
    ev = evidence(["a", "b"], **extra)
    ev["streams"][0]["transcript"] = ev["streams"][0]["transcript"][1:]  # drop `started`
    return ev


def _scenario(
    name: str, status: str, message: str, ev: dict[str, Any], *reqs: str
) -> ScenarioResult:
    return ScenarioResult(
        nodeid=f"features/x.feature::{name}[acme]",
        feature="/repo/features/errors/timeouts.feature",
        scenario=name,
        adapter="acme",
        dialect="vllm",
        requirements=list(reqs),
        status=status,  # type: ignore[arg-type]
        message=message,
        failed_requirements=list(reqs) if status == "fail" else [],
        evidence=ev,
    )


def _results(*scenarios: ScenarioResult) -> RunResults:
    return RunResults(run_id="r1", seed=7, target={}, scenarios=list(scenarios))


def _grammar_run() -> RunResults:
    """Three scenarios that tripped three different checks, all because `started` is missing,
    plus two unrelated failures of one check with different numbers, a SHOULD failure and a
    pass."""
    return _results(
        _scenario(
            "streams in order",
            "fail",
            "WA-INT-3001: the stream breaks the started → token* → [metrics] → end|error "
            "grammar — event #0 (token) comes before 'started'",
            _no_started_evidence(),
            "WA-INT-3001",
        ),
        _scenario(
            "determinism signals",
            "fail",
            "ADAPT-3003: determinism signals are missing from started/end and logs — missing: "
            "['seed']",
            _no_started_evidence(),
            "ADAPT-3003",
        ),
        _scenario(
            "silence ends DECODE_TIMEOUT",
            "fail",
            "ADAPT-3005: expected a terminal error DECODE_TIMEOUT (retriable=True)",
            _no_started_evidence(
                faults=["stall.midstream;after_events=2;delay_ms=3000"],
                budgets={"first_byte_timeout_s": 0.3, "inter_chunk_timeout_s": 0.3},
            ),
            "ADAPT-3005",
        ),
        _scenario(
            "count A",
            "fail",
            "ADAPT-3001: end.tokens_out does not count the tokens — tokens_out=7, token events=8",
            evidence(["a"]),
            "ADAPT-3001",
        ),
        _scenario(
            "count B",
            "fail",
            "ADAPT-3001: end.tokens_out does not count the tokens — tokens_out=15, token events=16",
            evidence(["a"]),
            "ADAPT-3001",
        ),
        _scenario(
            "decoder",
            "fail",
            "ADAPT-3101: the adapter buffered the whole body — first token after 900 ms",
            evidence(["a"]),
            "ADAPT-3101",
        ),
        _scenario("fine", "pass", "", evidence(["a"]), "ADAPT-3000"),
    )


def test_one_missing_started_reads_as_one_problem() -> None:
    groups = group_failures(_grammar_run())
    assert [g.number for g in groups] == list(range(1, len(groups) + 1))
    first = groups[0]
    assert "comes before 'started'" in first.cause
    assert {c.scenario for c in first.cases} == {"streams in order", "determinism signals"}
    assert set(first.requirements) == {"WA-INT-3001", "ADAPT-3003"}
    # the same broken stream, but a check about something else: its own cause, not hidden
    timeout = next(g for g in groups if "DECODE_TIMEOUT" in g.cause)
    assert [c.scenario for c in timeout.cases] == ["silence ends DECODE_TIMEOUT"]
    assert "started" in first.hint and "§4" in first.hint
    # the same check with other numbers is one cause; a different check is another
    counts = [g for g in groups if "tokens_out" in g.cause]
    assert len(counts) == 1 and len(counts[0].cases) == 2
    assert len(groups) == 4


def test_should_failures_come_last_and_do_not_gate_at_must() -> None:
    groups = group_failures(_grammar_run(), fail_on="must")
    assert [g.gating for g in groups] == [True, True, True, False]
    assert groups[-1].requirements == ("ADAPT-3101",)
    assert all(g.gating for g in group_failures(_grammar_run(), fail_on="should"))


def test_a_case_carries_fault_budgets_expected_seen_and_evidence_path(tmp_path: Path) -> None:
    run = _grammar_run()
    groups = group_failures(run, bundle_dir=tmp_path)
    case = next(c for g in groups for c in g.cases if c.scenario == "silence ends DECODE_TIMEOUT")
    assert case.faults == ("stall.midstream;after_events=2;delay_ms=3000",)
    assert (
        "first-byte timeout 0.3 s" in case.budgets and "inter-chunk timeout 0.3 s" in case.budgets
    )
    assert case.expected.startswith("ADAPT-3005: ")  # no failed step recorded: the requirement
    assert "end {" in case.seen and "tokens_out=2" in case.seen
    dirs = {p.result.scenario: p.dir for p in assign_dirs(run)}
    assert case.evidence == f"{tmp_path / dirs[case.scenario]}/"


def test_the_failing_step_is_what_was_expected() -> None:
    ev = evidence(["a"], failed_step='Then the stream ends with error code "DECODE_TIMEOUT"')
    run = _results(
        _scenario("s", "fail", "ADAPT-3005: expected a terminal error", ev, "ADAPT-3005")
    )
    (g,) = group_failures(run)
    assert g.cases[0].expected == 'Then the stream ends with error code "DECODE_TIMEOUT"'


def test_harness_errors_are_their_own_problem_first() -> None:
    run = _results(
        _scenario("boom", "error", "HarnessError: adapter factory for 'acme' failed: x", {}),
        *_grammar_run().scenarios,
    )
    groups = group_failures(run)
    assert groups[0].cases[0].status == "error" and groups[0].cause.startswith("harness error")


def test_console_keeps_markup_like_text_and_lists_every_group() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=100, force_terminal=True, color_system=None)
    lines = render_console(group_failures(_grammar_run()), console=console)
    out = buf.getvalue()
    assert lines and lines[0].startswith("6 failing scenarios in 4 problems (3 failing the run)")
    assert "1. FAIL [acme] the stream breaks the event grammar" in out and "2 scenarios" in out
    assert "fault    : stall.midstream;after_events=2;delay_ms=3000" in out
    assert "count B [ADAPT-3001]" in out  # the other scenario of a group, one line
    assert out.index("1. FAIL") < out.index("2. FAIL") < out.index("4. FAIL (does not fail")


def test_console_escapes_rich_markup_in_messages() -> None:
    run = _results(
        _scenario(
            "x",
            "fail",
            "ADAPT-3001: every [metrics] event carries only numbers — got [bold]x[/bold]",
            evidence(["a"]),
            "ADAPT-3001",
        )
    )
    buf = io.StringIO()
    render_console(group_failures(run), console=Console(file=buf, width=200, color_system=None))
    assert "every [metrics] event" in buf.getvalue() and "[bold]x[/bold]" in buf.getvalue()


def test_markdown_and_json_round_trip() -> None:
    groups = group_failures(_grammar_run())
    again = groups_from_json(json.loads(json.dumps([g.to_dict() for g in groups])))
    assert again == groups
    md = "\n".join(render_markdown(groups))
    assert md.startswith("## Failures, grouped by root cause")
    assert "### 1. FAIL `acme`" in md and "fault: `stall.midstream" in md
    assert render_markdown([])[0] == "## Failures"


def test_bundle_reports_show_failures_first(tmp_path: Path) -> None:
    out = write_bundle(_grammar_run(), base=tmp_path, run_id="fail-first")
    summary = json.loads((out.path / "summary.json").read_text("utf-8"))
    assert [g["number"] for g in summary["failure_groups"]] == [1, 2, 3, 4]
    md = (out.path / "test_report.md").read_text("utf-8")
    assert md.index("## Failures, grouped by root cause") < md.index("## Verdicts per requirement")
    html = (out.path / "report.html").read_text("utf-8")
    assert html.index('id="failures"') < html.index('id="matrix"')
    # the reason is inline, not a click away: the seen text is in the failures table
    assert "comes before &#x27;started&#x27;" in html
    assert "tokens_out=7, token events=8" in html


def test_a_fault_specific_hint_says_what_the_fault_means() -> None:
    ev = evidence(
        ["a"],
        faults=["frame.missing_terminal"],
        fault_descriptions={"frame.missing_terminal": "the stream ends without its terminal frame"},
    )
    run = _results(
        _scenario(
            "no DONE",
            "fail",
            "WA-INT-3008: expected a terminal error WORKER_RESET (retriable=True) after the "
            "injected fault frame.missing_terminal",
            ev,
            "WA-INT-3008",
        )
    )
    (g,) = group_failures(run)
    assert g.cause == "expected a terminal error WORKER_RESET (retriable=True)"
    (case,) = g.cases
    assert case.faults == ("frame.missing_terminal (the stream ends without its terminal frame)",)
    assert "data: [DONE]" in case.hint and "WORKER_RESET" in case.hint


def test_the_note_after_a_terminal_dump_is_kept_and_gating_follows_the_model() -> None:
    """The useful part of the detail (after the dumped terminal event) survives; whether the
    problem fails the run is exactly what the results model says (its attribution rule)."""
    ev = evidence(["a"])
    ev["streams"][0]["transcript"] = [
        {"t_ms": 2.0, "kind": "error", "data": {"code": "POOL_UNAVAILABLE", "retriable": True}}
    ]
    s = _scenario(
        "env proxy",
        "fail",
        "HTU-1005: the stream did not end with an end event — terminal: {'kind': 'error'} — no "
        "request reached the engine while this scenario had HTTP_PROXY set: the adapter's HTTP "
        "client read the environment's proxy settings (httpx: trust_env=False)",
        ev,
        "HTU-1005",
    )
    s.requirements = ["HTU-1005", "HTU-EXP-1101"]  # names a MAY, carries a MUST
    run = _results(s)
    (g,) = group_failures(run)
    assert g.gating is (run.exit_code() == 1)
    assert g.requirements[0] == "HTU-1005"
    (case,) = g.cases
    assert case.seen.startswith("no request reached the engine")
    assert "trust_env=False" in case.hint
    s.failed_requirements = ["HTU-EXP-1101", "HTU-1005"]  # named: fails the run either way
    (g,) = group_failures(_results(s))
    assert g.gating and g.requirements[:2] == ("HTU-EXP-1101", "HTU-1005")
