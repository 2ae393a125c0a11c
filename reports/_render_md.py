"""Markdown renderers: ``test_report.md``, ``error_mapping_table.md``, ``environment.md``.

``test_report.md`` is what a reviewer reads first: the overall result, a verdict per adapter and
requirement, and for every non-pass a pointer into the bundle (the scenario's directory with its
events, wire frames and retry timeline). The error-mapping table is printed from
``adapters.api.ERROR_MAPPING`` — the one table — with the contract template's columns
(``upstream_code, upstream_message, internal_category, http_status, spec_id``, reference §6.1).
``http_status`` is the pre-stream status of the orchestrator's derived mapping (reference §5.4:
DEADLINE_UNMET/INVALID_PARAMS 400, POOL_UNAVAILABLE 503, INTERNAL 500; DECODE_TIMEOUT and
WORKER_RESET are "5xx class", 503 chosen); once a stream is established the status stays 200 and
the error travels as an SSE ``error`` frame (ORCH-3408).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from llorch_conformance.adapters.api import ERROR_MAPPING, ErrorCode, UpstreamCondition

from ._failures import groups_from_json, render_markdown
from ._model import adapter_label, feature_label

__all__ = [
    "HTTP_STATUS_FOR_CODE",
    "render_environment",
    "render_error_mapping",
    "render_test_report",
]

HTTP_STATUS_FOR_CODE: Final[dict[str, int]] = {
    ErrorCode.INVALID_PARAMS.value: 400,
    ErrorCode.DEADLINE_UNMET.value: 400,
    ErrorCode.POOL_UNAVAILABLE.value: 503,
    ErrorCode.DECODE_TIMEOUT.value: 503,
    ErrorCode.WORKER_RESET.value: 503,
    ErrorCode.INTERNAL.value: 500,
}

_SPEC_IDS: Final[dict[UpstreamCondition, str]] = {
    UpstreamCondition.INVALID_REQUEST: "HTU-ERR-4002, HTU-EXP-1102, WA-INT-3004",
    UpstreamCondition.AUTH: "HTU-ERR-4002, HTU-EXP-1102",
    UpstreamCondition.MODEL_NOT_FOUND: "HTU-ERR-4002, ADAPT-3002",
    UpstreamCondition.OVERLOADED: "HTU-ERR-4002, HTU-ERR-4004, WA-INT-3003",
    UpstreamCondition.SERVER_ERROR: "HTU-ERR-4002, WA-INT-3003",
    UpstreamCondition.RESET: "HTU-ERR-4002, WA-INT-3008",
    UpstreamCondition.CONNECT_FAILED: "HTU-ERR-4002, ADAPT-3002",
    UpstreamCondition.TIMEOUT: "HTU-ERR-4002, ADAPT-3005, WA-INT-3003",
    UpstreamCondition.DEADLINE: "ADAPT-3002, ADAPT-3005",
    UpstreamCondition.PROTOCOL: "HTU-ERR-4002, ADAPT-3002",
    UpstreamCondition.ADAPTER_BUG: "ADAPT-3002",
}

_ICON: Final = {
    "pass": "PASS",
    "pass-declared": "PASS (declared)",
    "fail": "FAIL",
    "error": "ERROR",
    "unsupported": "UNSUPPORTED",
    "skipped": "SKIPPED",
}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _verdict_cell(status: str, declared: Sequence[str] | None) -> str:
    """``PASS, declared: cancel`` — a declaration is never shown as a plain PASS."""
    icon = _ICON.get(status, "·")
    if declared and status in ("pass-declared", "unsupported", "fail"):
        head = "PASS" if status == "pass-declared" else icon
        return f"{head}, declared: {_cell(', '.join(declared))}"
    return icon


def _folding_section() -> list[str]:
    """The folding rules and the declaration table (``conformance._declarations``)."""
    from llorch_conformance.conformance import DECLARATION_RULES

    lines = [
        "## Folding rules and declarations",
        "",
        "A verdict per (adapter, requirement) folds its scenarios: `fail` if a scenario failed on "
        "that requirement (a failure fails the IDs it names; the other IDs of its scenario are "
        "not judged by it); else `error` if a harness error hit it; else `pass, declared: X` "
        "(`pass-declared`) if a scenario passed and an allowed declaration left part of it "
        "unrun; else `pass`; else `unsupported` (allowed declarations or black-box limits only); "
        "else `skipped`. An adapter's `Capabilities.declared_unsupported` is judged per "
        "requirement: a capability the contract calls optional or best-effort may be declared; "
        "a MUST may not be declared away (the declaration is a failure of it). Pairs not in the "
        "table: a MUST allows no declaration, a SHOULD or MAY allows any.",
        "",
        "| requirement | capability | may be declared | why |",
        "|---|---|---|---|",
    ]
    for rule in DECLARATION_RULES:
        lines.append(
            f"| {rule.requirement} | `{rule.capability}` | {'yes' if rule.allowed else 'no'} "
            f"| {_cell(rule.why)} |"
        )
    return lines


def render_error_mapping() -> str:
    lines = [
        "# Error mapping table",
        "",
        "Printed from `adapters.api.ERROR_MAPPING` (the one table). `http_status` is the pre-stream",
        "status; an established stream stays 200 and carries an SSE `error` frame (ORCH-3408).",
        "",
        "| upstream_code | upstream_message | internal_category | http_status | spec_id | retriable | retry_after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ERROR_MAPPING:
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    row.condition.value,
                    row.upstream,
                    f"{row.kind.value} / {row.code.value}",
                    HTTP_STATUS_FOR_CODE.get(row.code.value, 500),
                    _SPEC_IDS.get(row.condition, "HTU-ERR-4002"),
                    "yes" if row.retriable else "no",
                    "Retry-After → retry_after_ms" if row.uses_retry_after else "-",
                )
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def render_environment(env: Mapping[str, Any]) -> str:
    lines = ["# Environment", ""]
    for key, value in env.items():
        if isinstance(value, Mapping):
            lines.append(f"## {key}")
            lines.append("")
            for k, v in value.items():
                lines.append(f"- **{_cell(k)}**: `{_cell(v)}`")
            lines.append("")
        elif isinstance(value, list):
            lines.append(f"## {key}")
            lines.append("")
            for item in value:
                lines.append(f"- `{_cell(item)}`")
            lines.append("")
        else:
            lines.append(f"- **{_cell(key)}**: `{_cell(value)}`")
    return "\n".join(lines) + "\n"


def render_test_report(summary: Mapping[str, Any], env: Mapping[str, Any]) -> str:
    counts = summary["counts"]
    adapters = [a["name"] for a in summary["adapters"]]
    lines = [
        f"# Conformance report — run `{summary['run_id']}`",
        "",
        f"**Result: {summary['result'].upper()}** (exit code {summary['exit_code']}; level "
        f"`{summary['level']}`; seed `{summary['seed']}`; suite {summary['suite_version']}).",
        "",
        "Scenarios: "
        + ", ".join(f"{counts[s]} {s}" for s in ("pass", "fail", "unsupported", "skipped", "error"))
        + ".",
        "",
        f"Started {summary.get('started_at') or '?'}, wall time {summary.get('wall_time_s', 0)} s. "
        f"Config digest `{summary.get('config_digest', '?')}`.",
        "",
        "Files: `summary.json` (machine-readable), `report.html` (matrix and transcripts), "
        "`junit.xml`, `allure-results/`, `timings.csv`, `error_mapping_table.md`, `environment.json`, "
        "`requirements.json`, `seeds.txt`, `manifest.json` (SHA-256 of every file) and "
        "`attestation/` (in-toto statement, optional signature).",
        "",
        *render_markdown(groups_from_json(summary.get("failure_groups"))),
        "",
        "## Verdicts per requirement and adapter",
        "",
        "| requirement | level | " + " | ".join(_cell(adapter_label(a)) for a in adapters) + " |",
        "|---|---|" + "---|" * len(adapters),
    ]
    for r in summary["requirements"]:
        vs = r["verdicts"]
        if not vs:
            continue
        lines.append(
            f"| {r['id']} | {r['level']} | "
            + " | ".join(
                _verdict_cell(vs.get(a, ""), r.get("declared", {}).get(a)) for a in adapters
            )
            + " |"
        )
    uncovered = [r for r in summary["requirements"] if not r["verdicts"]]
    lines += ["", "## Not proven in this run", ""]
    if uncovered:
        for r in uncovered:
            why = f"layer not built ({r['pending']})" if r.get("pending") else "no scenario ran"
            lines.append(f"- {r['id']} ({r['level']}): {why}")
    else:
        lines.append("Every catalogue requirement has a verdict.")
    # Failures and errors are listed, grouped by root cause, at the top when the summary has
    # the groups; here only what did not run (an older summary without groups lists them all).
    grouped = bool(summary.get("failure_groups"))
    bad = [
        s
        for s in summary["scenarios"]
        if s["status"] != "pass" and not (grouped and s["status"] in ("fail", "error"))
    ]
    title = "Scenarios that did not run" if grouped else "Scenarios that did not pass"
    lines += ["", f"## {title}", ""]
    if grouped:
        lines += ["Failures and errors: see the top of this report.", ""]
    if not bad:
        lines.append("None.")
    for s in bad:
        reqs = ", ".join(s.get("failed_requirements") or s["requirements"]) or "-"
        lines.append(
            f"- **{_ICON[s['status']]}** `{_cell(adapter_label(s['adapter']))}` — "
            f"{_cell(feature_label(s['feature']))}: "
            f"{_cell(s['scenario'])} [{reqs}]"
        )
        if s.get("message"):
            lines.append(f"  - {_cell(s['message'])[:400]}")
        lines.append(
            f"  - evidence: `{s['dir']}/` (events.ndjson, wire.ndjson, retry_timeline.ndjson, evidence.json)"
        )
    lines += ["", *_folding_section()]
    lines += ["", "## Environment", ""]
    for key in ("suite_version", "python", "platform", "seed", "config_digest"):
        if key in env:
            lines.append(f"- {key}: `{_cell(env[key])}`")
    targets: Sequence[Mapping[str, Any]] = env.get("adapters", [])
    for t in targets:
        lines.append(
            f"- adapter `{_cell(t.get('name'))}`: dialect {_cell(t.get('dialect'))}, version "
            f"{_cell(t.get('version'))}, engine_version {_cell(t.get('engine_version'))}"
        )
    return "\n".join(lines) + "\n"
