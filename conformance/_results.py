"""The results model of a conformance run: JSON-able, one record per scenario run.

Why a model of its own: the pytest plugin fills it (per worker, through report properties), the
``run`` command renders it, and the proof-bundle writer (a later issue) will read
``results.json``. Statuses are the five of DESIGN.md principle 7 — ``pass``, ``fail``,
``unsupported``, ``skipped``, ``error`` — and a verdict per (adapter, requirement) folds them:

* ``fail`` if any scenario failed that requirement (a scenario that failed on another ID also
  fails the IDs it carries: they were not proven);
* else ``error`` if a harness error hit a scenario carrying it;
* else ``pass`` if at least one scenario passed (declared-unsupported parts stay visible in the
  scenario list);
* else ``unsupported`` (only declared gaps), else ``skipped``.

A skip never counts as support: a requirement whose only scenarios were skipped is ``skipped``
and does not make a run green when ``--fail-on`` asks for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from ._catalogue import CATALOGUE, Level, get_requirement, is_known

__all__ = [
    "STATUSES",
    "RunResults",
    "ScenarioResult",
    "Status",
    "Verdict",
    "fold_statuses",
]

Status = Literal["pass", "fail", "unsupported", "skipped", "error"]
STATUSES: Final[tuple[Status, ...]] = ("pass", "fail", "unsupported", "skipped", "error")
_RANK: Final[dict[str, int]] = {"fail": 5, "error": 4, "pass": 3, "unsupported": 2, "skipped": 1}


def fold_statuses(statuses: Iterable[str]) -> Status:
    """Fold scenario statuses of one requirement into its verdict (module docstring)."""
    best: Status = "skipped"
    for s in statuses:
        if _RANK.get(s, 0) > _RANK[best]:
            best = s  # type: ignore[assignment]
    return best


@dataclass
class ScenarioResult:
    """One scenario run against one target (``adapter`` is ``"*"`` for once-per-run scenarios)."""

    nodeid: str
    feature: str
    scenario: str
    adapter: str
    dialect: str | None
    requirements: list[str]
    status: Status
    duration_s: float = 0.0
    message: str = ""
    failed_requirements: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ScenarioResult:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


@dataclass(frozen=True)
class Verdict:
    adapter: str
    requirement: str
    status: Status
    scenarios: int
    message: str = ""


@dataclass
class RunResults:
    """A whole run: identity, target, seed, every scenario result, and the derived verdicts."""

    run_id: str
    seed: int
    target: dict[str, Any]
    level: str = "should"
    started_at: str = ""
    wall_time_s: float = 0.0
    scenarios: list[ScenarioResult] = field(default_factory=list)

    # -- derived ---------------------------------------------------------------------------
    def adapters(self) -> list[str]:
        names = sorted({s.adapter for s in self.scenarios if s.adapter != "*"})
        if any(s.adapter == "*" for s in self.scenarios):
            names.append("*")
        return names

    def verdicts(self) -> list[Verdict]:
        """One verdict per (adapter, requirement) that has at least one scenario result."""
        buckets: dict[tuple[str, str], list[ScenarioResult]] = {}
        for s in self.scenarios:
            for rid in s.requirements:
                buckets.setdefault((s.adapter, rid), []).append(s)
            for rid in s.failed_requirements:
                if rid not in s.requirements:
                    buckets.setdefault((s.adapter, rid), []).append(s)
        out: list[Verdict] = []
        for (adapter, rid), items in sorted(buckets.items()):
            status = fold_statuses(_status_for(s, rid) for s in items)
            msg = next(
                (s.message for s in items if _status_for(s, rid) == status and s.message), ""
            )
            out.append(Verdict(adapter, rid, status, len(items), msg))
        return out

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for s in self.scenarios:
            c[s.status] += 1
        return c

    def failing(self, *, fail_on: Literal["must", "should"] = "must") -> list[Verdict]:
        """Verdicts that make the run fail: ``fail`` of a MUST (and SHOULD with ``fail_on``)."""
        levels = {Level.MUST} if fail_on == "must" else {Level.MUST, Level.SHOULD}
        return [
            v
            for v in self.verdicts()
            if v.status == "fail"
            and (not is_known(v.requirement) or get_requirement(v.requirement).level in levels)
        ]

    def errors(self) -> list[ScenarioResult]:
        return [s for s in self.scenarios if s.status == "error"]

    def uncovered(self) -> list[str]:
        """Catalogue IDs without any scenario result in this run (pending layers excluded)."""
        seen = {rid for s in self.scenarios for rid in s.requirements}
        return [r.id for r in CATALOGUE if r.pending is None and r.id not in seen]

    def exit_code(self, *, fail_on: Literal["must", "should"] = "must") -> int:
        """0: every MUST passed (or was declared unsupported); 1: failures; 2: harness errors."""
        if self.errors():
            return 2
        return 1 if self.failing(fail_on=fail_on) else 0

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "llorch-conformance/results/1",
            "run_id": self.run_id,
            "seed": self.seed,
            "target": self.target,
            "level": self.level,
            "started_at": self.started_at,
            "wall_time_s": round(self.wall_time_s, 3),
            "counts": self.counts(),
            "scenarios": [s.to_dict() for s in self.scenarios],
            "verdicts": [asdict(v) for v in self.verdicts()],
            "not_covered_layer_not_built": [
                {"id": r.id, "layer": r.layer.value, "pending": r.pending}
                for r in CATALOGUE
                if r.pending is not None
            ],
        }

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", "utf-8")
        return path

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunResults:
        return cls(
            run_id=str(raw["run_id"]),
            seed=int(raw["seed"]),
            target=dict(raw.get("target", {})),
            level=str(raw.get("level", "should")),
            started_at=str(raw.get("started_at", "")),
            wall_time_s=float(raw.get("wall_time_s", 0.0)),
            scenarios=[ScenarioResult.from_dict(s) for s in raw.get("scenarios", [])],
        )

    @classmethod
    def read(cls, path: Path) -> RunResults:
        return cls.from_dict(json.loads(path.read_text("utf-8")))


def _status_for(s: ScenarioResult, rid: str) -> Status:
    """A failed scenario fails every ID it carries; the others keep the scenario's status."""
    if s.status == "fail":
        return "fail"
    return s.status
