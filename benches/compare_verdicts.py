"""Compare the verdicts of conformance runs: per (adapter, requirement) and per scenario.

Why: a speed change must not change what the suite concludes. Two runs of the same selection
(before/after a change, or N repeats of one tree) are compared on their ``results.json``; every
difference is printed, one line each. Durations and messages are ignored — verdicts only.

Usage::

    python benches/compare_verdicts.py RUN_A RUN_B [RUN_C ...]

Each argument is a ``results.json``, a run directory holding one, or an output root
(``--out DIR`` of ``run``: its newest ``conformance/<run_id>/results.json``). Exit 0 when all
runs agree, 1 when a verdict differs, 2 on unreadable input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["find_results", "flips", "load_verdicts", "main"]


def find_results(path: Path) -> Path:
    """The ``results.json`` a path names (file, run directory or output root; newest run)."""
    if path.is_file():
        return path
    direct = path / "results.json"
    if direct.is_file():
        return direct
    found = sorted(path.glob("conformance/*/results.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no results.json under {path}")
    return found[-1]


def load_verdicts(path: Path) -> dict[str, str]:
    """``{"verdict <adapter> <requirement>": status, "scenario <key>": status}`` of one run."""
    data: Mapping[str, Any] = json.loads(find_results(path).read_text("utf-8"))
    out: dict[str, str] = {}
    for v in data.get("verdicts", []):
        out[f"verdict {v.get('adapter')} {v.get('requirement')}"] = str(v.get("status"))
    for s in data.get("scenarios", []):
        # The node id's module part is a per-run temporary path: keep the test id only.
        key = str(s.get("nodeid", "")).split("::", 1)[-1]
        out[f"scenario {key}"] = str(s.get("status"))
    return out


def flips(runs: Sequence[Mapping[str, str]]) -> list[tuple[str, list[str]]]:
    """Keys whose status is not the same in every run: ``(key, [status per run])``."""
    keys = sorted(set().union(*runs)) if runs else []
    out = []
    for key in keys:
        seen = [r.get(key, "(absent)") for r in runs]
        if len(set(seen)) > 1:
            out.append((key, seen))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or any(a.startswith("-") for a in args):
        print("usage: compare_verdicts.py RUN_A RUN_B [RUN ...]", file=sys.stderr)
        return 2
    try:
        runs = [load_verdicts(Path(a)) for a in args]
    except (OSError, ValueError) as exc:
        print(f"compare_verdicts: {exc}", file=sys.stderr)
        return 2
    diff = flips(runs)
    n_verdicts = sum(1 for k in runs[0] if k.startswith("verdict "))
    n_scen = sum(1 for k in runs[0] if k.startswith("scenario "))
    for key, seen in diff:
        print(f"DIFF {key}: " + " | ".join(seen))
    print(
        f"{len(runs)} runs, {n_verdicts} verdicts and {n_scen} scenarios each: "
        f"{len(diff)} difference(s)"
    )
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
