"""Run the ``llorch-conformance`` CLI in a subprocess (black-box, bounded in time)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

__all__ = ["HERE", "cli_env", "run_cli", "run_dirs", "run_results"]


def cli_env(*, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """A CLI subprocess's environment: ours with this folder on ``PYTHONPATH`` (``--adapter
    broken_adapters:...``), no pytest-xdist or pytest options leaking in, ``drop`` removed and
    ``extra`` set."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    env.update(extra)
    return env


def run_cli(
    *args: str, timeout: float = 180.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a scratch working directory (runs write proof bundles under the cwd),
    bounded in time; ``env`` defaults to :func:`cli_env`."""
    with tempfile.TemporaryDirectory(prefix="llorch-cli-") as cwd:
        return subprocess.run(
            [sys.executable, "-m", "llorch_conformance.conformance.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=cli_env() if env is None else env,
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
