"""``report.html``: one self-contained page — no network, no script, no external font or image.

Layout: the overall result; a matrix with **one row per catalogue requirement** (``tr.req-row``,
plus rows for non-catalogue IDs a custom feature used) and one column per adapter, each cell
linking to the scenarios behind the verdict; timing plots as inline SVG (time to first token per
adapter, token arrival per scenario); and one collapsible section per scenario with the adapter's
events, the wire frames the engine saw and sent, the retry timeline and the message. Drill-down
uses ``<details>`` and fragment links, so it works with scripting disabled. Everything shown is
escaped; the content was redacted before it reached the renderer.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._failures import groups_from_json
from ._model import (
    ScenarioFiles,
    StreamTiming,
    adapter_label,
    events_of,
    feature_label,
    percentile,
    retry_records_of,
    stream_timings,
    wire_entries_of,
)

__all__ = ["render_html"]

_MAX_FRAMES: Final = 50
_MAX_EVENTS: Final = 200
_MAX_TEXT: Final = 2000  # characters of one frame or body shown (the NDJSON files have more)
_CSS: Final = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0}
.pass{background:#d9f2d9}.fail{background:#f8d0d0}.error{background:#f5c28c}
.unsupported{background:#e0e0f8}.pass-declared{background:#eef5c0}.skipped{background:#eee}.none{color:#aaa}
.result-pass{color:#176b17}.result-fail{color:#a01010}.result-error{color:#a35a00}
pre{background:#fafafa;border:1px solid #ddd;padding:4px;max-height:30em;overflow:auto;white-space:pre-wrap}
details{margin:.3em 0}summary{cursor:pointer}
.muted{color:#777}.req-text{max-width:40em}
svg text{font:10px sans-serif}
.group{border:1px solid #e0a0a0;border-left:6px solid #c03030;padding:.3em .8em;margin:.8em 0;background:#fff8f8}
.group.nogate{border-color:#ccc;border-left-color:#c9a040;background:#fffdf5}
.group h3{font-size:1.05em;margin:.3em 0}.group td{font-size:13px}.hint{background:#eef6ff;padding:2px 6px}
.cases td.seen{color:#7a1010}.reason{display:block;font-size:12px;color:#7a1010;max-width:28em}
.cases{table-layout:fixed;width:100%}.cases td{overflow-wrap:anywhere}.cases code{font-size:12px}
ol.problems li{margin:.15em 0}
"""


def _cut(text: str) -> str:
    return (
        text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + f"… [{len(text) - _MAX_TEXT} more]"
    )


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _ttft_svg(points: Mapping[str, Sequence[float]]) -> str:
    """A strip chart: one lane per adapter, one dot per stream's time to first token."""
    lanes = [(a, [v for v in vs if v is not None]) for a, vs in points.items()]
    lanes = [(a, vs) for a, vs in lanes if vs]
    if not lanes:
        return '<p class="muted">No token streams with timings in this run.</p>'
    vmax = max(max(vs) for _, vs in lanes) or 1.0
    width, left, lane_h = 640, 110, 22
    height = lane_h * len(lanes) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
        f'role="img" aria-label="time to first token per adapter">'
    ]
    for i, (adapter, vs) in enumerate(lanes):
        y = 10 + i * lane_h + lane_h / 2
        parts.append(f'<text x="4" y="{y + 3:.1f}">{_e(adapter)}</text>')
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        for v in vs:
            x = left + (width - left - 20) * (v / vmax)
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#3465a4" fill-opacity=".6"><title>{v:.1f} ms</title></circle>'
            )
    axis_y = height - 12
    parts.append(f'<text x="{left}" y="{axis_y}">0 ms</text>')
    parts.append(f'<text x="{width - 70}" y="{axis_y}">{vmax:.0f} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


def _arrival_svg(events: Sequence[Mapping[str, Any]]) -> str:
    """Token index against arrival time (ms) for the scenario's streams."""
    pts = [
        (int(e.get("stream", 0)), float(e["t_ms"]))
        for e in events
        if e.get("kind") == "token" and isinstance(e.get("t_ms"), (int, float))
    ]
    if len(pts) < 2:
        return ""
    tmax = max(t for _, t in pts) or 1.0
    per: dict[int, list[float]] = {}
    for k, t in pts:
        per.setdefault(k, []).append(t)
    nmax = max(len(v) for v in per.values())
    w, h, pad = 360, 120, 24
    colours = ("#3465a4", "#cc0000", "#4e9a06", "#75507b")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{w}" height="{h}" role="img" aria-label="token arrival">'
    ]
    parts.append(f'<line x1="{pad}" y1="{h - pad}" x2="{w - 5}" y2="{h - pad}" stroke="#999"/>')
    parts.append(f'<line x1="{pad}" y1="5" x2="{pad}" y2="{h - pad}" stroke="#999"/>')
    for k, ts in sorted(per.items()):
        coords = " ".join(
            f"{pad + (w - pad - 10) * t / tmax:.1f},{h - pad - (h - pad - 10) * (i + 1) / nmax:.1f}"
            for i, t in enumerate(ts)
        )
        parts.append(
            f'<polyline points="{coords}" fill="none" stroke="{colours[k % 4]}" stroke-width="1.5"/>'
        )
    parts.append(
        f'<text x="{pad}" y="{h - 8}">0</text><text x="{w - 60}" y="{h - 8}">{tmax:.0f} ms</text>'
    )
    parts.append(f'<text x="2" y="12">{nmax} tok</text></svg>')
    return "".join(parts)


