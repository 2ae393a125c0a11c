"""Run several broken adapters through the suite in ONE process (one interpreter start-up).

Usage: ``python -m _selftest_main OUT_DIR NAME...`` (with this directory on ``sys.path``);
``@vllm`` / ``@llamacpp`` as a NAME runs the unmodified built-in adapter as the control.
Prints one JSON object: name -> {want, caught, exit, failed, wrongly_failed}. Each adapter gets
its own ``run_suite`` call (a fresh pytest session) restricted to the requirements of its case
(``broken_adapters.CASES``): the one it breaks, plus those it must not fail.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from llorch_conformance.adapters.api import HarnessError
from llorch_conformance.conformance import run_suite

#: Imported by module name: this script runs with its own directory on ``sys.path``, which is
#: also how ``--adapter broken_adapters:<name>`` finds the factories.
CASES: dict[str, Any] = importlib.import_module("broken_adapters").CASES


def judge(name: str, out: Path) -> dict[str, object]:
    """Run one broken adapter; what the self-test asserts about it."""
    case = CASES[name]
    try:
        res = run_suite(
            adapter=f"broken_adapters:{name}",
            dialect=case.dialect,
            requirements=list(case.selection),
            out=out / name,
            jobs=1,
        )
    except HarnessError as exc:
        return {"want": case.want, "caught": False, "exit": 2, "failed": [], "error": str(exc)}
    failed = sorted(
        {v.requirement for v in res.verdicts() if v.adapter == name and v.status == "fail"}
    )
    wrongly = sorted(set(failed) & set(case.not_failed))
    code = res.exit_code()
    return {
        "want": case.want,
        "caught": case.want in failed and code == 1 and not wrongly,
        "exit": code,
        "failed": failed,
        "wrongly_failed": wrongly,
        "errors": [s.message[:200] for s in res.errors()][:3],
    }


def control(dialect: str, out: Path) -> dict[str, object]:
    """The unmodified built-in adapter over every selection its broken variants use: exit 0."""
    wanted = sorted({r for c in CASES.values() if c.dialect == dialect for r in c.selection})
    res = run_suite(only=[dialect], requirements=wanted, out=out / f"control-{dialect}", jobs=1)
    failed = sorted({v.requirement for v in res.verdicts() if v.status in ("fail", "error")})
    return {"exit": res.exit_code(), "failed": failed, "requirements": len(wanted)}


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    report = {
        name: control(name[1:], out) if name.startswith("@") else judge(name, out)
        for name in argv[1:]
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
