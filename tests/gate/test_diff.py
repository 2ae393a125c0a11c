"""``diff_views``: status classification, gating levels, timing formula, identity changes."""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path

import pytest

from llorch_conformance.reports.gate import (
    TimingPolicy,
    diff_views,
    load_bundle,
    render_gate_markdown,
    robust_spread,
)

from ._bundles import build, scenario, timed_run

TODAY = dt.date(2026, 6, 1)


def _kinds(report: object) -> dict[tuple[str, str], tuple[str, bool]]:
    return {
        (c.adapter, c.requirement): (c.kind, c.gating)
        for c in report.status_changes  # type: ignore[attr-defined]
    }


def test_status_changes_are_classified_and_gate(tmp_path: Path) -> None:
    base = build(
        tmp_path / "a",
        "base",
        [
            scenario("one", adapter="llamacpp", reqs=("ADAPT-3001",)),  # pass -> fail
            scenario("two", adapter="llamacpp", reqs=("ADAPT-3002",), status="fail"),  # -> pass
            scenario("three", adapter="llamacpp", reqs=("WA-INT-3002",)),  # pass -> unsupported
            scenario("four", adapter="llamacpp", reqs=("HTU-1005",)),  # pass -> gone
            scenario("five", adapter="llamacpp", reqs=("ADAPT-3005",), status="fail"),  # stays
        ],
    )
    new = build(
        tmp_path / "b",
        "new",
        [
            scenario(
                "one",
                adapter="llamacpp",
                reqs=("ADAPT-3001",),
                status="fail",
                message="ADAPT-3001: token 3 missing",
            ),
            scenario("two", adapter="llamacpp", reqs=("ADAPT-3002",)),
            scenario("three", adapter="llamacpp", reqs=("WA-INT-3002",), status="unsupported"),
            scenario("five", adapter="llamacpp", reqs=("ADAPT-3005",), status="fail"),
        ],
    )
    report = diff_views(load_bundle(base), load_bundle(new), today=TODAY)
    kinds = _kinds(report)
    assert kinds[("llamacpp", "ADAPT-3001")] == ("newly failing", True)
    assert kinds[("llamacpp", "ADAPT-3002")] == ("newly passing", False)
    assert kinds[("llamacpp", "HTU-1005")][0] == "no longer run"
    assert kinds[("llamacpp", "WA-INT-3002")][0] == "newly unsupported"
    assert ("llamacpp", "ADAPT-3005") not in kinds
    assert report.still_failing == [("llamacpp", "ADAPT-3005")]
    assert report.exit_code == 1
    md = render_gate_markdown(report)
    assert md.startswith("## ❌")
    assert "token 3 missing" in md
    data = report.to_dict()
    assert data["result"] == "regression"
    assert data["counts"]["changes"]["newly passing"] == 1


def test_identical_runs_pass_and_say_so(tmp_path: Path) -> None:
    a = timed_run(tmp_path / "a", "a", [10, 20, 30])
    b = timed_run(tmp_path / "b", "b", [10, 20, 30])
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    assert report.status_changes == []
    assert report.exit_code == 0
    assert render_gate_markdown(report).startswith("## ✅")
    assert {t.metric for t in report.timing} == {"ttft_ms", "itl_ms", "adapter_added_ms"}
    assert all(t.delta_ms == 0 and not t.regression for t in report.timing)


@pytest.mark.parametrize(("fail_on", "gates"), [("must", False), ("should", True)])
def test_should_regressions_gate_only_when_asked(tmp_path: Path, fail_on: str, gates: bool) -> None:
    from llorch_conformance.conformance import CATALOGUE, Level

    rid = next(r.id for r in CATALOGUE if r.level is Level.SHOULD and r.pending is None)
    a = build(tmp_path / "a", "a", [scenario("x", adapter="llamacpp", reqs=(rid,))])
    b = build(tmp_path / "b", "b", [scenario("x", adapter="llamacpp", reqs=(rid,), status="fail")])
    report = diff_views(load_bundle(a), load_bundle(b), fail_on=fail_on, today=TODAY)  # type: ignore[arg-type]
    (change,) = report.status_changes
    assert change.regression and change.gating is gates
    assert report.exit_code == (1 if gates else 0)


