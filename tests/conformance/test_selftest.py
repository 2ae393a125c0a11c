"""The harness's self-test: every deliberately broken adapter fails the right requirement.

Each broken adapter (``broken_adapters.py``) runs through ``llorch-conformance run`` restricted to
the requirement it breaks; the verdict for that (adapter, requirement) must be ``fail``. The share
caught is printed at the end of the session (``conftest.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance import RunResults

from ._cli import run_cli
from .broken_adapters import EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_adapter_is_caught(
    name: str, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    want = EXPECTED[name]
    proc = run_cli(
        "run", "--adapter", f"broken_adapters:{name}", "--dialect", "llamacpp",
        "--requirement", want, "--out", str(tmp_path), "-j", "1", "--no-progress",
    )  # fmt: skip
    results = RunResults.read(tmp_path / "results.json")
    failed = sorted(
        {rid for s in results.scenarios if s.status == "fail" for rid in s.failed_requirements}
    )
    verdicts = {v.requirement: v.status for v in results.verdicts() if v.adapter == name}
    caught = verdicts.get(want) == "fail"
    record_property("llorch_selftest", json.dumps({"name": name, "want": want, "caught": caught}))
    assert proc.returncode == 1, f"exit {proc.returncode}; stderr: {proc.stderr[-800:]}"
    assert caught, f"{name} should fail {want}; verdicts {verdicts}; failed requirements {failed}"


def test_a_broken_factory_is_a_harness_error_not_a_failure(tmp_path: Path) -> None:
    proc = run_cli(
        "run", "--adapter", "broken_adapters:explodes", "--dialect", "llamacpp",
        "--requirement", "ADAPT-3000", "--out", str(tmp_path), "-j", "1", "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-800:]
    results = RunResults.read(tmp_path / "results.json")
    statuses = {s.status for s in results.scenarios}
    assert "error" in statuses and "fail" not in statuses, statuses
