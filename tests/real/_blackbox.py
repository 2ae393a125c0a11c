"""The black-box run every real-engine tier makes: the suite's own CLI against one engine URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llorch_conformance.conformance.cli import main as cli_main


def run_blackbox(dialect: str, url: str, tmp: Path) -> tuple[int, dict[str, Any], Path]:
    """``llorch-conformance run --dialect D --engine-url URL`` into one proof bundle under
    ``tmp``: its exit status, its ``results.json`` and the bundle directory."""
    proof = tmp / "proof"  # one output root: the run directory holds results.json
    rc = cli_main(
        [
            "run",
            "--dialect",
            dialect,
            "--engine-url",
            url,
            "--out",
            str(proof),
            # Scenario workers in their own processes: the engines' sockets and event loops
            # (and a socket an engine-side helper leaves for the garbage collector) never meet
            # this test process's warning filters.
            "-j",
            "2",
            "--no-progress",
        ]
    )
    bundles = sorted((proof / "conformance").iterdir())
    assert len(bundles) == 1
    results = json.loads((bundles[0] / "results.json").read_text())
    return rc, results, bundles[0]