def _events_table(events: Sequence[Mapping[str, Any]]) -> str:
    if not events:
        return '<p class="muted">No adapter events recorded.</p>'
    rows = ["<table><tr><th>stream</th><th>t (ms)</th><th>kind</th><th>data</th></tr>"]
    for e in events[:_MAX_EVENTS]:
        data = {k: v for k, v in e.items() if k not in ("stream", "t_ms", "kind")}
        payload = data.get("data", data)
        rows.append(
            f"<tr><td>{_e(e.get('stream', ''))}</td><td>{_e(e.get('t_ms', ''))}</td>"
            f"<td>{_e(e.get('kind', ''))}</td><td><code>{_e(json.dumps(payload, ensure_ascii=False))}</code></td></tr>"
        )
    rows.append("</table>")
    if len(events) > _MAX_EVENTS:
        rows.append(f'<p class="muted">{len(events) - _MAX_EVENTS} more in events.ndjson</p>')
    return "".join(rows)


def _wire_block(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return '<p class="muted">No wire traffic recorded (no mock engine in this scenario).</p>'
    out = []
    for e in entries:
        head = f"{e.get('method', '?')} {e.get('path', '?')}{('?' + str(e['query'])) if e.get('query') else ''} → {e.get('status')}"
        if e.get("fault"):
            head += f"  [fault {e['fault']}]"
        if e.get("disconnected"):
            head += "  [client disconnected]"
        hdrs = "\n".join(f"{k}: {v}" for k, v in (e.get("headers") or []))
        frames = e.get("frames") or []
        shown = [_cut(str(x)) for x in frames[:_MAX_FRAMES]] if isinstance(frames, list) else []
        more = (
            f"\n… {len(frames) - len(shown)} more frames in wire.ndjson"
            if len(frames) > len(shown)
            else ""
        )
        out.append(
            f"<details><summary><code>{_e(head)}</code></summary>"
            f"<pre>{_e(hdrs)}\n\n{_e(_cut(str(e.get('body', ''))))}</pre>"
            f"<pre>{_e(''.join(str(f) for f in shown))}{_e(more)}</pre></details>"
        )
    return "".join(out)


def _retry_block(records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return '<p class="muted">No retries.</p>'
    keys = ("stream", "attempt", "delay_ms", "reason", "code", "status", "retry_after_ms", "at_s")
    rows = ["<table><tr>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"]
    for r in records:
        rows.append("<tr>" + "".join(f"<td>{_e(r.get(k, ''))}</td>" for k in keys) + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def _timing_table(timings: Sequence[StreamTiming]) -> str:
    if not timings:
        return ""
    keys = (
        "stream",
        "tokens",
        "ttft_ms",
        "itl_p50_ms",
        "itl_p99_ms",
        "engine_ttfb_ms",
        "adapter_added_ms",
        "decode_time_ms",
    )
    rows = ["<table><tr>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"]
    for t in timings:
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{_e('' if getattr(t, k) is None else getattr(t, k))}</td>" for k in keys
            )
            + "</tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _timing_summary(
    placed: Sequence[ScenarioFiles], timings: Sequence[Sequence[StreamTiming]]
) -> str:
    """Per adapter: nearest-rank p50/p99 over its streams (the numbers behind the plot)."""
    per: dict[str, dict[str, list[float]]] = {}
    for p, ts in zip(placed, timings, strict=True):
        bucket = per.setdefault(adapter_label(p.result.adapter), {})
        for t in ts:
            for key in ("ttft_ms", "adapter_added_ms"):
                v = getattr(t, key)
                if v is not None:
                    bucket.setdefault(key, []).append(float(v))
            bucket.setdefault("gaps", []).extend(t.gaps_ms)
    if not any(per.values()):
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("adapter", "streams", "TTFT p50", "TTFT p99", "inter-token p50", "inter-token p99",
                  "adapter-added p50")
    )  # fmt: skip

    def fmt(v: float | None) -> str:
        return "" if v is None else f"{v:.1f}"

    rows = [f'<table class="timing-summary"><tr>{head}</tr>']
    for adapter, b in sorted(per.items()):
        if not b.get("ttft_ms"):
            continue  # no token stream for this adapter (e.g. run-wide scenarios)
        ttft, gaps, added = b.get("ttft_ms", []), b.get("gaps", []), b.get("adapter_added_ms", [])
        cells = (
            _e(adapter),
            str(len(ttft)),
            fmt(percentile(ttft, 50)),
            fmt(percentile(ttft, 99)),
            fmt(percentile(gaps, 50)),
            fmt(percentile(gaps, 99)),
            fmt(percentile(added, 50)),
        )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    rows.append(
        '</table><p class="muted">Milliseconds, harness clock; every stream is in timings.csv.</p>'
    )
    return "".join(rows)


