"""End to end: a real run of an adapter that never sends ``started`` reads as one problem.

The issue's example: one missing ``started`` event gave 33 FAIL lines. Here a deliberately broken
adapter (``tests/conformance/broken_adapters.py: never_started``, the real llama.cpp adapter
minus its ``started``) runs a few requirements whose scenarios trip different checks; the grouped
failures must be one grammar problem holding every failing scenario, with the hint pointing at
``started``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llorch_conformance.conformance._results import RunResults
from llorch_conformance.reports import group_failures, render_console

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_a_missing_started_event_is_one_problem(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLORCH_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "tests" / "conformance"), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["LLORCH_PROOF_DIR"] = str(tmp_path / "proof")
    cli = Path(sys.executable).parent / "llorch-conformance"
    argv = [str(cli), "run", "--adapter", "broken_adapters:never_started", "--dialect", "llamacpp"]
    for rid in ("WA-INT-3001", "ADAPT-3003", "WA-INT-3008"):
        argv += ["--requirement", rid]
    argv += ["--no-progress", "-j", "1"]  # one output root: $LLORCH_PROOF_DIR
    proc = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-4000:]
    (results_path,) = (tmp_path / "proof" / "conformance").glob("*/results.json")
    results = RunResults.read(results_path)
    # every failing scenario — the run-wide cross-dialect oracle too, which names the adapter
    failing = [s for s in results.scenarios if s.status == "fail"]
    assert len(failing) >= 5  # several scenarios, several different checks
    assert len({s.message.split(" — ")[0] for s in failing}) >= 2
    groups = group_failures(results)
    first = groups[0]
    assert first.adapter == "never_started"
    assert first.number == 1 and "comes before 'started'" in first.cause
    assert len(first.cases) == len(failing), [g.cause for g in groups]
    assert "`started`" in first.hint
    text = "\n".join(render_console(group_failures(results)))
    assert f"— {len(failing)} scenarios" in text
