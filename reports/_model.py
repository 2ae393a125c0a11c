"""What the bundle reads out of a run: per-scenario events, wire frames, retry timelines, timings.

Everything comes from :class:`conformance.RunResults` and each ``ScenarioResult.evidence`` as the
step library records it (``steps/_context.py``: ``streams[].transcript``, ``journal``/``wire``
entries, ``retry_timelines``). Readers here are tolerant: evidence from an older harness or an
error before any stream simply yields empty lists, never an exception, because a bundle must be
written on failure too.

Timing definitions (``timings.csv``), all in milliseconds and measured by the harness clock:

* ``ttft_ms`` — stream start (``submit`` called) to the first ``token`` event;
* ``itl_p50_ms`` / ``itl_p99_ms`` — nearest-rank percentiles of the gaps between token events;
* ``engine_ttfb_ms`` — the mock engine's own time from request received to first body byte
  (journal), for the generation request that served the stream;
* ``adapter_added_ms`` — ``ttft_ms - engine_ttfb_ms``: what the adapter (and the loopback hop)
  added before the first token, including retries;
* ``decode_time_ms`` — what the adapter reported in ``end`` (``decode_time_ms``, or ``decode_ms``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llorch_conformance.conformance import RunResults, ScenarioResult

from ._writer import safe_name

__all__ = [
    "TIMING_COLUMNS",
    "ScenarioFiles",
    "StreamTiming",
    "adapter_label",
    "assign_dirs",
    "events_of",
    "feature_label",
    "percentile",
    "retry_records_of",
    "stream_timings",
    "wire_entries_of",
]

TIMING_COLUMNS = (
    "adapter",
    "feature",
    "scenario",
    "stream",
    "tokens",
    "ttft_ms",
    "itl_p50_ms",
    "itl_p99_ms",
    "engine_ttfb_ms",
    "adapter_added_ms",
    "decode_time_ms",
    "duration_ms",
)


@dataclass
class ScenarioFiles:
    """Where one scenario's evidence lives in the bundle (relative paths)."""

    result: ScenarioResult
    dir: str
    files: dict[str, str] = field(default_factory=dict)


def feature_label(feature: str) -> str:
    """A feature's short name: the file stem when the harness recorded a path."""
    if feature.endswith(".feature"):
        return feature.rsplit("/", 1)[-1].removesuffix(".feature")
    return feature


def adapter_label(adapter: str) -> str:
    """``*`` marks once-per-run scenarios in the results model; reports say so in words."""
    return "run-wide" if adapter == "*" else adapter


def assign_dirs(results: RunResults) -> list[ScenarioFiles]:
    """A unique, safe directory per scenario: ``scenarios/<adapter>/<feature>__<scenario>``."""
    used: set[str] = set()
    out: list[ScenarioFiles] = []
    for s in results.scenarios:
        adapter = safe_name(adapter_label(s.adapter), limit=40)
        feature = safe_name(feature_label(s.feature), limit=40)
        base = f"scenarios/{adapter}/{feature}__{safe_name(s.scenario, limit=60)}"
        d, n = base, 2
        while d in used:
            d, n = f"{base}-{n}", n + 1
        used.add(d)
        out.append(ScenarioFiles(s, d))
    return out


def _streams(ev: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = ev.get("streams")
    return [s for s in raw if isinstance(s, Mapping)] if isinstance(raw, list) else []


def events_of(ev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The adapter's events, one record per event, tagged with the stream index."""
    out: list[dict[str, Any]] = []
    for k, st in enumerate(_streams(ev)):
        transcript = st.get("transcript")
        if isinstance(transcript, list):
            for rec in transcript:
                if isinstance(rec, Mapping):
                    out.append({"stream": k, **rec})
        end: dict[str, Any] = {}
        if st.get("raised"):
            end["raised"] = st["raised"]
        if st.get("hung"):
            end["hung"] = True
        if end:
            out.append({"stream": k, "kind": "<caller>", **end})
    return out


def wire_entries_of(ev: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Journal entries (what the engine saw and sent), frames included when recorded."""
    raw = ev.get("wire")
    if not isinstance(raw, list):
        raw = ev.get("journal")
    return [e for e in raw if isinstance(e, Mapping)] if isinstance(raw, list) else []


def retry_records_of(ev: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Retry decisions of the adapter, per stream (``retry_timelines``)."""
    out: list[dict[str, Any]] = []
    raw = ev.get("retry_timelines")
    if isinstance(raw, list):
        for k, timeline in enumerate(raw):
            if isinstance(timeline, list):
                out.extend({"stream": k, **r} for r in timeline if isinstance(r, Mapping))
    return out


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100); ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class StreamTiming:
    stream: int
    tokens: int
    ttft_ms: float | None
    itl_p50_ms: float | None
    itl_p99_ms: float | None
    engine_ttfb_ms: float | None
    adapter_added_ms: float | None
    decode_time_ms: float | None
    duration_ms: float | None
    gaps_ms: tuple[float, ...] = ()


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _engine_ttfb(
    st: Mapping[str, Any], wire: Sequence[Mapping[str, Any]], ttft: float | None
) -> float | None:
    """Engine's own first-byte time for the generation request that served this stream."""
    t0 = _num(st.get("t0"))
    best: float | None = None
    for e in wire:
        if not e.get("generation"):
            continue
        rx, fb = _num(e.get("t_received")), _num(e.get("t_first_byte"))
        if rx is None or fb is None:
            continue
        if t0 is not None and (rx < t0 or (ttft is not None and fb > t0 + ttft / 1000.0 + 0.001)):
            continue
        best = (fb - rx) * 1000.0  # the last matching entry served the stream (after retries)
    return best


def stream_timings(ev: Mapping[str, Any]) -> list[StreamTiming]:
    wire = wire_entries_of(ev)
    out: list[StreamTiming] = []
    for k, st in enumerate(_streams(ev)):
        tr = st.get("transcript")
        recs = [r for r in tr if isinstance(r, Mapping)] if isinstance(tr, list) else []
        token_ts = [
            t for r in recs if r.get("kind") == "token" and (t := _num(r.get("t_ms"))) is not None
        ]
        gaps = tuple(round(b - a, 3) for a, b in itertools.pairwise(token_ts))
        ttft = token_ts[0] if token_ts else None
        decode = None
        for r in recs:
            if r.get("kind") == "end" and isinstance(r.get("data"), Mapping):
                d = r["data"]
                decode = _num(d.get("decode_time_ms", d.get("decode_ms")))
        ttfb = _engine_ttfb(st, wire, ttft) if ttft is not None else None
        added = round(ttft - ttfb, 3) if ttft is not None and ttfb is not None else None
        out.append(
            StreamTiming(
                stream=k,
                tokens=len(token_ts),
                ttft_ms=ttft,
                itl_p50_ms=percentile(gaps, 50),
                itl_p99_ms=percentile(gaps, 99),
                engine_ttfb_ms=None if ttfb is None else round(ttfb, 3),
                adapter_added_ms=added,
                decode_time_ms=decode,
                duration_ms=_num(st.get("duration_ms")),
                gaps_ms=gaps,
            )
        )
    return out
