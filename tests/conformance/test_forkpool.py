"""Forked workers (conformance._forkpool, issue 18.1): the same verdicts as a serial run, fixtures
kept per worker as in a serial run, a worker that dies is one scenario's harness error and not
a lost run, and no fork from a process with threads.

Every run here is a subprocess: the test process itself runs under pytest-xdist, whose workers
have threads, so an in-process run would (rightly) refuse to fork and prove nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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


def _acme_variant(tmp_path: Path, module: str, submit: str) -> None:
    """``tmp_path/<module>.py``: the reference vendor adapter (tests/vendor) whose ``submit``
    runs ``submit`` (one statement) first."""
    (tmp_path / f"{module}.py").write_text(
        "import os\nimport time\n\nfrom acme_adapter import AcmeVllmAdapter, make as _make\n\n\n"
        "class Variant(AcmeVllmAdapter):\n"
        f"    async def submit(self, request):\n        {submit}\n        yield\n\n\n"
        "def make(base_url, **config):\n"
        "    adapter = _make(base_url, **config)\n"
        "    adapter.__class__ = Variant\n"
        "    return adapter\n",
        "utf-8",
    )


def test_a_worker_that_dies_is_an_error_of_its_scenario_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    # dies, process and all, as soon as it is asked to stream (a C extension's segfault, an
    # os._exit in a dependency): the harness must survive its adapter
    _acme_variant(tmp_path, "killer_adapter", "os._exit(7)")
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


def pytest_plugin_registered(plugin, plugin_name, manager):
    if os.environ.get("FORKPOOL_DIE") and str(plugin_name).startswith("llorch-fork-worker"):
        os._exit(3)  # every worker dies as it starts, before any test


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


def _pytest_project(
    tmp_path: Path, workers: int, thread: bool, die: bool = False
) -> tuple[str, list[str]]:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "conftest.py").write_text(_CONFTEST, "utf-8")
    (proj / "test_it.py").write_text(_TESTS, "utf-8")
    log = tmp_path / "fixture.log"
    env = _env(tmp_path)
    env.update(FORKPOOL_LOG=str(log), FORKPOOL_N=str(workers))
    if thread:
        env["FORKPOOL_THREAD"] = "1"
    if die:
        env["FORKPOOL_DIE"] = "1"
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


def test_workers_that_die_before_any_test_end_the_run_with_one_error(tmp_path: Path) -> None:
    """Not an endless respawn: a few workers in a row dying before their first test is the
    workers' fault, and the run says so."""
    out, _ = _pytest_project(tmp_path, workers=2, thread=False, die=True)
    assert "forked workers die before running a scenario" in out, out[-3000:]
    assert "exit code 3" in out
    assert "passed" not in out


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


def _start_run(tmp_path: Path, *select: str) -> tuple[subprocess.Popen[str], set[int]]:
    launch = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.executable, [sys.executable, '-m', 'llorch_conformance', *sys.argv[1:]])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launch, "run", *(select or ("--only", "vllm")),
         "--out", str(tmp_path / "o"), "--no-progress", "--no-bundle", "-j", "3",
         "--parallel", "fork"],
        env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 3 and proc.poll() is None:
        workers = _children(proc.pid)
        time.sleep(0.05)
    assert len(workers) >= 3, "the run never forked its workers"
    return proc, workers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG")
def test_ctrl_c_stops_the_run_and_every_worker_in_one_line(tmp_path: Path) -> None:
    proc, workers = _start_run(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's ^C does: the whole group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out[-2000:]
    assert "Traceback" not in out, out[-2000:]
    assert "INTERRUPTED" in out
    deadline = time.monotonic() + 10
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG")
def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    """A CI timeout that SIGKILLs the run must not leave workers running a hung scenario: here
    every worker is stuck in an adapter that blocks for two minutes."""
    # blocks its event loop: no deadline of the harness can end it
    _acme_variant(tmp_path, "sleeper_adapter", "time.sleep(120)")
    proc, workers = _start_run(
        tmp_path, "--adapter", "sleeper_adapter:make", "--dialect", "vllm",
        "--requirement", "ADAPT-3001",
    )  # fmt: skip
    time.sleep(1.0)  # the workers are inside their first scenarios, blocked
    blocked = _alive(workers)
    assert blocked
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 5
    while _alive(blocked) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(blocked), _alive(blocked)
