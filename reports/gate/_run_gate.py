"""The gate inside ``llorch-conformance run``: ``--baseline``, ``--max-regression``, ``--waivers``.

Three calls, so the run command needs only a few lines: :func:`add_gate_options` (parser),
:func:`prepare_gate` (before the suite runs: a bad waiver file or an unreadable baseline is a
usage error *before* minutes of running, exit 2) and :func:`finish_gate` (after the bundle is
written: loads it and judges it).

Exit code of a gated run:

* 2 when the run itself hit a harness error (the verdict is unknown, nothing to gate);
* with ``--baseline``: the diff's verdict — 1 on a gating regression, a timing regression or an
  expired waiver, else 0. Failures the baseline already had do not block a *change* gate; they
  are listed as "still failing";
* with only ``--waivers``: 1 when a failure at a ``--fail-on`` level is not covered by a live
  waiver, or a waiver expired; else 0 — waived failures are reported ``waived``, not ``pass``;
* a redaction-audit hit in the new bundle (``redaction_audit.json``), or a run that failed for
  any reason outside the verdicts, still fails: the gate never turns those green.

The gate's Markdown goes to stdout and, with ``gate.json``, next to ``results.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from llorch_conformance.adapters.api import UsageError

from ._timing import TimingPolicy
from ._view import BundleView
from ._waivers import Waiver

__all__ = ["GatePlan", "add_gate_options", "add_policy_options", "finish_gate", "prepare_gate"]


def add_policy_options(p: argparse.ArgumentParser) -> None:
    """Timing thresholds and waivers, shared by ``diff`` and ``run``."""
    p.add_argument(
        "--max-regression",
        type=float,
        default=20.0,
        metavar="PCT",
        help="timing regression threshold in percent of the base value (default 20); the "
        "effective threshold is max(PCT%% of base, K x spread, --min-delta-ms)",
    )
    p.add_argument(
        "--spread-k",
        type=float,
        default=3.0,
        metavar="K",
        help="how many spreads (robust sigma of both runs combined) a timing may move (default 3)",
    )
    p.add_argument(
        "--min-delta-ms",
        type=float,
        default=1.0,
        metavar="MS",
        help="timing changes below this many milliseconds never gate (default 1)",
    )
    p.add_argument(
        "--timing",
        choices=("gate", "warn", "off"),
        default="gate",
        help="timing regressions fail the gate (default), are only reported (warn: for shared "
        "CI runners), or are not computed",
    )
    p.add_argument(
        "--waivers",
        type=Path,
        metavar="FILE",
        help="YAML file of known failures (requirement, adapter, reason, expires)",
    )


def add_gate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--baseline",
        type=Path,
        metavar="BUNDLE",
        help="gate this run against the last accepted proof bundle (exit 1 on regression)",
    )
    add_policy_options(p)


@dataclass
class GatePlan:
    baseline: BundleView | None
    waivers: list[Waiver] = field(default_factory=list)
    policy: TimingPolicy = field(default_factory=TimingPolicy)


def policy_from_args(args: argparse.Namespace) -> TimingPolicy:
    return TimingPolicy(
        max_regression_pct=float(args.max_regression),
        spread_k=float(args.spread_k),
        min_delta_ms=float(args.min_delta_ms),
        mode=getattr(args, "timing", "gate"),
    )


def prepare_gate(args: argparse.Namespace) -> GatePlan | None:
    """Validate gate options before the run; ``None`` when no gate was asked for."""
    from ._view import load_bundle
    from ._waivers import load_waivers

    policy = policy_from_args(args)  # UsageError on nonsense thresholds
    baseline_path = getattr(args, "baseline", None)
    waivers_path = getattr(args, "waivers", None)
    if baseline_path is None and waivers_path is None:
        return None
    if getattr(args, "no_bundle", False):
        raise UsageError("--baseline/--waivers judge the run's proof bundle: drop --no-bundle")
    return GatePlan(
        baseline=load_bundle(baseline_path) if baseline_path is not None else None,
        waivers=load_waivers(waivers_path) if waivers_path is not None else [],
        policy=policy,
    )


def _bundle_dir(args: argparse.Namespace, run_id: str) -> Path:
    from .._writer import TestType, safe_name

    base = getattr(args, "proof_dir", None) or os.environ.get("LLORCH_PROOF_DIR") or ".proof_bundle"
    return Path(base) / TestType.CONFORMANCE.value / safe_name(run_id)


def finish_gate(
    plan: GatePlan | None,
    args: argparse.Namespace,
    results: Any,
    rc: int,
    *,
    today: dt.date | None = None,
) -> int:
    """Judge the written bundle; return the run's exit code (module docstring)."""
    if plan is None:
        return rc
    if rc == 2:
        print("llorch-conformance: gate skipped: the run hit harness errors (exit 2)")
        return 2
    from ._diff import diff_views
    from ._render import render_gate_markdown
    from ._view import load_bundle

    written = getattr(args, "bundle_path", None)  # set by reports._run_hook.bundle_run
    new = load_bundle(written if written is not None else _bundle_dir(args, str(results.run_id)))
    fail_on: Literal["must", "should"] = (
        "should" if getattr(args, "fail_on", "must") == "should" else "must"
    )
    out_dir = (
        Path(args.out) if getattr(args, "out", None) else Path("llorch-results") / results.run_id
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    if plan.baseline is not None:
        report = diff_views(
            plan.baseline,
            new,
            policy=plan.policy,
            waivers=plan.waivers,
            fail_on=fail_on,
            today=today,
        )
        md, data, gate_rc = render_gate_markdown(report), report.to_dict(), report.exit_code
    else:
        md, data, gate_rc = _waivers_only(new, plan.waivers, fail_on, today)
    hits = _audit_hits(new.path)
    if hits:  # a secret in the bundle fails the run, whatever the gate says
        md += f"\n> ❌ redaction audit: {hits} hit(s) in the bundle (redaction_audit.json)\n"
        data["redaction_audit_hits"] = hits
        gate_rc = max(gate_rc, 1)
    (out_dir / "gate.md").write_text(md, "utf-8")
    (out_dir / "gate.json").write_text(
        json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8"
    )
    print(md)
    print(f"gate report: {out_dir / 'gate.md'}")
    if rc == 1 and not results.failing(fail_on=fail_on):
        return 1  # the run failed for a reason outside the verdicts: never let the gate hide it
    return gate_rc


def _audit_hits(bundle: Path) -> int:
    """Hits the bundle writer's redaction audit recorded (0 when clean or not recorded)."""
    try:
        doc = json.loads((bundle / "redaction_audit.json").read_text("utf-8"))
    except (OSError, ValueError):
        return 0
    hits = doc.get("hits") if isinstance(doc, dict) else None
    return len(hits) if isinstance(hits, list) else 0


def _waivers_only(
    new: BundleView, waivers: list[Waiver], fail_on: str, today: dt.date | None
) -> tuple[str, dict[str, Any], int]:
    from llorch_conformance.conformance import get_requirement, is_known

    from ._render import md_table
    from ._waivers import apply_waivers

    today = today or dt.datetime.now(dt.UTC).date()
    statuses, outcomes = apply_waivers(new.verdicts, waivers, today=today, causes=new.causes)
    levels = {"MUST"} if fail_on == "must" else {"MUST", "SHOULD"}
    unwaived = sorted(
        k
        for k, s in statuses.items()
        if s == "fail" and (not is_known(k[1]) or get_requirement(k[1]).level.value in levels)
    )
    expired = [o for o in outcomes if o.state == "expired"]
    rc = 1 if unwaived or expired else 0
    head = (
        "## ✅ llorch-conformance: no unwaived failures"
        if rc == 0
        else (
            f"## ❌ llorch-conformance: {len(unwaived)} unwaived failures, {len(expired)} expired waivers"
        )
    )
    lines = [head, ""]
    if unwaived:
        lines += md_table(
            ("adapter", "requirement", "message"),
            ((a, r, new.messages.get((a, r), "")) for a, r in unwaived),
        )
        lines.append("")
    if outcomes:
        lines += md_table(
            ("#", "covers", "adapter", "state", "expires", "waived for", "reason"),
            (
                (
                    o.waiver.source.rpartition("#")[2],
                    o.waiver.covers,
                    o.waiver.adapter,
                    o.state,
                    o.waiver.expires,
                    ", ".join(o.waived) or "—",
                    o.waiver.reason,
                )
                for o in outcomes
            ),
        )
    data = {
        "schema": "llorch-conformance/gate/1",
        "result": "regression" if rc else "ok",
        "exit_code": rc,
        "fail_on": fail_on,
        "unwaived_failures": [{"adapter": a, "requirement": r} for a, r in unwaived],
        "waivers": [o.to_dict() for o in outcomes],
    }
    return "\n".join(lines).rstrip() + "\n", data, rc
