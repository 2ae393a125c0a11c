"""Write ``conformance/_durations.json``: how long each scenario usually takes, for scheduling.

``llorch-conformance run`` hands the longest scenarios to its forked workers first (a 1 s
Retry-After scenario started last would end the run a second after everything else). The hints
come from this file, made from real runs' ``results.json``: per test function (the scenario
without its adapter or example parameters), the longest duration seen over the runs and
adapters given, rounded to 10 ms; scenarios under ``--min`` seconds are left out (unknown = 0 s,
kept in collection order after the known ones). The hints only order work: a stale file makes
a run a little slower, never changes a verdict. Usage::

    llorch-conformance run --out /tmp/d1 && python benches/update_durations.py /tmp/d1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benches.compare_verdicts import find_results

TARGET = Path(__file__).resolve().parents[1] / "conformance" / "_durations.json"


def function_name(nodeid: str) -> str:
    """``path::test_x[vllm-a]`` -> ``test_x`` (the key the runner looks items up by)."""
    return nodeid.rsplit("::", 1)[-1].split("[", 1)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="output roots or run directories")
    ap.add_argument("--min", type=float, default=0.1, help="leave out scenarios under this (s)")
    ap.add_argument("--out", type=Path, default=TARGET)
    args = ap.parse_args(argv)
    longest: dict[str, float] = {}
    for run in args.runs:
        try:
            scenarios = json.loads(find_results(run).read_text("utf-8"))["scenarios"]
        except (OSError, ValueError, KeyError) as exc:
            print(f"update_durations: {run}: no readable results.json ({exc})", file=sys.stderr)
            return 2
        for s in scenarios:
            name = function_name(str(s["nodeid"]))
            longest[name] = max(longest.get(name, 0.0), float(s.get("duration_s") or 0.0))
    kept = {k: round(v, 2) for k, v in sorted(longest.items()) if v >= args.min}
    args.out.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n", "utf-8")
    print(f"{args.out}: {len(kept)} scenario(s) of {len(longest)} at or over {args.min} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
