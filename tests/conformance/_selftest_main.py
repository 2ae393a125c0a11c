"""Run several broken adapters through the suite in ONE process (one interpreter start-up).

Usage: ``python -m _selftest_main OUT_DIR NAME...`` (with this directory on ``sys.path``).
Prints one JSON object: name -> {want, caught, exit, failed}. Each adapter gets its own
``run_suite`` call (a fresh pytest session), restricted to the requirement it breaks.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from conformance import run_suite

#: Imported by module name: this script runs with its own directory on ``sys.path``, which is
#: also how ``--adapter broken_adapters:<name>`` finds the factories.
EXPECTED: dict[str, str] = importlib.import_module("broken_adapters").EXPECTED


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    report: dict[str, dict[str, object]] = {}
    for name in argv[1:]:
        want = EXPECTED[name]
        res = run_suite(
            adapter=f"broken_adapters:{name}",
            dialect="llamacpp",
            requirements=[want],
            out=out / name,
            jobs=1,
        )
        verdicts = {v.requirement: v.status for v in res.verdicts() if v.adapter == name}
        failed = sorted(
            {r for s in res.scenarios if s.status == "fail" for r in s.failed_requirements}
        )
        report[name] = {
            "want": want,
            "caught": verdicts.get(want) == "fail",
            "exit": res.exit_code(),
            "failed": failed,
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
