"""Markdown for a pull-request comment, out of a :class:`GateReport`.

Why these choices: the comment leads with one verdict line (what a reviewer reads first), then
only what gates, then the rest folded in ``<details>`` (GitHub renders it; plain Markdown viewers
show it open). Tables are capped at :data:`MAX_ROWS` rows so a wholesale failure still fits a
comment (GitHub's limit is 65,536 characters); the JSON report has every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from ._diff import GateReport

__all__ = ["MAX_ROWS", "md_cell", "md_table", "render_gate_markdown"]

MAX_ROWS: Final = 60


def md_cell(text: object, limit: int = 160) -> str:
    """One table cell: no pipes, no newlines, bounded length."""
    s = " ".join(str(text).split()).replace("|", "\\|")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    rows = list(rows)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows[:MAX_ROWS]:
        out.append("| " + " | ".join(md_cell(c) for c in r) + " |")
    if len(rows) > MAX_ROWS:
        out.append(f"\n… and {len(rows) - MAX_ROWS} more rows (see the JSON report)")
    return out


def _ms(x: float) -> str:
    return f"{x:.1f}"


def render_gate_markdown(report: GateReport) -> str:
    n = report.problems()
    if not n:
        head = "## ✅ llorch-conformance gate: no regressions"
    else:
        # The headline counts exactly what the sections below list as gating, by kind.
        regs_n = len(report.regressions())
        timing_n = len(report.timing_regressions()) if report.policy.mode == "gate" else 0
        expired_n = len(report.expired_waivers())
        causes_n = len(report.regressions_by_problem())
        kinds = [
            f"{k} {label}{'s' if k != 1 else ''}"
            for k, label in (
                (regs_n, "status regression"),
                (timing_n, "timing regression"),
                (expired_n, "expired waiver"),
            )
            if k
        ]
        if regs_n:
            kinds[0] += f" from {causes_n} root cause{'s' if causes_n != 1 else ''}"
        head = f"## ❌ llorch-conformance gate fails on {', '.join(kinds)}"
    b, nw = report.base, report.new
    lines = [
        head,
        "",
        f"base `{b['run_id']}` (suite {b['suite_version']}) → new `{nw['run_id']}` "
        f"(suite {nw['suite_version']}); gating levels: {report.fail_on.upper()} and stronger",
        "",
    ]
    d = report.to_dict()["counts"]
    gating_by_kind: dict[str, int] = {}
    for c in report.status_changes:
        if c.gating:
            gating_by_kind[c.kind] = gating_by_kind.get(c.kind, 0) + 1
    parts = []
    for k, v in sorted(d["changes"].items()):
        g = gating_by_kind.get(k, 0)
        if g and g != v:
            parts.append(f"{v} {k} ({g} gating, {v - g} below --fail-on {report.fail_on})")
        elif g:
            parts.append(f"{v} {k} (gating)")
        else:
            parts.append(f"{v} {k}")
    parts.append(f"{d['still_failing']} still failing (accepted in base)")
    if d["waived"]:
        parts.append(f"{d['waived']} waived")
    lines += ["**Changes:** " + ", ".join(parts), ""]
    notable = [
        f"{i.scope if i.scope != 'run' else 'suite'} {i.field.replace('_', ' ')}: "
        f"`{md_cell(i.base, 40)}` → `{md_cell(i.new, 40)}`"
        for i in report.identity
        if i.field in ("engine_version", "version", "suite_version", "catalogue", "dialect")
    ]
    if notable:
        lines += ["**Versions:** " + "; ".join(notable), ""]

    regs = report.regressions()
    if regs:
        by_problem = report.regressions_by_problem()
        lines += [
            f"### Status regressions ({len(regs)}, gating) from {len(by_problem)} root "
            f"cause{'s' if len(by_problem) != 1 else ''}",
            "",
        ]
        for cause, changes in by_problem[:MAX_ROWS]:
            ids = ", ".join(f"{c.requirement}" for c in changes)
            adapters = ", ".join(sorted({c.adapter for c in changes}))
            lines.append(
                f"- **{md_cell(cause, 200)}** — `{md_cell(adapters, 60)}`: {len(changes)} "
                f"requirement{'s' if len(changes) != 1 else ''} ({md_cell(ids, 400)})"
            )
        lines += ["", "<details><summary>Every regressed requirement</summary>", ""]
        lines += md_table(
            ("adapter", "requirement", "level", "base", "new", "change", "message"),
            (
                (c.adapter, c.requirement, c.level, c.base or "—", c.new or "—", c.kind, c.message)
                for c in regs
            ),
        )
        lines += ["", "</details>", ""]
    treg = report.timing_regressions()
    if treg:
        warn = report.policy.mode == "warn"
        lines += ["### Timing regressions" + (" (warning only: --timing warn)" if warn else ""), ""]
        lines += md_table(
            ("adapter", "metric", "stat", "base ms", "new ms", "Δ ms", "Δ %", "allowed ms"),
            (
                (
                    t.adapter,
                    t.metric,
                    t.statistic,
                    _ms(t.base_ms),
                    _ms(t.new_ms),
                    _ms(t.delta_ms),
                    "—" if t.delta_pct is None else f"{t.delta_pct:+.0f}",
                    _ms(t.allowed_ms),
                )
                for t in treg
            ),
        )
        lines.append("")
    expired = report.expired_waivers()
    if expired:
        lines += ["### Expired waivers (renew with a reason, or fix)", ""]
        lines += md_table(
            ("covers", "adapter", "expired", "reason", "where"),
            (
                (
                    w.waiver.covers,
                    w.waiver.adapter,
                    w.waiver.expires,
                    w.waiver.reason,
                    w.waiver.source,
                )
                for w in expired
            ),
        )
        lines.append("")

    other = [c for c in report.status_changes if not c.gating]
    if other:
        lines += ["<details><summary>Other status changes</summary>", ""]
        lines += md_table(
            ("adapter", "requirement", "level", "base", "new", "change", "gating"),
            (
                (
                    c.adapter,
                    c.requirement,
                    c.level,
                    c.base or "—",
                    c.new or "—",
                    c.kind,
                    "no (level below --fail-on)" if c.regression else "no",
                )
                for c in other
            ),
        )
        lines += ["", "</details>", ""]
    if report.waivers:
        lines += ["<details><summary>Waivers</summary>", ""]
        lines += md_table(
            ("#", "covers", "adapter", "state", "expires", "waived", "reason"),
            (
                (
                    w.waiver.source.rpartition("#")[2],
                    w.waiver.covers,
                    w.waiver.adapter,
                    w.state,
                    w.waiver.expires,
                    (
                        f"{len(w.waived_verdicts)} verdict(s) of {', '.join(w.waived)}"
                        if w.waived_verdicts
                        else "—"
                    ),
                    w.waiver.reason,
                )
                for w in report.waivers
            ),
        )
        lines += ["", "</details>", ""]
    if report.timing:
        lines += ["<details><summary>Timings (all compared)</summary>", ""]
        lines += md_table(
            (
                "adapter",
                "metric",
                "stat",
                "base ms",
                "new ms",
                "Δ ms",
                "allowed ms",
                "spread ms",
                "n base/new",
                "verdict",
            ),
            (
                (
                    t.adapter,
                    t.metric,
                    t.statistic,
                    _ms(t.base_ms),
                    _ms(t.new_ms),
                    _ms(t.delta_ms),
                    _ms(t.allowed_ms),
                    _ms(t.spread_ms),
                    f"{t.samples_base}/{t.samples_new}",
                    "REGRESSION" if t.regression else (t.note or "ok"),
                )
                for t in report.timing
            ),
        )
        p = report.policy
        lines += [
            "",
            f"Regression when Δ > max({p.max_regression_pct:g}% of base, {p.spread_k:g} × spread, "
            f"{p.min_delta_ms:g} ms); spread = 1.4826 × MAD of the paired differences new − base.",
            "",
            "</details>",
            "",
        ]
    if report.identity:
        lines += ["<details><summary>Environment and configuration changes</summary>", ""]
        lines += md_table(
            ("scope", "field", "base", "new"),
            ((i.scope, i.field, i.base, i.new) for i in report.identity),
        )
        lines += ["", "</details>", ""]
    if b.get("catalogue_current") == "false":
        lines += ["> ⚠️ the base run was made with an older requirement catalogue.", ""]
    return "\n".join(lines).rstrip() + "\n"