def test_uniform_slowdown_beyond_the_percentage_is_a_regression(tmp_path: Path) -> None:
    ttfts = [10.0, 40.0, 70.0, 100.0, 130.0]  # very different scenarios: a wide raw spread
    a = timed_run(tmp_path / "a", "a", ttfts)
    b = timed_run(tmp_path / "b", "b", [t * 1.5 for t in ttfts])
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    ttft = {t.statistic: t for t in report.timing if t.metric == "ttft_ms"}
    assert ttft["p50"].base_ms == 70.0 and ttft["p50"].new_ms == 105.0
    # paired differences: 5, 20, 35, 50, 65 -> median 35, MAD 15
    assert ttft["p50"].spread_ms == pytest.approx(1.4826 * 15, abs=1e-3)
    assert ttft["p50"].allowed_ms == pytest.approx(max(0.2 * 70, 3 * 1.4826 * 15, 1.0), abs=1e-3)
    # 3 x spread (66.7) is wider than the 35 ms shift: the spread protects noisy metrics...
    assert not ttft["p50"].regression
    # ...and a tighter k lets the 50 % slowdown gate.
    tight = diff_views(
        load_bundle(a), load_bundle(b), policy=TimingPolicy(spread_k=0.5), today=TODAY
    )
    t50 = next(t for t in tight.timing if t.metric == "ttft_ms" and t.statistic == "p50")
    assert t50.regression and tight.exit_code == 1
    assert "Timing regressions" in render_gate_markdown(tight)


def test_a_constant_shift_has_no_spread_and_gates_on_the_percentage(tmp_path: Path) -> None:
    ttfts = [10.0, 40.0, 70.0, 100.0, 130.0]
    a = timed_run(tmp_path / "a", "a", ttfts)
    b = timed_run(tmp_path / "b", "b", [t + 20.0 for t in ttfts])  # +20 ms everywhere
    c = timed_run(tmp_path / "c", "c", [t + 10.0 for t in ttfts])  # +10 ms: 14 % of 70
    for new, regressed in ((b, True), (c, False)):
        report = diff_views(load_bundle(a), load_bundle(new), today=TODAY)
        t50 = next(t for t in report.timing if t.metric == "ttft_ms" and t.statistic == "p50")
        assert t50.spread_ms == 0.0
        assert t50.allowed_ms == pytest.approx(14.0)
        assert t50.regression is regressed


def test_faster_and_sub_floor_changes_never_gate(tmp_path: Path) -> None:
    a = timed_run(tmp_path / "a", "a", [10.0, 12.0, 14.0], gap=0.0)
    b = timed_run(tmp_path / "b", "b", [5.0, 6.0, 7.0], gap=0.6)  # faster TTFT, ITL +0.6 ms
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    assert report.exit_code == 0
    itl = next(t for t in report.timing if t.metric == "itl_ms" and t.statistic == "p50")
    assert itl.delta_ms == pytest.approx(0.6) and itl.allowed_ms == 1.0 and not itl.regression
    strict = diff_views(
        load_bundle(a), load_bundle(b), policy=TimingPolicy(min_delta_ms=0.5), today=TODAY
    )
    assert any(t.metric == "itl_ms" and t.regression for t in strict.timing)


def test_failed_scenarios_do_not_feed_timings(tmp_path: Path) -> None:
    a = timed_run(tmp_path / "a", "a", [10.0, 20.0])
    b = timed_run(tmp_path / "b", "b", [900.0, 900.0], status="fail")
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    assert report.timing == []
    assert report.exit_code == 1  # the failures gate, not the timings


def test_robust_spread_ignores_one_outlier() -> None:
    values = [10.0, 10.5, 9.5, 10.0, 500.0]
    assert robust_spread(values) == pytest.approx(1.4826 * 0.5)
    assert statistics.stdev(values) > 200  # what a plain standard deviation would have said
    assert robust_spread([3.0]) == 0.0


def test_engine_and_catalogue_changes_are_reported_not_gating(tmp_path: Path) -> None:
    a = build(tmp_path / "a", "a", [scenario("x", adapter="llamacpp", reqs=("ADAPT-3001",))])
    b = build(
        tmp_path / "b",
        "b",
        [scenario("x", adapter="llamacpp", reqs=("ADAPT-3001",), engine_version="b7000-mock")],
        selection={"seed": 3},
    )
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    fields = {(i.scope, i.field): (i.base, i.new) for i in report.identity}
    assert fields[("llamacpp", "engine_version")] == ("b6710-mock", "b7000-mock")
    assert fields[("run", "selection.seed")] == ("None", "3")
    assert ("run", "config_digest") in fields
    assert report.exit_code == 0
    assert (
        "**Versions:** llamacpp engine version: `b6710-mock` → `b7000-mock`"
        in render_gate_markdown(report)
    )


def test_policy_rejects_nonsense() -> None:
    from llorch_conformance.adapters.api import UsageError

    with pytest.raises(UsageError, match="percentage"):
        TimingPolicy(max_regression_pct=-1)
    with pytest.raises(UsageError):
        TimingPolicy(spread_k=float("nan"))


