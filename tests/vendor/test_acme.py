"""The vendor adapter written from the docs alone passes the suite (issue 15's "done when").

``acme_adapter.py`` was written from README.md and docs/writing-an-adapter.md only, then fixed
guided by the suite's grouped failure output alone (three runs: 33 failing scenarios in 5
problems, then 4, then none). This test keeps it that way: the suite run exactly as a vendor
runs it — ``llorch-conformance run --adapter acme_adapter:make --dialect vllm`` in a fresh
process, the module found on ``PYTHONPATH`` — must exit 0. A change to the suite that makes a
documented, conformant adapter fail (or the docs stop describing what the suite checks) fails
here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TIMEOUT_S = 420


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_the_documented_vendor_adapter_passes_the_suite(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLORCH_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["LLORCH_PROOF_DIR"] = str(tmp_path / "proof")
    cli = Path(sys.executable).parent / "llorch-conformance"
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            str(cli),
            "run",
            "--adapter",
            "acme_adapter:make",
            "--dialect",
            "vllm",
            "--out",
            str(out),
            "--no-progress",
            "-j",
            "1",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    # one output root: the run directory <out>/conformance/<run_id>/ holds results.json
    (results_path,) = (out / "conformance").glob("*/results.json")
    results = json.loads(results_path.read_text("utf-8"))
    mine = [s for s in results["scenarios"] if s["adapter"] not in ("*", "?", "-")]
    assert mine, "no scenario ran against the vendor adapter"
    assert {s["status"] for s in mine} <= {"pass", "skipped", "unsupported"}, tail
    # the adapter scope (a vendor run's default) really ran: 48 passing vLLM scenarios today;
    # the suite's self-checks (PB-*, WKR-*, ...) are not in a vendor's report
    assert sum(s["status"] == "pass" for s in mine) >= 40
    ids = {r for s in results["scenarios"] for r in s["requirements"]}
    assert not [r for r in ids if r.startswith(("PB-", "WKR-", "AUTH-"))], sorted(ids)
    # nor in its console: the IDs no layer of this project proves yet (AUTH-1006) are not news
    assert "AUTH-" not in proc.stdout and "not covered (layer not built)" not in proc.stdout
