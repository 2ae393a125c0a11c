"""``diff BASE NEW``: what changed between the last accepted run and this one, and does it gate.

Status changes are judged per (adapter, requirement) on the bundles' verdicts. The new run's
statuses are report-level: a failure a live waiver covers is ``waived`` (never ``pass``), the
base run's are raw (it was accepted as it is). Classification of ``base → new``:

=====================  ===============================================  ==========
kind                   when                                             regression
=====================  ===============================================  ==========
newly failing          anything (or not run) → ``fail``                 yes
newly erroring         anything (or not run) → ``error``                yes
newly unsupported      ``pass`` → ``unsupported`` (support withdrawn)   yes
newly unsupported      other → ``unsupported``                          no
no longer proven       ``pass`` → ``skipped`` (a skip is not support)   yes
no longer run          ``pass`` → absent from the new run               yes
newly waived           anything → ``waived``                            no
newly passing          anything → ``pass``                              no
newly run              absent → ``pass``/``unsupported``/``skipped``    no
changed                any other change (e.g. ``fail`` → ``skipped``)   no
=====================  ===============================================  ==========

A regression *gates* (exit 1) when the requirement's level is within ``fail_on`` (``must``: MUST
only, the ``run`` command's default; ``should``: MUST and SHOULD; ``may``: all) — IDs unknown to
the current catalogue always gate. Timing regressions (:mod:`._timing`) gate in the policy's
``gate`` mode (the default); expired waivers (:mod:`._waivers`) always gate. Changes of engine version, adapter version, suite version,
catalogue, config digest and selection are reported, never gating: they explain a diff, they are
not a defect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ._timing import TimingChange, TimingPolicy, compare_timings
from ._view import BundleView, current_catalogue_digest
from ._waivers import Waiver, WaiverOutcome, apply_waivers

__all__ = ["FailOn", "GateReport", "IdentityChange", "StatusChange", "diff_views"]

FailOn = Literal["must", "should", "may"]
_GATING_LEVELS: Final[dict[str, frozenset[str]]] = {
    "must": frozenset({"MUST"}),
    "should": frozenset({"MUST", "SHOULD"}),
    "may": frozenset({"MUST", "SHOULD", "MAY"}),
}


@dataclass(frozen=True)
class StatusChange:
    adapter: str
    requirement: str
    level: str
    base: str | None
    new: str | None
    kind: str
    regression: bool
    gating: bool
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "requirement": self.requirement,
            "level": self.level,
            "base": self.base,
            "new": self.new,
            "kind": self.kind,
            "regression": self.regression,
            "gating": self.gating,
            "message": self.message,
        }


@dataclass(frozen=True)
class IdentityChange:
    """A changed fact about the run (``scope`` "run") or one adapter (``scope`` its name)."""

    scope: str
    field: str
    base: str
    new: str

    def to_dict(self) -> dict[str, str]:
        return {"scope": self.scope, "field": self.field, "base": self.base, "new": self.new}


@dataclass
class GateReport:
    base: dict[str, str]
    new: dict[str, str]
    fail_on: str
    policy: TimingPolicy
    status_changes: list[StatusChange] = field(default_factory=list)
    timing: list[TimingChange] = field(default_factory=list)
    identity: list[IdentityChange] = field(default_factory=list)
    waivers: list[WaiverOutcome] = field(default_factory=list)
    statuses: dict[tuple[str, str], str] = field(default_factory=dict)
    still_failing: list[tuple[str, str]] = field(default_factory=list)
    #: (adapter, requirement) -> the new run's root cause that failed it (see BundleView).
    root_causes: dict[tuple[str, str], str] = field(default_factory=dict)

    def regressions_by_problem(self) -> list[tuple[str, list[StatusChange]]]:
        """Gating regressions grouped by the new run's root cause (one bug, one entry), in the
        bundle's problem order; regressions without a known cause last, one entry each."""
        grouped: dict[str, list[StatusChange]] = {}
        for c in self.regressions():
            cause = self.root_causes.get((c.adapter, c.requirement)) or (
                f"{c.requirement}: {c.message or c.kind}"
            )
            grouped.setdefault(cause, []).append(c)

        def order(item: tuple[str, list[StatusChange]]) -> tuple[int, int, str]:
            head = item[0].split(". ", 1)[0]
            known = item[0] in self.root_causes.values()
            return (0 if known else 1, int(head) if known and head.isdigit() else 0, item[0])

        return sorted(grouped.items(), key=order)

    # -- verdict -------------------------------------------------------------------------
    def regressions(self) -> list[StatusChange]:
        return [c for c in self.status_changes if c.gating]

    def timing_regressions(self) -> list[TimingChange]:
        return [t for t in self.timing if t.regression]

    def expired_waivers(self) -> list[WaiverOutcome]:
        return [w for w in self.waivers if w.state == "expired"]

    def problems(self) -> int:
        """What gates: status regressions, expired waivers, timing regressions in ``gate`` mode."""
        timing = len(self.timing_regressions()) if self.policy.mode == "gate" else 0
        return len(self.regressions()) + timing + len(self.expired_waivers())

    @property
    def exit_code(self) -> int:
        """0: nothing gates; 1: a gating regression or an expired waiver."""
        return 1 if self.problems() else 0

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for c in self.status_changes:
            counts[c.kind] = counts.get(c.kind, 0) + 1
        return {
            "schema": "llorch-conformance/gate/1",
            "result": "regression" if self.exit_code else "ok",
            "exit_code": self.exit_code,
            "fail_on": self.fail_on,
            "base": self.base,
            "new": self.new,
            "policy": {
                "max_regression_pct": self.policy.max_regression_pct,
                "spread_k": self.policy.spread_k,
                "min_delta_ms": self.policy.min_delta_ms,
                "timing_mode": self.policy.mode,
                "formula": "regression when new - base > max(pct/100*base, k*spread, min_delta_ms);"
                " spread = 1.4826*MAD of paired differences new_i - base_i",
            },
            "counts": {
                "gating_regressions": len(self.regressions()),
                "timing_regressions": len(self.timing_regressions()),
                "expired_waivers": len(self.expired_waivers()),
                "still_failing": len(self.still_failing),
                "waived": sum(1 for s in self.statuses.values() if s == "waived"),
                "changes": counts,
            },
            "status_changes": [c.to_dict() for c in self.status_changes],
            "still_failing": [{"adapter": a, "requirement": r} for a, r in self.still_failing],
            "timing": [t.to_dict() for t in self.timing],
            "identity_changes": [i.to_dict() for i in self.identity],
            "waivers": [w.to_dict() for w in self.waivers],
        }


