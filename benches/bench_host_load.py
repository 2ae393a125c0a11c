"""Benchmark: concurrent tasks through host, adapters and mock engines with faults mixed in.

Prints tasks/s and the outcome counts (a measurement, not a test; the invariants are asserted in
``tests/host/test_load.py``). Usage: ``python benches/bench_host_load.py [N_TASKS]``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benches._host_load import run_load


def main() -> int:
    logging.disable(logging.WARNING)  # per-task warnings would swamp the numbers
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    r = run_load(n)
    print(f"tasks: {r.tasks}  wall: {r.wall_s:.2f} s  tasks/s: {r.tasks_per_s:.1f}")
    print(
        f"tokens streamed: {r.tokens}  cancelled: {r.cancelled}  tokens after cancel: {r.tokens_after_cancel}"
    )
    for k, v in sorted(r.outcomes.items()):
        print(f"  {k:<28} {v}")
    print(
        "breaker transitions:",
        ", ".join(r.breaker_transitions) or "none",
        f"(final: {r.breaker_final})",
    )
    print("invariant violations:", len(r.violations))
    for v in r.violations[:20]:
        print("  -", v)
    return 1 if r.violations else 0


if __name__ == "__main__":
    sys.exit(main())
