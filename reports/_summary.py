"""``summary.json``: the machine-readable verdict of a bundle, with a versioned JSON Schema.

The schema ships as package data (``reports/schemas/summary.schema.json``) and is checked with
``jsonschema`` both when writing (a writer bug must not produce a bundle that ``verify`` rejects)
and by ``verify``. Version policy: additive fields keep ``llorch-conformance/summary/1``; any
renamed, removed or re-typed field bumps the number.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any, Final, Literal

from llorch_conformance.conformance import (
    CATALOGUE,
    STATUSES,
    VERDICT_STATUSES,
    RunResults,
    get_requirement,
    is_known,
)

from ._model import ScenarioFiles

__all__ = ["SUMMARY_SCHEMA_ID", "build_summary", "summary_schema", "validate_summary"]

SUMMARY_SCHEMA_ID: Final = "llorch-conformance/summary/1"
_RESULT: Final = {0: "pass", 1: "fail", 2: "error"}


@cache
def summary_schema() -> dict[str, Any]:
    text = (files("llorch_conformance.reports") / "schemas" / "summary.schema.json").read_text(
        "utf-8"
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_summary(summary: Mapping[str, Any]) -> list[str]:
    """Schema violations as readable lines (``path: message``); empty when valid."""
    import jsonschema  # type: ignore[import-untyped]

    validator = jsonschema.Draft202012Validator(summary_schema())
    out = []
    for err in sorted(validator.iter_errors(summary), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        out.append(f"{where}: {err.message}")
    return out


def build_summary(
    results: RunResults,
    placed: list[ScenarioFiles],
    *,
    suite_version: str,
    config_digest: str,
    files_index: Mapping[str, str],
    fail_on: Literal["must", "should"] = "must",
) -> dict[str, Any]:
    exit_code = results.exit_code(fail_on=fail_on)
    verdicts = results.verdicts()
    vcounts = dict.fromkeys(VERDICT_STATUSES, 0)
    for v in verdicts:
        vcounts[v.status] += 1
    per_adapter: dict[str, dict[str, int]] = {}
    dialects: dict[str, str | None] = {}
    for s in results.scenarios:
        c = per_adapter.setdefault(s.adapter, dict.fromkeys(STATUSES, 0))
        c[s.status] += 1
        dialects.setdefault(s.adapter, s.dialect)
    by_req: dict[str, dict[str, str]] = {}
    declared_by_req: dict[str, dict[str, list[str]]] = {}
    for v in verdicts:
        by_req.setdefault(v.requirement, {})[v.adapter] = v.status
        if v.declared:
            declared_by_req.setdefault(v.requirement, {})[v.adapter] = list(v.declared)
    req_rows: list[dict[str, Any]] = []
    for r in CATALOGUE:
        req_rows.append(
            {
                "id": r.id,
                "level": r.level.value,
                "layer": r.layer.value,
                "pending": r.pending,
                "verdicts": by_req.pop(r.id, {}),
                "declared": declared_by_req.get(r.id, {}),
            }
        )
    for rid, vs in sorted(by_req.items()):  # IDs a custom feature used that the catalogue lacks
        known = get_requirement(rid) if is_known(rid) else None
        req_rows.append(
            {
                "id": rid,
                "level": known.level.value if known else "?",
                "layer": known.layer.value if known else "?",
                "pending": None,
                "verdicts": vs,
                "declared": declared_by_req.get(rid, {}),
            }
        )
    return {
        "generated_by": "proof-bundle",
        "schema": SUMMARY_SCHEMA_ID,
        "run_id": results.run_id,
        "result": _RESULT[exit_code],
        "exit_code": exit_code,
        "seed": results.seed,
        "level": results.level if results.level in ("must", "should") else "should",
        "started_at": results.started_at,
        "wall_time_s": round(results.wall_time_s, 3),
        "suite_version": suite_version,
        "config_digest": config_digest,
        "counts": results.counts(),
        "verdict_counts": vcounts,
        "adapters": [
            {"name": a, "dialect": dialects.get(a), "counts": per_adapter[a]}
            for a in sorted(per_adapter)
        ],
        "requirements": req_rows,
        "verdicts": [
            {
                "adapter": v.adapter,
                "requirement": v.requirement,
                "status": v.status,
                "scenarios": v.scenarios,
                "message": v.message,
                "declared": list(v.declared),
            }
            for v in verdicts
        ],
        "scenarios": [
            {
                "nodeid": p.result.nodeid,
                "adapter": p.result.adapter,
                "feature": p.result.feature,
                "scenario": p.result.scenario,
                "status": p.result.status,
                "requirements": list(p.result.requirements),
                "failed_requirements": list(p.result.failed_requirements),
                "duration_s": max(0.0, float(p.result.duration_s)),
                "message": p.result.message,
                "dir": p.dir,
            }
            for p in placed
        ],
        "files": dict(files_index),
    }