def _level(rid: str) -> str:
    from llorch_conformance.conformance import get_requirement, is_known

    return get_requirement(rid).level.value if is_known(rid) else "?"


def _classify(base: str | None, new: str | None) -> tuple[str, bool] | None:
    """(kind, regression) of a change, ``None`` when nothing changed (table in the docstring)."""
    if base == new:
        return None
    if new == "fail":
        return "newly failing", True
    if new == "error":
        return "newly erroring", True
    if new == "waived":
        return "newly waived", False
    if new == "pass":
        return ("newly run" if base is None else "newly passing"), False
    if new == "pass-declared":
        # a requirement that passed in full now rests on a declaration: flag it
        return ("newly run" if base is None else "newly declared"), base == "pass"
    if new == "unsupported" and base is not None:
        return "newly unsupported", base == "pass"
    if base == "pass":
        if new == "skipped":
            return "no longer proven", True
        if new is None:
            return "no longer run", True
    if base is None:
        return "newly run", False
    if new is None:
        return "no longer run", False
    return "changed", False


def _identity(base: BundleView, new: BundleView) -> list[IdentityChange]:
    out: list[IdentityChange] = []

    def add(scope: str, name: str, b: str, n: str) -> None:
        if b != n:
            out.append(IdentityChange(scope, name, b, n))

    add("run", "suite_version", base.suite_version, new.suite_version)
    add("run", "catalogue", base.catalogue_digest, new.catalogue_digest)
    add("run", "config_digest", base.config_digest, new.config_digest)
    for key in sorted(set(base.selection) | set(new.selection)):
        add("run", f"selection.{key}", str(base.selection.get(key)), str(new.selection.get(key)))
    for name in sorted(set(base.adapters) | set(new.adapters)):
        b, n = base.adapters.get(name), new.adapters.get(name)
        if b is None or n is None:
            add(name, "adapter", "present" if b else "absent", "present" if n else "absent")
            continue
        add(name, "engine_version", b.engine_version, n.engine_version)
        add(name, "version", b.version, n.version)
        add(name, "dialect", str(b.dialect), str(n.dialect))
    return out


def _ident(v: BundleView) -> dict[str, str]:
    return {
        "run_id": v.run_id,
        "path": str(v.path),
        "started_at": v.started_at,
        "suite_version": v.suite_version,
        "catalogue": v.catalogue_digest,
        "catalogue_current": str(v.catalogue_digest == current_catalogue_digest()).lower(),
    }


def diff_views(
    base: BundleView,
    new: BundleView,
    *,
    policy: TimingPolicy | None = None,
    waivers: Sequence[Waiver] = (),
    fail_on: FailOn = "must",
    today: dt.date | None = None,
) -> GateReport:
    """Compare two loaded bundles (see the module docstring for every rule)."""
    policy = policy or TimingPolicy()
    today = today or dt.datetime.now(dt.UTC).date()
    statuses, outcomes = apply_waivers(new.verdicts, waivers, today=today, causes=new.causes)
    gating_levels = _GATING_LEVELS[fail_on]
    report = GateReport(
        base=_ident(base),
        new=_ident(new),
        fail_on=fail_on,
        policy=policy,
        waivers=outcomes,
        statuses=statuses,
        root_causes=dict(new.problems),
    )
    for key in sorted(set(base.verdicts) | set(statuses)):
        b, n = base.verdicts.get(key), statuses.get(key)
        if b == "fail" and n == "fail":
            report.still_failing.append(key)
        got = _classify(b, n)
        if got is None:
            continue
        kind, regression = got
        level = _level(key[1])
        gating = regression and (level == "?" or level in gating_levels)
        report.status_changes.append(
            StatusChange(
                adapter=key[0],
                requirement=key[1],
                level=level,
                base=b,
                new=n,
                kind=kind,
                regression=regression,
                gating=gating,
                message=new.messages.get(key, "") if n in ("fail", "error", "waived") else "",
            )
        )
    report.timing = compare_timings(base, new, policy)
    report.identity = _identity(base, new)
    return report
