"""``run_suite``: the packaged features in a programmatic pytest session, folded into RunResults.

Why pytest and not a runner of our own: vendors run the very same suite inside their own pytest
(the plugin), and pytest-xdist gives the parallel run for free. The session here is isolated from
whatever pytest configuration the current directory has: it gets its own ini file (a vendor's
``addopts`` must not change our verdicts) and no cache directory.

Harness failures are kept apart from verdicts: a collection error, an internal error or a run
that selected nothing raises :class:`~adapters.api.HarnessError` (exit 2), never a "fail".
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from adapters.api import HarnessError, UsageError

from ._results import RunResults

__all__ = ["make_run_id", "run_suite"]

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


class _Collector:
    """In-process pytest plugin: progress callbacks and harness-error capture."""

    def __init__(self, progress: Callable[[str, Any], None] | None) -> None:
        self.progress = progress
        self.collect_errors: list[str] = []
        self.internal_errors: list[str] = []
        self.total = 0

    def pytest_collection_finish(self, session: Any) -> None:
        self.total = len(session.items)
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
        if report.when == "teardown" and self.progress:
            self.progress("done", report.nodeid)


def _xdist_available() -> bool:
    try:
        import xdist  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


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
) -> RunResults:
    """Run the packaged suite; return its results (also written to ``out/results.json``)."""
    from ._targets import resolve_targets
    from .plugin import suite_module_path

    # Resolve here first: bad input is one clear UsageError line, before pytest starts.
    resolve_targets(
        adapter=adapter,
        dialect=dialect,
        engine_url=engine_url,
        only=only,
        orchestrator_url=orchestrator_url,
        orchestrator_pool=orchestrator_pool,
        orchestrator_token_env=orchestrator_token_env,
    )
    run_id = run_id or make_run_id()
    out_dir = out if out is not None else Path("llorch-results") / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.json"
    if results_path.exists():
        results_path.unlink()
    with tempfile.TemporaryDirectory(prefix="llorch-run-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text(_INI, "utf-8")
        args = [
            str(suite_module_path()),
            "-c",
            str(ini),
            "--rootdir",
            tmp,
            "-p",
            "conformance.plugin",
            "-p",
            "no:terminal",
            "--llorch-seed",
            str(seed),
            "--llorch-level",
            level,
            "--llorch-results",
            str(results_path),
            "--llorch-run-id",
            run_id,
        ]
        if adapter:
            args += ["--llorch-adapter", adapter]
        if dialect:
            args += ["--llorch-dialect", dialect]
        if engine_url:
            args += ["--llorch-engine-url", engine_url]
        if only:
            args += ["--llorch-only", ",".join(only)]
        if orchestrator_url:
            args += [
                "--llorch-orchestrator-url", orchestrator_url,
                "--llorch-orchestrator-pool", orchestrator_pool,
                "--llorch-orchestrator-token-env", orchestrator_token_env,
            ]  # fmt: skip
        for rid in requirements:
            args += ["--llorch-requirement", rid]
        n_jobs = jobs
        if n_jobs == "auto" and not _xdist_available():
            n_jobs = 1
        if n_jobs not in (1, "1", 0, "0"):
            if not _xdist_available():
                raise UsageError("--jobs needs pytest-xdist (pip install pytest-xdist)")
            args += ["-n", str(n_jobs)]
        args += list(pytest_args)
        collector = _Collector(progress)
        rc = pytest.main(args, plugins=[collector])
    if collector.collect_errors or collector.internal_errors:
        raise HarnessError(
            "the suite could not be collected or crashed: "
            + " | ".join(collector.collect_errors + collector.internal_errors)[:3000]
        )
    if int(rc) == int(pytest.ExitCode.NO_TESTS_COLLECTED):
        raise UsageError(
            "no scenario matches the selection (check --requirement/--level/--dialect)"
        )
    if int(rc) in (
        int(pytest.ExitCode.INTERRUPTED),
        int(pytest.ExitCode.INTERNAL_ERROR),
        int(pytest.ExitCode.USAGE_ERROR),
    ):
        raise HarnessError(
            f"the pytest session ended with exit code {int(rc)} ({pytest.ExitCode(int(rc)).name})"
        )
    if not results_path.exists():
        raise HarnessError(f"the run wrote no results ({results_path}); pytest exit code {int(rc)}")
    return RunResults.read(results_path)
