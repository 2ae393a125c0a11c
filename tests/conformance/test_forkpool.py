"""Forked workers (conformance._forkpool, issue 18.1): the same verdicts as a serial run, fixtures
kept per worker as in a serial run, a worker that dies is one scenario's harness error and not
a lost run, and no fork from a process with threads.

Every run here is a subprocess: the test process itself runs under pytest-xdist, whose workers
have threads, so an in-process run would (rightly) refuse to fork and prove nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "tests" / "vendor"
TIMEOUT_S = 300

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forked workers need os.fork")


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(tmp_path), str(VENDOR), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    env.pop("LLORCH_RUN_ID", None)
    return env


def _run(tmp_path: Path, out: str, *argv: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "llorch_conformance", "run", "--out", str(tmp_path / out),
         "--no-progress", "--no-bundle", *argv],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    found = list((tmp_path / out).glob("conformance/*/results.json"))
    results = json.loads(found[0].read_text("utf-8")) if found else None
    return proc, results


def _statuses(results: Any) -> dict[str, str]:
    return {s["nodeid"].split("::")[-1]: s["status"] for s in results["scenarios"]}


def test_a_forked_run_gives_the_serial_runs_verdicts(tmp_path: Path) -> None:
    sel = ["--only", "vllm", "--requirement", "WA-INT-3003", "--requirement", "ADAPT-3000"]
    serial, r1 = _run(tmp_path, "serial", *sel, "-j", "1")
    forked, r4 = _run(tmp_path, "forked", *sel, "-j", "4", "--parallel", "fork")
    assert serial.returncode == forked.returncode == 0, (serial.stderr + forked.stderr)[-3000:]
    assert len(r1["scenarios"]) >= 8
    assert _statuses(r4) == _statuses(r1)
    assert [(v["adapter"], v["requirement"], v["status"]) for v in r4.get("verdicts", [])] == [
        (v["adapter"], v["requirement"], v["status"]) for v in r1.get("verdicts", [])
    ]


_KILLER = '''
import os

from acme_adapter import AcmeVllmAdapter, make as _make


class Killer(AcmeVllmAdapter):
    """Dies, process and all, as soon as it is asked to stream (a C extension's segfault,
    an ``os._exit`` in a dependency): the harness must survive its adapter."""

    async def submit(self, request):
        os._exit(7)
        yield


def make(base_url, **config):
    adapter = _make(base_url, **config)
    adapter.__class__ = Killer
    return adapter
'''


def test_a_worker_that_dies_is_an_error_of_its_scenario_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    (tmp_path / "killer_adapter.py").write_text(_KILLER, "utf-8")
    sel = ["--adapter", "killer_adapter:make", "--dialect", "vllm"]
    sel += ["--requirement", "ADAPT-3000", "--requirement", "WA-INT-3006"]
    proc, results = _run(tmp_path, "out", *sel, "-j", "3", "--parallel", "fork")
    text = proc.stdout + proc.stderr
    assert results is not None, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    statuses = _statuses(results)
    # every selected scenario is in the results: none lost with its worker
    collected, _ = _run(tmp_path, "collect", *sel, "--collect-only")
    assert f"{len(statuses)} scenario(s) selected" in collected.stdout, collected.stdout[-2000:]
    died = [s for s in results["scenarios"] if "worker process" in s["message"]]
    assert died, statuses
    for s in died:
        assert s["status"] == "error"
        assert "exit code 7" in s["message"]
    # the scenarios that never stream still ran, in the replacement workers, and passed
    assert statuses["test_cancelling_an_unknown_task_is_harmless[make]"] == "pass"
    assert statuses["test_a_loading_engine_is_live_but_not_ready[make]"] == "pass"
    assert proc.returncode != 0  # harness errors are never a green run


_CONFTEST = """
import os
import threading

import pytest

from llorch_conformance.conformance._forkpool import ForkPool

LOG = os.environ["FORKPOOL_LOG"]


def _log(line):
    with open(LOG, "a") as f:
        f.write(f"{line} {os.getpid()}\\n")


def pytest_configure(config):
    if os.environ.get("FORKPOOL_THREAD"):
        stop = threading.Event()
        threading.Thread(target=stop.wait, daemon=True).start()
    config.pluginmanager.register(ForkPool(int(os.environ["FORKPOOL_N"])), "forkpool")


@pytest.fixture(scope="session")
def engine():
    _log("setup")
    yield "up"
    _log("teardown")
"""

_TESTS = """
import pytest


@pytest.mark.parametrize("n", range(12))
def test_uses_the_session_fixture(engine, tmp_path, n):
    assert engine == "up"
    mine = tmp_path / "mine"
    assert not mine.exists()
    mine.write_text(str(n))
"""


def _pytest_project(tmp_path: Path, workers: int, thread: bool) -> tuple[str, list[str]]:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "conftest.py").write_text(_CONFTEST, "utf-8")
    (proj / "test_it.py").write_text(_TESTS, "utf-8")
    log = tmp_path / "fixture.log"
    env = _env(tmp_path)
    env.update(FORKPOOL_LOG=str(log), FORKPOOL_N=str(workers))
    if thread:
        env["FORKPOOL_THREAD"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--basetemp", str(tmp_path / "bt"), str(proj)],
        env=env, cwd=proj, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    lines = log.read_text("utf-8").split("\n") if log.exists() else []
    return proc.stdout + proc.stderr, [x for x in lines if x]


def test_session_fixtures_live_once_per_worker_and_are_torn_down(tmp_path: Path) -> None:
    out, lines = _pytest_project(tmp_path, workers=3, thread=False)
    assert "12 passed" in out, out[-3000:]
    setups = [x.split()[1] for x in lines if x.startswith("setup")]
    teardowns = [x.split()[1] for x in lines if x.startswith("teardown")]
    # one set-up per worker that ran something (not one per test), each torn down once in the
    # worker that made it, by pytest's own teardown at the end of that worker's last test
    assert 1 <= len(setups) <= 3, lines
    assert sorted(setups) == sorted(teardowns), lines
    assert str(os.getpid()) not in setups


def test_a_process_with_threads_runs_serially_rather_than_fork(tmp_path: Path) -> None:
    out, lines = _pytest_project(tmp_path, workers=3, thread=True)
    assert "12 passed" in out, out[-3000:]
    setups = [x.split()[1] for x in lines if x.startswith("setup")]
    assert len(setups) == 1, lines  # the pytest process itself: nothing was forked