def test_p99_of_few_samples_is_reported_not_gated(tmp_path: Path) -> None:
    from llorch_conformance.reports.gate import MIN_P99_SAMPLES

    few = [10.0] * (MIN_P99_SAMPLES - 1)
    a = timed_run(tmp_path / "a", "a", few)
    b = timed_run(tmp_path / "b", "b", [*few[:-1], 500.0])  # one slow stream: p99 = max
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    p99 = next(t for t in report.timing if t.metric == "ttft_ms" and t.statistic == "p99")
    assert p99.delta_ms == 490.0 and not p99.regression and "not gated" in p99.note


def test_one_slow_stream_is_noise_for_p99_whatever_the_sample_count(tmp_path: Path) -> None:
    """The issue's wolf: an unchanged adapter, one scheduler hiccup, p99 26 -> 31 ms."""
    many = [10.0] * 40
    c = timed_run(tmp_path / "c", "c", many)
    d = timed_run(tmp_path / "d", "d", [*many[:-1], 500.0])
    report = diff_views(load_bundle(c), load_bundle(d), today=TODAY)
    p99 = next(t for t in report.timing if t.metric == "ttft_ms" and t.statistic == "p99")
    assert p99.delta_ms == 490.0 and not p99.regression
    assert "too few samples to bound p99" in p99.note
    assert report.exit_code == 0


def _tail_run(base: Path, run_id: str, slow: int, slow_gap: float) -> Path:
    """10 streams of 50 tokens (490 gaps); ``slow`` of them have ``slow_gap`` ms gaps."""
    return build(
        base,
        run_id,
        [
            scenario(
                f"s{i}",
                adapter="llamacpp",
                reqs=("ADAPT-3001",),
                tokens=50,
                gap=slow_gap if i < slow else 2.0,
            )
            for i in range(10)
        ],
    )


def test_a_real_tail_regression_of_many_samples_gates_on_p99(tmp_path: Path) -> None:
    a = _tail_run(tmp_path / "a", "a", 0, 0.0)
    b = _tail_run(tmp_path / "b", "b", 2, 40.0)  # 20 % of all gaps now 40 ms: a real tail
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    p99 = next(t for t in report.timing if t.metric == "itl_ms" and t.statistic == "p99")
    assert p99.samples_base == 490 and p99.base_ms == 2.0 and p99.new_ms == 40.0
    assert p99.regression and report.exit_code == 1


def test_a_spread_of_zero_from_one_sample_never_gates(tmp_path: Path) -> None:
    a = timed_run(tmp_path / "a", "a", [10.0], gap=1.0)
    b = timed_run(tmp_path / "b", "b", [100.0], gap=1.0)  # 10x, but one stream only
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    ttft = [t for t in report.timing if t.metric == "ttft_ms"]
    assert ttft and all(t.spread_ms == 0.0 and not t.regression for t in ttft)
    assert all("one sample" in t.note for t in ttft)
    assert report.exit_code == 0


def test_quantile_bounds_are_order_statistics() -> None:
    from llorch_conformance.reports.gate._timing import quantile_bounds

    xs = [float(i) for i in range(1, 101)]
    lo, hi = quantile_bounds(xs, 0.5)
    assert lo is not None and hi is not None and lo < 50.0 < hi  # ranks 40..60
    assert quantile_bounds(xs, 0.99)[1] is None  # the tail of 100 samples is unbounded
    assert quantile_bounds([1.0], 0.5) == (None, None)


@pytest.mark.parametrize(
    ("mode", "exit_code", "compared"), [("gate", 1, True), ("warn", 0, True), ("off", 0, False)]
)
def test_timing_mode(tmp_path: Path, mode: str, exit_code: int, compared: bool) -> None:
    a = timed_run(tmp_path / "a", "a", [10.0, 20.0, 30.0])
    b = timed_run(tmp_path / "b", "b", [30.0, 40.0, 50.0])
    policy = TimingPolicy(mode=mode)  # type: ignore[arg-type]
    report = diff_views(load_bundle(a), load_bundle(b), policy=policy, today=TODAY)
    assert report.exit_code == exit_code
    assert bool(report.timing_regressions()) is compared
    md = render_gate_markdown(report)
    assert ("warning only" in md) is (mode == "warn")


