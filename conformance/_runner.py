"""``run_suite``: the packaged features in a programmatic pytest session, folded into RunResults.

Why pytest and not a runner of our own: vendors run the very same suite inside their own pytest
(the plugin). Parallel runs fork their workers from the collected session (:mod:`._forkpool`,
no per-worker start-up) or, where there is no ``os.fork`` or on request, use pytest-xdist. The session here is isolated from
whatever pytest configuration the current directory has: it gets its own ini file (a vendor's
``addopts`` must not change our verdicts) and no cache directory.

Harness failures are kept apart from verdicts: a collection error, an internal error or a run
that selected nothing raises :class:`~adapters.api.HarnessError` (exit 2), never a "fail".
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llorch_conformance.adapters.api import HarnessError, UsageError

from ._forkpool import ForkPool
from ._results import RunResults

__all__ = [
    "CollectedScenario",
    "auto_jobs",
    "collect_suite",
    "expected_duration",
    "fork_available",
    "make_run_id",
    "run_suite",
    "scenario_key",
]

# Warnings stay warnings here: a vendor adapter's deprecation warning is not a verdict.
_INI = """[pytest]
addopts = -p no:cacheprovider
xfail_strict = true
"""


def make_run_id() -> str:
    """``LLORCH_RUN_ID`` or ``YYYYMMDD-HHMMSS-<sha8>`` (git sha from CI env or git; else random)."""
    env = os.environ.get("LLORCH_RUN_ID")
    if env:
        return env
    sha = next(
        (os.environ[k] for k in ("GIT_SHA", "CI_COMMIT_SHA", "GITHUB_SHA") if os.environ.get(k)), ""
    )
    if not sha:
        try:
            sha = subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            sha = ""
    sha8 = (sha or secrets.token_hex(4))[:8]
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{sha8}"


_RANK = {"fail": 5, "error": 4, "unsupported": 3, "skipped": 2, "pass": 1}


@dataclass(frozen=True)
class CollectedScenario:
    """One scenario a selection would run (``run --collect-only``)."""

    nodeid: str
    adapter: str
    requirements: tuple[str, ...]
    name: str


class _Collector:
    """In-process pytest plugin: progress callbacks, harness-error capture, ``--lf`` selection.

    Progress: ``("total", n)`` once, then ``("done", status)`` per finished scenario, the status
    being the plugin's (pass, fail, unsupported, skipped, error) so the live line can count.
    """

    def __init__(
        self,
        progress: Callable[[str, Any], None] | None,
        select: frozenset[str] | None = None,
    ) -> None:
        self.progress = progress
        self.select = select
        self.collect_errors: list[str] = []
        self.internal_errors: list[str] = []
        self.total = 0
        self.collected: list[CollectedScenario] = []
        self._worst: dict[str, str] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: Any, items: list[Any]) -> None:
        """``--lf``: keep the scenarios whose test id (the part after ``::``) failed last time."""
        if self.select is None:
            return
        keep = [i for i in items if scenario_key(i.nodeid) in self.select]
        drop = [i for i in items if scenario_key(i.nodeid) not in self.select]
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    def pytest_collection_finish(self, session: Any) -> None:
        from .plugin import item_requirements

        self.total = len(session.items)
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            target = callspec.params.get("llorch_target") if callspec is not None else None
            doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").partition(": ")[2]
            self.collected.append(
                CollectedScenario(
                    item.nodeid,
                    str(getattr(target, "name", "?")),
                    tuple(item_requirements(item)),
                    doc or item.name,
                )
            )
        if self.progress:
            self.progress("total", self.total)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under xdist the controller collects nothing; the first worker's list gives the total."""
        if not self.total and self.progress:
            self.total = len(ids)
            self.progress("total", self.total)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {str(report.longrepr)[-1500:]}")

    def pytest_internalerror(self, excrepr: Any, excinfo: Any) -> None:
        self.internal_errors.append(str(excrepr)[-1500:])

    def pytest_runtest_logreport(self, report: Any) -> None:
        props = [v for k, v in report.user_properties if k == "llorch" and isinstance(v, dict)]
        status = str(props[-1].get("status", "")) if props else ""
        if status not in _RANK:
            status = "error" if report.failed else "pass"
        prev = self._worst.get(report.nodeid, "pass")
        self._worst[report.nodeid] = status if _RANK[status] > _RANK[prev] else prev
        if report.when == "teardown":
            final = self._worst.pop(report.nodeid, "pass")
            if self.progress:
                self.progress("done", final)


