"""Figures of the hostile-input suite: what was tried, how it answered, what it cost.

Why a file per worker: under xdist every worker runs its own session, and only the controller
prints the summary. Each ``record`` appends one JSON line to a folder the controller made
(``LLORCH_HOSTILE_FIGURES``); the controller's terminal summary folds the lines per area.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ENV = "LLORCH_HOSTILE_FIGURES"


def _rss_mb() -> float:
    """Peak resident set of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class HostileFigures:
    """Collects one line per call; nothing is kept in memory between calls."""

    folder: Path | None

    def record(
        self,
        area: str,
        cases: int,
        http_500: int = 0,
        worst_latency_s: float = 0.0,
        deadline_s: float | None = None,
        peak_rss_mb: float | None = None,
    ) -> None:
        """Adds ``cases`` tried in ``area``; latency and memory keep their worst value."""
        if self.folder is None:
            return
        line = {
            "area": area,
            "cases": int(cases),
            "http_500": int(http_500),
            "worst_latency_s": float(worst_latency_s),
            "deadline_s": None if deadline_s is None else float(deadline_s),
            "peak_rss_mb": _rss_mb() if peak_rss_mb is None else float(peak_rss_mb),
        }
        with (self.folder / f"{os.getpid()}.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def fold(lines: Iterable[dict[str, object]]) -> list[dict[str, object]]:
    """Per area: total cases and 500s, worst latency (and its ratio to its deadline), peak memory."""
    areas: dict[str, dict[str, object]] = {}
    for ln in lines:
        a = areas.setdefault(
            str(ln["area"]),
            {"area": ln["area"], "cases": 0, "http_500": 0, "worst_latency_s": 0.0,
             "deadline_s": None, "peak_rss_mb": 0.0},
        )  # fmt: skip
        a["cases"] = int(a["cases"]) + int(ln["cases"])  # type: ignore[call-overload]
        a["http_500"] = int(a["http_500"]) + int(ln["http_500"])  # type: ignore[call-overload]
        lat = float(ln["worst_latency_s"])  # type: ignore[arg-type]
        if lat >= float(a["worst_latency_s"]):  # type: ignore[arg-type]
            a["worst_latency_s"], a["deadline_s"] = lat, ln.get("deadline_s")
        a["peak_rss_mb"] = max(float(a["peak_rss_mb"]), float(ln["peak_rss_mb"]))  # type: ignore[arg-type]
    return [areas[k] for k in sorted(areas)]


def table(folder: Path) -> list[str]:
    """The summary lines the controller prints (empty when no hostile test ran)."""
    lines: list[dict[str, object]] = []
    for f in sorted(folder.glob("*.jsonl")):
        lines += [json.loads(x) for x in f.read_text("utf-8").splitlines() if x.strip()]
    if not lines:
        return []
    out = [
        f"{'area':<34} {'cases':>7} {'500s':>5} {'worst latency':>14} {'deadline':>9} {'peak RSS':>9}"
    ]
    for a in fold(lines):
        dl = a["deadline_s"]
        out.append(
            f"{a['area']!s:<34} {a['cases']:>7} {a['http_500']:>5} "
            f"{float(a['worst_latency_s']):>12.3f} s "  # type: ignore[arg-type]
            f"{'-' if dl is None else f'{float(dl):.1f} s':>9} "  # type: ignore[arg-type]
            f"{float(a['peak_rss_mb']):>6.0f} MiB"  # type: ignore[arg-type]
        )
    return out
