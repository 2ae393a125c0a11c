"""``llorch-conformance explain REQ-ID``: one requirement, everything a vendor needs to meet it.

Prints the catalogue text, level, layer, source, the scope a run judges it in, how an adapter
meets it and what usually fails it (:mod:`conformance._guide`), and the scenarios that prove it —
read from the packaged ``features/`` tags, so the list cannot drift from what a run executes.
An unknown ID is one line on stderr with the closest catalogue IDs, exit 2.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["ScenarioRef", "register", "scenarios_by_requirement"]

_TAG = re.compile(r"@(\S+)")
_SCENARIO = re.compile(r"^\s*(Scenario Outline|Scenario|Example):\s*(.+?)\s*$")
_FEATURE = re.compile(r"^\s*Feature:\s*(.+?)\s*$")


@dataclass(frozen=True)
class ScenarioRef:
    """A scenario of the packaged features: where it is, its name, its tags."""

    area: str
    file: str  # relative to the features root
    line: int
    feature: str
    name: str
    tags: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "file": self.file,
            "line": self.line,
            "feature": self.feature,
            "scenario": self.name,
            "tags": list(self.tags),
        }


def packaged_scenarios() -> list[ScenarioRef]:
    """Every scenario of the packaged features with its effective tags (feature tags included)."""
    from llorch_conformance.features import feature_files, features_root

    root = features_root()
    out: list[ScenarioRef] = []
    for path in feature_files():
        rel = path.relative_to(root).as_posix()
        area = rel.split("/", 1)[0]
        pending: list[str] = []
        feature_tags: list[str] = []
        feature = ""
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("@"):
                pending += _TAG.findall(stripped)
                continue
            m = _FEATURE.match(line)
            if m:
                feature, feature_tags, pending = m.group(1), pending, []
                continue
            m = _SCENARIO.match(line)
            if m:
                tags = tuple(dict.fromkeys([*feature_tags, *pending]))
                out.append(ScenarioRef(area, rel, n, feature, m.group(2), tags))
                pending = []
            elif stripped and not stripped.startswith("#"):
                pending = [] if not stripped.startswith("|") else pending
    return out


def scenarios_by_requirement() -> dict[str, list[ScenarioRef]]:
    """Catalogue ID → the packaged scenarios tagged with it."""
    from ._catalogue import ID_PATTERN

    table: dict[str, list[ScenarioRef]] = {}
    for s in packaged_scenarios():
        for t in s.tags:
            if ID_PATTERN.match(t):
                table.setdefault(t, []).append(s)
    return table


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "explain",
        help="explain one requirement: text, level, source, how to meet it, proving scenarios",
        description="Explain a catalogue requirement: its text, level, owning layer and source, "
        "how an adapter meets it, the common failures, and the scenarios (features/ tags) that "
        "prove it. Exit 2 for an unknown ID (close matches are suggested).",
    )
    p.add_argument("requirement", metavar="REQ-ID", help="a catalogue ID, e.g. WA-INT-3002")
    p.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default text)"
    )
    p.set_defaults(func=_explain)


def _explain(args: argparse.Namespace) -> int:
    from llorch_conformance.adapters.api import UsageError

    from ._catalogue import CATALOGUE, get_requirement, is_known
    from ._guide import guidance_for, scope_of_area

    rid = str(args.requirement).strip()
    if not is_known(rid) and is_known(rid.upper()):
        rid = rid.upper()
    if not is_known(rid):
        ids = [r.id for r in CATALOGUE]
        close = difflib.get_close_matches(rid.upper(), ids, n=3, cutoff=0.6)
        same_family = [i for i in ids if i.rsplit("-", 1)[0] == rid.upper().rsplit("-", 1)[0]]
        hint = close or same_family[:3]
        tail = f"; did you mean {', '.join(hint)}?" if hint else ""
        shown = rid if len(rid) <= 60 else rid[:57] + "..."
        raise UsageError(
            f"explain: {shown!r} is not a catalogue ID{tail} "
            "(see 'llorch-conformance list requirements')"
        )
    req = get_requirement(rid)
    guide = guidance_for(rid, req.layer.value)
    proving = scenarios_by_requirement().get(rid, [])
    scopes = sorted({scope_of_area(s.area) for s in proving})
    if args.format == "json":
        json.dump(
            {
                **req.to_dict(),
                "scopes": scopes,
                "how_to_meet": guide.how,
                "common_failures": list(guide.failures),
                "scenarios": [s.to_dict() for s in proving],
            },
            sys.stdout,
            indent=2,
            ensure_ascii=False,
        )
        sys.stdout.write("\n")
        return 0
    w = sys.stdout.write
    w(f"{req.id} ({req.level.value}, {req.layer.value} layer)\n")
    w(f"  {req.text}\n")
    w(f"source: {req.source}\n")
    if req.pending is not None:
        w(f"not covered (layer not built): {req.pending}\n")
    w(f"judged in scope: {', '.join(scopes) or '-'}")
    w("  (self-checks of the suite; not in vendor reports)\n" if scopes == ["suite"] else "\n")
    w(f"how to meet it:\n  {guide.how}\n")
    if guide.failures:
        w("common failures:\n")
        for f in guide.failures:
            w(f"  - {f}\n")
    w(f"scenarios that prove it ({len(proving)}):\n")
    for s in proving:
        extra = [t for t in s.tags if t.startswith(("dialect:", "needs:", "per-run"))]
        more = f"  [{' '.join(extra)}]" if extra else ""
        w(f"  - {s.name}  (features/{s.file}:{s.line}){more}\n")
    if not proving:
        w("  (none)\n")
    w(
        f"run them: llorch-conformance run --adapter MODULE:FACTORY --dialect D "
        f"--requirement {req.id}\n"
    )
    return 0