def render_html(
    summary: Mapping[str, Any],
    placed: Sequence[ScenarioFiles],
    catalogue_text: Mapping[str, str],
) -> str:
    adapters = [a["name"] for a in summary["adapters"]]
    index: dict[tuple[str, str], list[int]] = {}
    for n, p in enumerate(placed):
        for rid in {*p.result.requirements, *p.result.failed_requirements}:
            index.setdefault((p.result.adapter, rid), []).append(n)
    reasons = {
        (v["adapter"], v["requirement"]): str(v.get("message", "")) for v in summary["verdicts"]
    }
    res = summary["result"]
    c = summary["counts"]
    out = [
        "<!DOCTYPE html>",
        "<!-- AUTOGENERATED: Proof Bundle -->",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        f"<title>llorch-conformance {_e(summary['run_id'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>Conformance report <code>{_e(summary['run_id'])}</code></h1>",
        f'<p class="result-{_e(res)}"><strong>Result: {_e(res.upper())}</strong> (exit {_e(summary["exit_code"])}), '
        f"level {_e(summary['level'])}, seed {_e(summary['seed'])}, suite {_e(summary['suite_version'])}.</p>",
        "<p>Scenarios: "
        + ", ".join(f"{_e(c[s])} {s}" for s in ("pass", "fail", "unsupported", "skipped", "error"))
        + ".</p>",
        *_failures_html(summary, placed),
        "<h2>Requirements × adapters</h2>",
        '<table id="matrix"><thead><tr><th>requirement</th><th>level</th><th class="req-text">text</th>'
        + "".join(f"<th>{_e(adapter_label(a))}</th>" for a in adapters)
        + "</tr></thead><tbody>",
    ]
    for r in summary["requirements"]:
        rid = r["id"]
        cells = []
        for a in adapters:
            st = r["verdicts"].get(a)
            if st is None:
                cells.append('<td class="none">·</td>')
                continue
            links = " ".join(
                f'<a href="#sc-{n}">{i + 1}</a>' for i, n in enumerate(index.get((a, rid), []))
            )
            why = reasons.get((a, rid), "") if st in ("fail", "error") else ""
            reason = f'<span class="reason">{_e(why[:160])}</span>' if why else ""
            declared = r.get("declared", {}).get(a) or []
            shown = st
            if declared and st in ("pass-declared", "unsupported", "fail"):
                head = "pass" if st == "pass-declared" else st
                shown = f"{head}, declared: {', '.join(declared)}"
            cells.append(f'<td class="{_e(st)}">{_e(shown)} {links}{reason}</td>')
        note = (
            f' <span class="muted">(not covered: {_e(r["pending"])})</span>'
            if r.get("pending") and not r["verdicts"]
            else ""
        )
        out.append(
            f'<tr class="req-row" data-req="{_e(rid)}"><td id="req-{_e(rid)}"><code>{_e(rid)}</code></td>'
            f'<td>{_e(r["level"])}</td><td class="req-text">{_e(catalogue_text.get(rid, ""))}{note}</td>{"".join(cells)}</tr>'
        )
    out.append("</tbody></table>")
    # timing plots
    ttft: dict[str, list[float]] = {}
    timings_by_scenario: list[list[StreamTiming]] = []
    for p in placed:
        ts = stream_timings(p.result.evidence)
        timings_by_scenario.append(ts)
        ttft.setdefault(adapter_label(p.result.adapter), []).extend(
            t.ttft_ms for t in ts if t.ttft_ms is not None
        )
    out.append("<h2>Timings</h2>")
    out.append(_ttft_svg(ttft))
    out.append(_timing_summary(placed, timings_by_scenario))
    # scenarios
    out.append("<h2>Scenarios</h2>")
    for n, p in enumerate(placed):
        s = p.result
        ev = s.evidence
        events = events_of(ev)
        reqs = ", ".join(f'<a href="#req-{_e(r)}">{_e(r)}</a>' for r in s.requirements)
        out.append(
            f'<section id="sc-{n}" class="scenario"><details{" open" if s.status in ("fail", "error") else ""}><summary><span class="{_e(s.status)}">{_e(s.status)}</span> '
            f"<code>{_e(adapter_label(s.adapter))}</code> — {_e(feature_label(s.feature))}: {_e(s.scenario)} [{reqs}]</summary>"
            f"<p>Evidence files: <code>{_e(p.dir)}/</code> · <code>{_e(s.nodeid)}</code> · {_e(s.duration_s)} s</p>"
        )
        if s.message:
            out.append(f"<pre>{_e(s.message)}</pre>")
        out.append(_timing_table(timings_by_scenario[n]))
        out.append(_arrival_svg(events))
        out.append("<h3>Adapter events</h3>" + _events_table(events))
        out.append("<h3>Wire (engine journal)</h3>" + _wire_block(wire_entries_of(ev)))
        out.append("<h3>Retry timeline</h3>" + _retry_block(retry_records_of(ev)))
        out.append("</details></section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _failures_html(summary: Mapping[str, Any], placed: Sequence[ScenarioFiles]) -> list[str]:
    """The failures-first view: one card per root cause, every reason inline, before the matrix."""
    groups = groups_from_json(summary.get("failure_groups"))
    anchor = {(p.result.adapter, p.result.nodeid): n for n, p in enumerate(placed)}
    if not groups:
        bad = summary["counts"].get("fail", 0) + summary["counts"].get("error", 0)
        if bad:
            return []  # an older summary without groups: the matrix and scenarios still show it
        return [
            '<h2 id="failures">Failures</h2><p>None: every scenario that ran passed or was declared unsupported.</p>'
        ]
    n_cases = sum(len(g.cases) for g in groups)
    out = [
        '<h2 id="failures">Failures, grouped by root cause</h2>',
        f"<p>{_e(n_cases)} failing scenarios in {_e(len(groups))} problems; problems that fail "
        "the run come first. Fix the first one first: one bug often fails many scenarios.</p>",
        '<ol class="problems">',
        *(
            f'<li><a href="#problem-{_e(g.number)}">{_e(g.cause)}</a> — {_e(len(g.cases))} '
            f"scenario{'s' if len(g.cases) != 1 else ''}"
            f"{'' if g.gating else ' (does not fail the run)'}</li>"
            for g in groups
        ),
        "</ol>",
    ]
    for g in groups:
        err = bool(g.cases) and g.cases[0].status == "error"
        tag = "ERROR" if err else "FAIL"
        if not g.gating:
            tag += " (does not fail the run)"
        reqs = ", ".join(f'<a href="#req-{_e(r)}">{_e(r)}</a>' for r in g.requirements)
        out.append(
            f'<div class="group{"" if g.gating else " nogate"}" id="problem-{_e(g.number)}">'
            f"<h3>{_e(g.number)}. {_e(tag)} <code>{_e(adapter_label(g.adapter))}</code> — "
            f'{_e(g.cause)} <span class="muted">({_e(len(g.cases))} scenario'
            f"{'s' if len(g.cases) != 1 else ''})</span></h3>"
            f"<p>Requirements: {reqs}</p>"
        )
        if g.hint:
            out.append(f'<p class="hint"><strong>Hint:</strong> {_e(g.hint)}</p>')
        head = (
            '<table class="cases"><colgroup><col style="width:17%"><col style="width:8%">'
            '<col style="width:13%"><col style="width:12%"><col style="width:14%">'
            '<col style="width:22%"><col style="width:14%"></colgroup><thead><tr>'
            "<th>scenario</th><th>fails</th><th>fault</th><th>budgets</th><th>expected</th>"
            "<th>seen</th><th>evidence</th></tr></thead><tbody>"
        )
        out.append(head)
        shown = 5
        for i, c in enumerate(g.cases):
            if i == shown:
                out.append(
                    f"</tbody></table><details><summary>{_e(len(g.cases) - shown)} more "
                    "scenarios with this cause (reasons inline)</summary>" + head
                )
            n = anchor.get((c.adapter, c.nodeid))
            link = f'<a href="#sc-{n}">transcript</a> · ' if n is not None else ""
            out.append(
                f"<tr><td>{_e(c.feature)} › {_e(c.scenario)}</td>"
                f"<td>{_e(', '.join(c.requirements))}</td>"
                f"<td><code>{_e(', '.join(c.faults) or '—')}</code></td>"
                f"<td>{_e(c.budgets or '—')}</td><td>{_e(c.expected)}</td>"
                f'<td class="seen">{_e(c.seen)}</td>'
                f"<td>{link}<code>{_e(c.evidence)}</code></td></tr>"
            )
        out.append("</tbody></table>" + ("</details>" if len(g.cases) > shown else "") + "</div>")
    return out
