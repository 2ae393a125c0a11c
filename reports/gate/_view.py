"""Reading a proof bundle for the gate: verdicts, identity, catalogue and timing samples.

The gate never forks the results model: it reads what :func:`reports.write_bundle` wrote —

* ``summary.json`` (schema ``llorch-conformance/summary/1``): ``verdicts`` per (adapter,
  requirement), ``suite_version``, ``config_digest``, ``started_at``, ``run_id``;
* ``environment.json``: per adapter its ``dialect``, ``version`` and observed ``engine_version``;
* ``requirements.json``: the catalogue snapshot the run was made with (staleness);
* ``run_config.json``: the selection (``run_suite``) — the recorded ``config_digest`` also hashes
  the run id and argv, so it changes on every run; the selection says whether the *choice* changed;
* ``results.json``: every scenario's evidence, from which :func:`reports._model.stream_timings`
  recomputes the per-stream timings *with* the raw inter-token gaps (``timings.csv`` only keeps
  p50/p99 per stream, too little to estimate a spread).

Every file is read through :class:`reports._bundle_read.BundleReader` (no link followed, strict
bounded JSON, each file checked against its schema): a missing summary or a malformed file raises
:class:`~reports._bundle_read.BundleFormatError`, a ``ConfigError`` naming the bundle and the
file in one line (exit 2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .._bundle_read import BundleReader
from .._model import adapter_label, feature_label, stream_timings

__all__ = [
    "TIMING_METRICS",
    "AdapterInfo",
    "BundleView",
    "StreamKey",
    "catalogue_digest",
    "current_catalogue_digest",
    "load_bundle",
]

#: The gated timing metrics: per-stream values (ttft, adapter-added) or per-gap values (itl).
TIMING_METRICS: Final = ("ttft_ms", "itl_ms", "adapter_added_ms")

#: (adapter, feature, scenario, stream index): the same stream in two runs of the same selection.
StreamKey = tuple[str, str, str, int]


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    dialect: str | None
    version: str
    engine_version: str
    spec: str = ""  # how the run loaded it (module:factory, entry point, built-in)


@dataclass
class BundleView:
    """What the gate needs from one bundle (built by :func:`load_bundle`)."""

    path: Path
    run_id: str
    started_at: str
    suite_version: str
    config_digest: str
    catalogue_digest: str
    selection: dict[str, Any]
    #: (adapter, requirement) -> status, one of the five raw statuses.
    verdicts: dict[tuple[str, str], str]
    messages: dict[tuple[str, str], str]
    adapters: dict[str, AdapterInfo]
    #: (adapter, requirement) -> texts a waiver's ``cause`` is matched against: the verdict's
    #: message and the root causes (and titles) of the failure groups that include it.
    causes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: (adapter, requirement) -> the root cause (problem) that failed it, numbered as in the
    #: bundle's reports ("1. the stream breaks the event grammar: …"); the first that did.
    problems: dict[tuple[str, str], str] = field(default_factory=dict)
    #: metric -> adapter -> stream key -> samples (one value, or every gap for ``itl_ms``).
    samples: dict[str, dict[str, dict[StreamKey, tuple[float, ...]]]] = field(default_factory=dict)

    def adapter_names(self) -> list[str]:
        return sorted({a for a, _ in self.verdicts} | set(self.adapters))


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def catalogue_digest(rows: Iterable[Mapping[str, Any]]) -> str:
    """Digest of a requirement catalogue: ID, level and text of every requirement.

    Source notes and the ``pending`` marker are left out: rewording a source or building a layer
    does not change what a passing verdict means; a new ID, a changed level or text does.
    """
    norm = sorted(
        (str(r.get("id")), str(r.get("level")), str(r.get("text"))) for r in rows if r.get("id")
    )
    return "sha256:" + hashlib.sha256(_canonical(norm)).hexdigest()


def current_catalogue_digest() -> str:
    from llorch_conformance.conformance import CATALOGUE

    return catalogue_digest(r.to_dict() for r in CATALOGUE)


def _samples(
    results: Mapping[str, Any],
) -> dict[str, dict[str, dict[StreamKey, tuple[float, ...]]]]:
    out: dict[str, dict[str, dict[StreamKey, tuple[float, ...]]]] = {m: {} for m in TIMING_METRICS}
    seen: dict[tuple[str, str, str], int] = {}
    for s in results.get("scenarios", []):
        if not isinstance(s, Mapping) or s.get("status") != "pass":
            continue  # a failed stream's timing measures the failure, not the adapter's speed
        ev = s.get("evidence")
        if not isinstance(ev, Mapping):
            continue
        adapter = adapter_label(str(s.get("adapter", "?")))
        base = (adapter, feature_label(str(s.get("feature", ""))), str(s.get("scenario", "")))
        n = seen.get(base, 0)  # repeated titles (outlines) get a stable ordinal
        seen[base] = n + 1
        scen = base[2] if n == 0 else f"{base[2]} #{n + 1}"
        for t in stream_timings(ev):
            key: StreamKey = (adapter, base[1], scen, t.stream)
            per = {
                "ttft_ms": (t.ttft_ms,) if t.ttft_ms is not None else (),
                "itl_ms": t.gaps_ms,
                "adapter_added_ms": (t.adapter_added_ms,) if t.adapter_added_ms is not None else (),
            }
            for metric, vals in per.items():
                if vals:
                    out[metric].setdefault(adapter, {})[key] = tuple(float(v) for v in vals)
    return out


def load_bundle(path: str | Path) -> BundleView:
    """Load a bundle directory (``<base>/conformance/<run_id>``) for diffing or the matrix."""
    reader = BundleReader(path)  # links, odd files: one line, exit 2 (reports._bundle_read)
    root = reader.root
    summary = reader.json("summary.json", schema="summary")
    verdicts: dict[tuple[str, str], str] = {}
    messages: dict[tuple[str, str], str] = {}
    for i, v in enumerate(summary["verdicts"]):
        if not isinstance(v, Mapping) or not {"adapter", "requirement", "status"} <= set(v):
            raise reader.fail("summary.json", f"verdicts[{i}] is malformed")
        key = (adapter_label(str(v["adapter"])), str(v["requirement"]))
        verdicts[key] = str(v["status"])
        if v.get("message"):
            messages[key] = str(v["message"])
    causes: dict[tuple[str, str], list[str]] = {k: [m] for k, m in messages.items()}
    problems: dict[tuple[str, str], str] = {}
    groups = summary.get("failure_groups")
    for g in groups if isinstance(groups, list) else []:
        if not isinstance(g, Mapping):
            continue
        label = f"{g.get('number', '?')}. {g.get('cause', '')}"
        for c in g.get("cases", []) if isinstance(g.get("cases"), list) else []:
            if not isinstance(c, Mapping):
                continue
            texts = [str(g.get("cause", "")), str(c.get("title", "")), str(c.get("detail", ""))]
            for rid in c.get("requirements", []) if isinstance(c.get("requirements"), list) else []:
                key = (adapter_label(str(c.get("adapter", g.get("adapter", "")))), str(rid))
                causes.setdefault(key, []).extend(t for t in texts if t)
                problems.setdefault(key, label)
    env = reader.json("environment.json", schema="environment", required=False) or {}
    adapters: dict[str, AdapterInfo] = {}
    for a in env.get("adapters", []) if isinstance(env, Mapping) else []:
        if isinstance(a, Mapping) and a.get("name"):
            name = adapter_label(str(a["name"]))
            adapters[name] = AdapterInfo(
                name=name,
                dialect=str(a["dialect"]) if a.get("dialect") else None,
                version=str(a.get("version") or "unknown"),
                engine_version=str(a.get("engine_version") or "unknown"),
                spec=str(a.get("spec") or ""),
            )
    reqs = reader.json("requirements.json", schema="requirements", required=False)
    rows = reqs.get("catalogue", []) if isinstance(reqs, Mapping) else []
    run_config = reader.json("run_config.json", schema="run_config", required=False) or {}
    selection = run_config.get("run_suite", {}) if isinstance(run_config, Mapping) else {}
    results = reader.json("results.json", schema="results", required=False) or {}
    return BundleView(
        path=root,
        run_id=str(summary.get("run_id", root.name)),
        started_at=str(summary.get("started_at", "")),
        suite_version=str(summary.get("suite_version", "unknown")),
        config_digest=str(summary.get("config_digest", "")),
        catalogue_digest=catalogue_digest(r for r in rows if isinstance(r, Mapping))
        if rows
        else "unknown",
        selection=dict(selection) if isinstance(selection, Mapping) else {},
        verdicts=verdicts,
        messages=messages,
        adapters=adapters,
        causes=causes,
        problems=problems,
        samples=_samples(results) if isinstance(results, Mapping) else {},
    )
