"""The run session's concurrency and plugin knobs (issue 18.1): what ``-j auto`` means, and that
a run loads only the pytest plugins the suite needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llorch_conformance.conformance._runner import _session_args, auto_jobs


def test_auto_jobs_is_three_per_core_forked_and_one_per_core_for_one_target_under_xdist() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = int(cores or 1)
    # forked workers cost no start-up: three per core whatever the number of targets
    assert auto_jobs(6) == auto_jobs() == auto_jobs(1) == auto_jobs(1, "fork")
    assert auto_jobs(1, "fork") == min(max(6, 3 * n), 64)
    # an xdist worker costs ~0.7 s of CPU to start: one per core for a single target
    assert auto_jobs(6, "xdist") == max(4, 2 * n)
    assert auto_jobs(1, "xdist") == max(2, n)


def test_a_session_loads_only_the_suites_plugins(tmp_path: Path) -> None:
    args = _session_args(
        str(tmp_path), adapter=None, dialect=None, engine_url=None, only=("mock",),
        orchestrator_url=None, orchestrator_pool="default", orchestrator_token_env="X",
        level="should", requirements=(), seed=0, run_id="t", scope="all", results_path=None,
    )  # fmt: skip
    assert "--disable-plugin-autoload" in args
    plugins = [args[i + 1] for i, a in enumerate(args) if a == "-p"]
    assert "pytest_bdd.plugin" in plugins
    assert "llorch_conformance.conformance.plugin" in plugins


def test_installed_third_party_plugins_stay_out_of_a_run() -> None:
    """hypothesis' pytest plugin is installed with the test extras; a run must not import it
    (it cost every xdist worker ~2 s of CPU and is no part of the suite)."""
    code = (
        "import sys\n"
        "from llorch_conformance.conformance._runner import collect_suite\n"
        "found = collect_suite(only=('mock',), requirements=('ADAPT-3001',))\n"
        "assert found, 'nothing collected'\n"
        "print('hypothesis' in sys.modules, '_hypothesis_pytestplugin' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False"], proc.stdout