def scenario_key(nodeid: str) -> str:
    """The stable part of a node id (test function and parameters), without the module path
    (which is relative to a per-run temporary rootdir)."""
    return nodeid.split("::", 1)[-1]


def _xdist_available() -> bool:
    try:
        import xdist  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def fork_available() -> bool:
    """Can ``run`` fork its workers here (a POSIX ``os.fork``)?"""
    return hasattr(os, "fork") and sys.platform != "win32"


def auto_jobs(targets: int = 2, parallel: str | None = None) -> int:
    """What ``-j auto`` means.

    Forked workers (the default where ``os.fork`` exists): three per usable core, at least 6,
    at most 64. A forked worker starts with the parent's imports and collected items, so it
    costs only the scenarios' own CPU, and a scenario spends most of its time waiting (servers,
    sockets, deadlines, Retry-After): measured on a quiet 2-core machine, alternating, 6
    workers beat 4 on the vendor (2.24 vs 2.53 s), one-adapter (3.52 vs 3.82 s) and full runs
    (14.0 vs 15.5 s); 8 gained no more on the smaller runs and cost more CPU.

    pytest-xdist workers (``--parallel xdist``, or no ``os.fork``): ``max(4, 2 × cores)`` for a
    run over several targets, one per core (at least 2) for one target: an xdist worker costs
    ~0.7 s of CPU to start (imports, collection), which the ~150 scenarios of a one-adapter run
    do not repay (measured on a loaded 2-core machine).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    if _parallel_mode(parallel, 2) == "fork":
        return min(max(6, 3 * cores), 64)
    return max(4, 2 * cores) if targets > 1 else max(2, cores)


def _parallel_mode(parallel: str | None, jobs: int | str) -> str:
    """``"serial"``, ``"fork"`` or ``"xdist"``: how ``jobs`` workers run (usage errors here)."""
    if str(jobs) in ("0", "1"):
        return "serial"
    if parallel not in (None, "fork", "xdist"):
        raise UsageError(f"--parallel {parallel!r}: expected fork or xdist")
    if parallel == "fork" and not fork_available():
        raise UsageError("--parallel fork: this platform has no os.fork; use --parallel xdist")
    if parallel == "xdist" or (parallel is None and not fork_available()):
        if not _xdist_available():
            raise UsageError("--jobs needs pytest-xdist here (pip install pytest-xdist)")
        return "xdist"
    return "fork"


def _durations() -> dict[str, float]:
    """Scenario duration hints shipped with the suite (``_durations.json``, made by
    ``benches/update_durations.py`` from real runs); empty when missing or unreadable."""
    global _DURATIONS
    if _DURATIONS is None:
        try:
            raw = json.loads((Path(__file__).parent / "_durations.json").read_text("utf-8"))
            _DURATIONS = {str(k): float(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        except (OSError, ValueError, TypeError):
            _DURATIONS = {}
    return _DURATIONS


_DURATIONS: dict[str, float] | None = None


def expected_duration(item: pytest.Item) -> float:
    """How long ``item`` usually takes (0 when unknown): forked workers start the longest
    first. Only an order: it never changes what runs or a verdict."""
    return _durations().get(getattr(item, "originalname", None) or item.name, 0.0)


def _session_args(
    tmp: str,
    *,
    adapter: str | None,
    dialect: str | None,
    engine_url: str | None,
    only: Sequence[str],
    orchestrator_url: str | None,
    orchestrator_pool: str,
    orchestrator_token_env: str,
    level: str,
    requirements: Sequence[str],
    seed: int,
    run_id: str,
    scope: str,
    results_path: Path | None,
    adapter_name: str | None = None,
    adapter_version: str | None = None,
) -> list[str]:
    """The pytest argv of a suite session (isolated ini, our plugin, no terminal reporter)."""
    from ._options import pytest_argv
    from .plugin import suite_module_path

    ini = Path(tmp) / "pytest.ini"
    ini.write_text(_INI, "utf-8")
    args = [
        str(suite_module_path()),
        "-c",
        str(ini),
        "--rootdir",
        tmp,
        # Only the plugins the suite needs: whatever else is installed (hypothesis, schemathesis,
        # a vendor's own plugins) must neither change verdicts nor cost each worker its import.
        "--disable-plugin-autoload",
        "-p",
        "pytest_bdd.plugin",
        "-p",
        "llorch_conformance.conformance.plugin",
        "-p",
        "no:terminal",
        "--llorch-run-id",
        run_id,
    ]
    if results_path is not None:
        args += ["--llorch-results", str(results_path)]
    # the selection, spelled by the option table the CLI and the plugin share
    selection: dict[str, Any] = {
        "adapter": adapter, "dialect": dialect, "engine_url": engine_url, "only": only,
        "orchestrator_url": orchestrator_url, "level": level, "requirement": requirements,
        "seed": seed, "scope": scope, "adapter_name": adapter_name,
        "adapter_version": adapter_version,
    }  # fmt: skip
    if orchestrator_url:
        selection.update(
            orchestrator_pool=orchestrator_pool, orchestrator_token_env=orchestrator_token_env
        )
    args += pytest_argv(selection)
    return args


def _check_session(collector: _Collector, rc: int) -> None:
    """Harness failures of a session: collection errors, crashes, an empty selection."""
    if collector.collect_errors or collector.internal_errors:
        raise HarnessError(
            "the suite could not be collected or crashed: "
            + " | ".join(collector.collect_errors + collector.internal_errors)[:3000]
        )
    if int(rc) == int(pytest.ExitCode.NO_TESTS_COLLECTED):
        raise UsageError(
            "no scenario matches the selection (check --requirement/--level/--dialect/--scope)"
        )
    if int(rc) in (
        int(pytest.ExitCode.INTERRUPTED),
        int(pytest.ExitCode.INTERNAL_ERROR),
        int(pytest.ExitCode.USAGE_ERROR),
    ):
        raise HarnessError(
            f"the pytest session ended with exit code {int(rc)} ({pytest.ExitCode(int(rc)).name})"
        )


def collect_suite(
    *,
    adapter: str | None = None,
    dialect: str | None = None,
    engine_url: str | None = None,
    only: Sequence[str] = (),
    orchestrator_url: str | None = None,
    orchestrator_pool: str = "default",
    orchestrator_token_env: str = "LLORCH_API_TOKEN",
    level: str = "should",
    requirements: Sequence[str] = (),
    seed: int = 0,
    scope: str = "all",
    select: Collection[str] | None = None,
    pytest_args: Sequence[str] = (),
    adapter_name: str | None = None,
    adapter_version: str | None = None,
) -> list[CollectedScenario]:
    """The scenarios a selection would run, in order, without running any (``--collect-only``)."""
    collector = _Collector(None, frozenset(select) if select is not None else None)
    with tempfile.TemporaryDirectory(prefix="llorch-collect-") as tmp:
        args = _session_args(
            tmp,
            adapter=adapter, dialect=dialect, engine_url=engine_url, only=only,
            orchestrator_url=orchestrator_url, orchestrator_pool=orchestrator_pool,
            orchestrator_token_env=orchestrator_token_env, level=level,
            requirements=requirements, seed=seed, run_id="collect", scope=scope,
            results_path=None, adapter_name=adapter_name, adapter_version=adapter_version,
        )  # fmt: skip
        rc = pytest.main([*args, "--collect-only", *pytest_args], plugins=[collector])
    _check_session(collector, int(rc))
    return collector.collected


def run_suite(
    *,
    adapter: str | None = None,
    dialect: str | None = None,
    engine_url: str | None = None,
    only: Sequence[str] = (),
    orchestrator_url: str | None = None,
    orchestrator_pool: str = "default",
    orchestrator_token_env: str = "LLORCH_API_TOKEN",
    level: str = "should",
    requirements: Sequence[str] = (),
    seed: int = 0,
    out: Path | None = None,
    jobs: int | str = 1,
    run_id: str | None = None,
    progress: Callable[[str, Any], None] | None = None,
    pytest_args: Sequence[str] = (),
    scope: str = "all",
    maxfail: int | None = None,
    select: Collection[str] | None = None,
    adapter_name: str | None = None,
    adapter_version: str | None = None,
    parallel: str | None = None,
) -> RunResults:
    """Run the packaged suite; return its results (also written to ``out/results.json``).

    ``scope`` narrows the scenarios to one feature-area scope (conformance._guide); ``maxfail``
    stops the session after that many failing scenarios; ``select`` keeps only the scenarios
    whose :func:`scenario_key` is in it (``--lf``). ``parallel`` says how ``jobs`` workers
    start: ``"fork"`` (forked from the collected session, :mod:`._forkpool`; the default where
    ``os.fork`` exists) or ``"xdist"`` (pytest-xdist's fresh interpreters).
    """
    from ._targets import resolve_targets

    # Resolve here first: bad input is one clear UsageError line, before pytest starts.
    targets = resolve_targets(
        adapter=adapter,
        dialect=dialect,
        engine_url=engine_url,
        only=only,
        orchestrator_url=orchestrator_url,
        orchestrator_pool=orchestrator_pool,
        orchestrator_token_env=orchestrator_token_env,
        adapter_name=adapter_name,
        adapter_version=adapter_version,
    )
    run_id = run_id or make_run_id()
    out_dir = out if out is not None else Path("llorch-results") / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.json"
    if results_path.exists():
        results_path.unlink()
    collector = _Collector(progress, frozenset(select) if select is not None else None)
    with tempfile.TemporaryDirectory(prefix="llorch-run-") as tmp:
        args = _session_args(
            tmp,
            adapter=adapter, dialect=dialect, engine_url=engine_url, only=only,
            orchestrator_url=orchestrator_url, orchestrator_pool=orchestrator_pool,
            orchestrator_token_env=orchestrator_token_env, level=level,
            requirements=requirements, seed=seed, run_id=run_id, scope=scope,
            results_path=results_path, adapter_name=adapter_name, adapter_version=adapter_version,
        )  # fmt: skip
        n_jobs = auto_jobs(len(targets), parallel) if jobs == "auto" else jobs
        plugins: list[Any] = [collector]
        mode = _parallel_mode(parallel, n_jobs)
        if mode == "fork":
            plugins.append(
                ForkPool(
                    int(n_jobs),
                    parent_only=(collector,),
                    expected_s=expected_duration,
                )
            )
        elif mode == "xdist":
            # worksteal: an idle worker takes half of a busy one's queue, so the workers finish
            # together (with ``load`` one often ran ~1.5 s alone at the end of a vllm run).
            args += ["-p", "xdist.plugin", "-n", str(n_jobs), "--dist", "worksteal"]
        if maxfail is not None:
            args += ["--maxfail", str(maxfail)]
        args += list(pytest_args)
        rc = pytest.main(args, plugins=plugins)
    _check_session(collector, int(rc))
    if not results_path.exists():
        raise HarnessError(f"the run wrote no results ({results_path}); pytest exit code {int(rc)}")
    return RunResults.read(results_path)
