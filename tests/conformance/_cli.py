"""Run the ``llorch-conformance`` CLI in a subprocess (black-box, bounded in time)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

__all__ = ["HERE", "run_cli", "run_dirs", "run_results"]


def run_cli(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a scratch working directory (runs write proof bundles under the cwd)."""
    with tempfile.TemporaryDirectory(prefix="llorch-cli-") as cwd:
        return _run(cwd, *args, timeout=timeout)


def _run(cwd: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "llorch_conformance.conformance.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )


def run_dirs(root: Path) -> list[Path]:
    """The run directories under an output root (``<root>/conformance/<run_id>``), oldest first."""
    base = Path(root) / "conformance"
    if not base.is_dir():
        return []
    return sorted(
        (p for p in base.iterdir() if (p / "results.json").is_file()),
        key=lambda p: (p / "results.json").stat().st_mtime,
    )


def run_results(root: Path) -> Any:
    """The results of the newest run under an output root (``run --out ROOT``)."""
    from llorch_conformance.conformance import RunResults

    dirs = run_dirs(root)
    assert dirs, f"no run under {root}"
    return RunResults.read(dirs[-1] / "results.json")
