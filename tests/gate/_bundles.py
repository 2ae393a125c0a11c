"""Proof bundles with known verdicts and timings, written by the real bundle writer.

Timings are exact by construction (the synthetic transcripts of ``tests/reports/_factory``), so
the gate's thresholds can be checked against numbers computed here, never against a clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llorch_conformance.conformance._results import RunResults, ScenarioResult
from llorch_conformance.reports import write_bundle
from tests.reports import _factory as f

#: (adapter, requirement) -> status
Verdicts = Mapping[tuple[str, str], str]


def scenario(
    name: str,
    *,
    adapter: str,
    reqs: Sequence[str],
    status: str = "pass",
    ttft: float = 12.0,
    gap: float = 2.0,
    tokens: int = 4,
    engine_version: str = "b6710-mock",
    message: str = "",
) -> ScenarioResult:
    ev = f.evidence([f"t{i}" for i in range(tokens)])
    ev["streams"] = [f.stream([f"t{i}" for i in range(tokens)], t_first=ttft, gap=gap)]
    ev["journal"] = [f.journal_entry(ttfb_ms=ttft / 4)]
    ev["notes"] = {"surface": {"engine_version": engine_version}}
    ev["target"] = {**ev["target"], "name": adapter, "dialect": adapter}
    s = f.scenario(name, status, adapter=adapter, reqs=tuple(reqs), message=message, ev=ev)
    s.dialect = "llamacpp"
    return s


def build(
    base: Path,
    run_id: str,
    scenarios: Sequence[ScenarioResult],
    *,
    started_at: str = "2026-01-01T00:00:00Z",
    selection: dict[str, Any] | None = None,
) -> Path:
    names = sorted({s.adapter for s in scenarios if s.adapter != "*"})
    res = RunResults(
        run_id=run_id,
        seed=7,
        target={
            "targets": [
                {
                    "name": n,
                    "dialect": "llamacpp",
                    "origin": "builtin",
                    "spec": "",
                    "engine_url": None,
                }
                for n in names
            ],
            "requirements": [],
        },
        started_at=started_at,
        wall_time_s=1.0,
        scenarios=list(scenarios),
    )
    out = write_bundle(res, base=base, run_id=run_id, config={"run_suite": selection or {}})
    return out.path


def timed_run(
    base: Path,
    run_id: str,
    ttfts: Sequence[float],
    *,
    gap: float = 2.0,
    adapter: str = "llamacpp",
    status: str = "pass",
) -> Path:
    """One passing scenario per TTFT value (same names in every run, so streams pair up)."""
    return build(
        base,
        run_id,
        [
            scenario(f"s{i}", adapter=adapter, reqs=("ADAPT-3001",), ttft=t, gap=gap, status=status)
            for i, t in enumerate(ttfts)
        ],
    )
