"""The results model of a conformance run: JSON-able, one record per scenario run.

Why a model of its own: the pytest plugin fills it (per worker, through report properties), the
``run`` command renders it, and the proof-bundle writer reads ``results.json``. Scenario statuses
are the five of DESIGN.md principle 7 — ``pass``, ``fail``, ``unsupported``, ``skipped``,
``error``. A verdict per (adapter, requirement) folds them, with one more status of its own,
``pass-declared``. The folding rules (README "Folding rules"):

1. **Attribution.** A failed scenario fails the IDs its failure names
   (``failed_requirements``); the other IDs it carries were not judged by it (a failure that
   names nothing fails every ID it carries).
2. **Declarations.** A scenario reported ``unsupported`` because the adapter declared a
   capability away (``declared``) is judged per requirement by the declaration table
   (:mod:`conformance._declarations`): a declaration the requirement does not allow (a MUST
   declared away) is a ``fail`` of that requirement; an allowed one is ``declared``.
3. **Fold**, per (adapter, requirement): ``fail`` if any scenario failed it; else ``error`` if a
   harness error hit a scenario carrying it; else ``pass-declared`` if a scenario passed and an
   allowed declaration left part of it unrun — shown as "pass, declared: cancel", never counted
   as ``pass``; else ``pass`` if a scenario passed; else ``unsupported`` (declared gaps or
   black-box limits only; its ``declared`` list says which); else ``skipped``.

A skip never counts as support: a requirement whose only scenarios were skipped is ``skipped``
and does not make a run green when ``--fail-on`` asks for it; a MUST whose scenarios all failed
on other requirements first (``Verdict.unproven``) fails the run although its cell says skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Final, Literal

from ._catalogue import CATALOGUE, Level, get_requirement, is_known
from ._declarations import declaration_rule

__all__ = [
    "STATUSES",
    "VERDICT_STATUSES",
    "RunResults",
    "ScenarioResult",
    "Status",
    "Verdict",
    "VerdictStatus",
    "fold_statuses",
]

Status = Literal["pass", "fail", "unsupported", "skipped", "error"]
STATUSES: Final[tuple[Status, ...]] = ("pass", "fail", "unsupported", "skipped", "error")
VerdictStatus = Literal["pass", "pass-declared", "fail", "unsupported", "skipped", "error"]
VERDICT_STATUSES: Final[tuple[VerdictStatus, ...]] = (
    "pass",
    "pass-declared",
    "fail",
    "unsupported",
    "skipped",
    "error",
)
#: Per-requirement statuses of one scenario, as the fold sees them (``declared``: an allowed
#: declaration left it unrun; ``unjudged``: it failed on another requirement first).
_RANK: Final[dict[str, int]] = {
    "fail": 6,
    "error": 5,
    "pass": 4,
    "declared": 3,
    "unsupported": 2,
    "skipped": 1,
    "unjudged": 0,
}


#: Message prefix of a verdict whose scenarios all failed on other requirements first.
_UNJUDGED: Final = "not judged"


def fold_statuses(statuses: Iterable[str]) -> VerdictStatus:
    """Fold per-requirement scenario statuses into one verdict (module docstring, rule 3)."""
    seen = set(statuses)
    for status in ("fail", "error"):
        if status in seen:
            return status
    if "pass" in seen:
        return "pass-declared" if "declared" in seen else "pass"
    if "declared" in seen or "unsupported" in seen:
        return "unsupported"
    return "skipped"


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
    #: capabilities the adapter declared unsupported that made this scenario ``unsupported``
    declared: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ScenarioResult:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


@dataclass(frozen=True)
class Verdict:
    """The folded verdict of one (adapter, requirement); ``declared`` lists the declarations
    that left part of it unrun (allowed ones for ``pass-declared``/``unsupported``, forbidden
    ones for a ``fail``)."""

    adapter: str
    requirement: str
    status: VerdictStatus
    scenarios: int
    message: str = ""
    declared: tuple[str, ...] = ()

    @property
    def unproven(self) -> bool:
        """Skipped only because every scenario carrying it failed on another requirement first.

        Precise attribution keeps such a requirement out of ``fail``, but it was never shown to
        hold: a MUST left unproven by a failing scenario still fails the run (else a check that
        names only a SHOULD could wave its scenario's MUSTs through)."""
        return self.status == "skipped" and self.message.startswith(_UNJUDGED)

    @property
    def label(self) -> str:
        """Human text of the status: ``pass, declared: cancel`` for ``pass-declared``."""
        if self.declared and self.status in ("pass-declared", "unsupported", "fail"):
            head = "pass" if self.status == "pass-declared" else self.status
            return f"{head}, declared: {', '.join(self.declared)}"
        return self.status


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
            judged = [_status_for(s, rid) for s in items]
            status = fold_statuses(st for st, _, _ in judged)
            declared = sorted(
                {c for st, _, caps in judged for c in caps if _counts_for(st, status)}
            )
            msg = next((m for st, m, _ in judged if _counts_for(st, status) and m), "")
            out.append(Verdict(adapter, rid, status, len(items), msg, tuple(declared)))
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
            if (v.status == "fail" or v.unproven)
            and (not is_known(v.requirement) or get_requirement(v.requirement).level in levels)
        ]

    def errors(self) -> list[ScenarioResult]:
        return [s for s in self.scenarios if s.status == "error"]

    def uncovered(self) -> list[str]:
        """Catalogue IDs without any scenario result in this run (pending layers excluded)."""
        seen = {rid for s in self.scenarios for rid in s.requirements}
        return [r.id for r in CATALOGUE if r.pending is None and r.id not in seen]

    def exit_code(self, *, fail_on: Literal["must", "should"] = "must") -> int:
        """0: no MUST failed (an allowed declaration or a black-box limit is not a failure; a MUST
        declared away is); 1: failures; 2: harness errors."""
        if self.errors():
            return 2
        return 1 if self.failing(fail_on=fail_on) else 0

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self._dict([s.to_dict() for s in self.scenarios])

    def to_json_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without ``asdict``'s deep copy of every scenario: the scenarios'
        fields as they are (the evidence is the bulk of a run's data). Only for encoding at
        once: a dataclass nested in the evidence is left for the encoder's ``default`` (the
        evidence the harness records is plain JSON already)."""
        return self._dict(
            [{f.name: getattr(s, f.name) for f in _SCENARIO_FIELDS} for s in self.scenarios]
        )

    def _dict(self, scenarios: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "schema": "llorch-conformance/results/1",
            "run_id": self.run_id,
            "seed": self.seed,
            "target": self.target,
            "level": self.level,
            "started_at": self.started_at,
            "wall_time_s": round(self.wall_time_s, 3),
            "counts": self.counts(),
            "scenarios": scenarios,
            "verdicts": [{**asdict(v), "declared": list(v.declared)} for v in self.verdicts()],
            "not_covered_layer_not_built": [
                {"id": r.id, "layer": r.layer.value, "pending": r.pending}
                for r in CATALOGUE
                if r.pending is not None
            ],
        }

    def write(self, path: Path) -> Path:
        """``results.json``: the bytes ``json.dumps(self.to_dict(), indent=2,
        ensure_ascii=False)`` gives, without its deep copy and its pure-Python encoder.

        Why: this runs after every session, and for one adapter the copy and the encoder cost
        ~0.2 s (a full run ~0.8 s) of the user's wait. ``to_dict`` is ``dataclasses.asdict`` per
        scenario, which deep-copies the evidence only for the copy to be encoded and dropped;
        here the scenarios' fields go to the encoder as they are, and the one thing ``asdict``
        changes in what is encoded — a dataclass nested in the evidence becomes a dict of its
        fields — the encoder's ``default`` does (:func:`_fields_of`); the encoding is
        :func:`llorch_conformance._json.pretty_json_bytes`, shared with the bundle writer.
        """
        from llorch_conformance._json import pretty_json_bytes  # msgspec: keep the CLI start light

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pretty_json_bytes(self.to_json_dict(), default=_fields_of) + b"\n")
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
        """The results in ``path``, parsed exactly as ``json.loads`` parses them (in C where
        it can: :func:`llorch_conformance._json.loads`)."""
        from llorch_conformance._json import loads  # msgspec: keep the CLI start light

        raw = loads(path.read_bytes())
        return cls.from_dict(raw)


_SCENARIO_FIELDS: Final = fields(ScenarioResult)


def _fields_of(obj: Any) -> dict[str, Any]:
    """The JSON encoder's ``default``: a dataclass instance as ``asdict`` would give it (its
    fields, which the encoder then encodes in turn); anything else stays unencodable."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in fields(obj)}
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _status_for(s: ScenarioResult, rid: str) -> tuple[str, str, tuple[str, ...]]:
    """One scenario's status for one requirement: (status, message, declarations concerned).

    Rules 1 and 2 of the module docstring: precise attribution of failures, and declarations
    judged by the declaration table.
    """
    if s.status == "fail":
        if not s.failed_requirements or rid in s.failed_requirements:
            return "fail", s.message, ()
        named = ", ".join(s.failed_requirements)
        return "unjudged", f"{_UNJUDGED}: the scenario failed on {named} first", ()
    if s.status == "unsupported" and s.declared:
        rules = [declaration_rule(rid, c) for c in s.declared]
        forbidden = [r for r in rules if not r.allowed]
        if forbidden:
            why = "; ".join(f"{r.capability!r}: {r.why}" for r in forbidden)
            return (
                "fail",
                f"{rid} may not be declared away — the adapter declares "
                f"{', '.join(repr(r.capability) for r in forbidden)} unsupported ({why})",
                tuple(r.capability for r in forbidden),
            )
        return "declared", s.message, tuple(r.capability for r in rules)
    return s.status, s.message, ()


def _counts_for(scenario_status: str, verdict: str) -> bool:
    """Does a scenario's per-requirement status explain the folded verdict?"""
    if verdict == "pass-declared":
        return scenario_status == "declared"
    if verdict == "unsupported":
        return scenario_status in ("declared", "unsupported")
    if verdict == "skipped":
        return scenario_status in ("skipped", "unjudged")
    return scenario_status == verdict