def test_headline_and_body_counts_agree(tmp_path: Path) -> None:
    """The issue's "8 regressions" headline over "9 newly failing": a SHOULD that fails at
    --fail-on must is a change, not a gating problem, and both lines must say so."""
    from llorch_conformance.conformance import CATALOGUE, Level

    should = next(r.id for r in CATALOGUE if r.level is Level.SHOULD and r.pending is None)
    musts = ("ADAPT-3001", "ADAPT-3002")
    a = build(
        tmp_path / "a",
        "a",
        [scenario(r, adapter="llamacpp", reqs=(r,)) for r in (*musts, should)],
    )
    b = build(
        tmp_path / "b",
        "b",
        [scenario(r, adapter="llamacpp", reqs=(r,), status="fail") for r in (*musts, should)],
    )
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    md = render_gate_markdown(report)
    head = md.splitlines()[0]
    # (both MUST scenarios failed with the same, empty, message: one root cause)
    assert head == "## ❌ llorch-conformance gate fails on 2 status regressions from 1 root cause"
    assert "3 newly failing (2 gating, 1 below --fail-on must)" in md
    assert "### Status regressions (2, gating) from 1 root cause" in md


def _noisy_run(base: Path, run_id: str, seed: int, *, slow: float = 1.0) -> Path:
    """A run shaped like a real one on a busy machine: 40 streams of 24 tokens, TTFT and every
    inter-token gap with independent multiplicative noise, and one scheduler hiccup somewhere.
    ``slow`` multiplies every timing (a real adapter slowdown)."""
    import random

    rng = random.Random(seed)
    scen = []
    for i in range(40):
        s = scenario(f"s{i}", adapter="acme", reqs=("ADAPT-3001",), tokens=24)
        transcript = s.evidence["streams"][0]["transcript"]
        t = 10.0 + 30.0 * rng.lognormvariate(0, 0.35) * slow
        for rec in transcript[1:]:
            rec["t_ms"] = round(t, 3)
            t += 2.0 * rng.lognormvariate(0, 0.5) * slow
        scen.append(s)
    hiccup = scen[rng.randrange(40)].evidence["streams"][0]["transcript"]
    for rec in hiccup[8:]:
        rec["t_ms"] += 120.0  # one 120 ms stall in one stream
    return build(base, run_id, scen)


def test_two_noisy_runs_of_an_unchanged_adapter_pass_with_the_defaults(tmp_path: Path) -> None:
    """The issue's "done when": unchanged adapter, same machine, default settings → no gate.
    Five pairs of independently noisy runs (each with its own scheduler hiccup) all pass; the
    same noise on a 60 % slower adapter gates."""
    for k in range(5):
        a = _noisy_run(tmp_path / f"a{k}", f"a{k}", seed=2 * k)
        b = _noisy_run(tmp_path / f"b{k}", f"b{k}", seed=2 * k + 1)
        report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
        assert report.exit_code == 0, [t for t in report.timing if t.regression]
    slow = _noisy_run(tmp_path / "slow", "slow", seed=99, slow=1.6)
    report = diff_views(load_bundle(a), load_bundle(slow), today=TODAY)
    assert report.exit_code == 1
    assert {(t.metric, t.statistic) for t in report.timing_regressions()} >= {("itl_ms", "p50")}


def test_status_regressions_read_as_one_entry_per_root_cause(tmp_path: Path) -> None:
    """One bug (no `started`) failing three requirements is one entry of the gate comment."""
    from tests.reports.test_failures import _no_started_evidence

    grammar = "the stream breaks the grammar — event #0 (token) comes before 'started'"
    msgs = {
        "WA-INT-3001": grammar,
        "ADAPT-3003": "determinism signals are missing from started/end and logs — missing: []",
        "ADAPT-3002": "started does not carry the sampler profile version — got None",
        "HTU-SEC-1402": "an Authorization header reached a log record — got 1",
    }

    def run(base: Path, rid: str, failing: bool) -> Path:
        scen = []
        for r, msg in msgs.items():
            sc = scenario(
                r,
                adapter="acme",
                reqs=(r,),
                status="fail" if failing else "pass",
                message=f"{r}: {msg}",
            )
            if r != "HTU-SEC-1402":
                sc.evidence = {**sc.evidence, "streams": _no_started_evidence()["streams"]}
            scen.append(sc)
        return build(base, rid, scen)

    a, b = run(tmp_path / "a", "a", False), run(tmp_path / "b", "b", True)
    report = diff_views(load_bundle(a), load_bundle(b), today=TODAY)
    groups = report.regressions_by_problem()
    assert [len(cs) for _, cs in groups] == [3, 1]
    assert groups[0][0].startswith("1. the stream breaks the event grammar")
    md = render_gate_markdown(report)
    assert md.splitlines()[0].endswith("fails on 4 status regressions from 2 root causes")
    assert "### Status regressions (4, gating) from 2 root causes" in md
    assert "3 requirements (" in md and md.index("1. the stream breaks") < md.index("2. ")
