"""The harness's self-test: every deliberately broken adapter fails the right requirement.

Each broken adapter (``broken_adapters.py``) runs through the suite restricted to the requirement
it breaks; the verdict for that (adapter, requirement) must be ``fail`` and the run's exit code 1.
The adapters run in three groups, one interpreter each (``_selftest_main.py``), so xdist can
spread them; the share caught is printed at the end of the session (``conftest.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ._cli import HERE, run_cli
from .broken_adapters import EXPECTED

_NAMES = sorted(EXPECTED)
_GROUPS = [_NAMES[i::3] for i in range(3)]


@pytest.mark.parametrize("group", _GROUPS, ids=[f"group{i}" for i in range(len(_GROUPS))])
def test_broken_adapters_are_caught(
    group: list[str], tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(
        [sys.executable, "-m", "_selftest_main", str(tmp_path), *group],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in group:
        record_property("llorch_selftest", json.dumps({"name": name, **report[name]}))
    missed = {n: r for n, r in report.items() if not r["caught"] or r["exit"] != 1}
    assert not missed, f"broken adapters not caught: {missed}"


def test_a_failing_adapter_exits_1_through_the_cli(tmp_path: Path) -> None:
    proc = run_cli(
        "run", "--adapter", "broken_adapters:drop_last_token", "--dialect", "llamacpp",
        "--requirement", "WA-INT-3001", "--out", str(tmp_path), "-j", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-1500:] + proc.stderr[-800:]
    assert "FAIL drop_last_token WA-INT-3001" in proc.stdout


def test_a_broken_factory_is_a_harness_error_not_a_failure(tmp_path: Path) -> None:
    from conformance import RunResults

    proc = run_cli(
        "run", "--adapter", "broken_adapters:explodes", "--dialect", "llamacpp",
        "--requirement", "ADAPT-3000", "--out", str(tmp_path), "-j", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-800:]
    results = RunResults.read(tmp_path / "results.json")
    statuses = {s.status for s in results.scenarios}
    assert "error" in statuses and "fail" not in statuses, statuses
