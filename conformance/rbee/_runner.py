"""The ``--worker-url`` target: run every black-box check against one worker, fold into RunResults.

Output is the harness's results model (:class:`conformance._results.RunResults`, schema
``llorch-conformance/results/1``) written to ``<out>/results.json`` — the file the proof-bundle
writer reads — with one :class:`ScenarioResult` per check (``adapter`` = ``worker``, feature
``rbee worker (black-box)``) and the check's evidence (responses, frames, heartbeats). Plus, for a
reader without tools, ``<out>/worker_check.md`` with one line per check.

Requirements the black box cannot show — the queen's own rules (WKR-1008, WKR-1010, WKR-1014), the
bridge's mid-stream error frame (WKR-1015) and shutdown (WKR-1013, the checker cannot stop a
worker it did not start) — are reported ``skipped`` with the reason, so no ID silently disappears.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from llorch_conformance.adapters.api import UsageError

from ._checks import CHECKS, CheckResult, WorkerProbe

__all__ = ["NOT_BLACK_BOX", "WorkerCheckConfig", "parse_listen", "run_checks", "run_worker_check"]

#: IDs the black-box target cannot prove, and why (reported as ``skipped``).
NOT_BLACK_BOX: dict[str, str] = {
    "WKR-1008": "a queen-side rule (stale after the timeout): proven against the mock queen by the features",
    "WKR-1010": "a queen-side rule (available = ready|busy): proven against the mock queen by the features",
    "WKR-1013": "needs control of the worker's process to stop it: proven on the bridge by the features",
    "WKR-1014": "a queen-side rule (heartbeat ack): proven against the mock queen by the features",
    "WKR-1015": "needs an engine that fails mid-stream: proven on the bridge by the features",
}


@dataclass
class WorkerCheckConfig:
    worker_url: str
    queen_listen: tuple[str, int] | None = None
    heartbeat_interval_s: float = 30.0
    max_concurrency: int = 8
    only: tuple[str, ...] = ()
    seed: int = 0
    run_id: str | None = None


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--queen-listen {text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


async def run_checks(probe: WorkerProbe, names: tuple[str, ...] = ()) -> list[CheckResult]:
    """Run the checks in order; a check that raises is an ``error`` result (harness or transport)."""
    out: list[CheckResult] = []
    for name, fn in CHECKS:
        if names and name not in names:
            continue
        t0 = time.monotonic()
        try:
            with anyio.fail_after(max(60.0, 6 * probe.heartbeat_interval_s + 30.0)):
                res = await fn(probe)
        except TimeoutError:
            res = CheckResult(name, name, [], "error", "the check did not finish in time")
        except Exception as exc:
            res = _raised(name, fn, exc)
        res.duration_s = round(time.monotonic() - t0, 3)
        out.append(res)
    return out


def _raised(name: str, fn: Any, exc: Exception) -> CheckResult:
    """A check that raised: the worker's failure when its client saw the worker break the
    exchange (dropped connection, malformed HTTP), a harness ``error`` otherwise (issue 13:
    exit 2 only when the harness itself broke)."""
    from llorch_conformance.conformance.plugin import observed_failure

    seen = observed_failure(exc)
    ids = check_requirements(fn)
    if seen is None or not ids:
        return CheckResult(name, name, ids, "error", f"{type(exc).__name__}: {exc}"[:500])
    res = CheckResult(name, name, ids)
    return res.fail(ids, f"the worker broke the exchange: {type(seen).__name__}: {seen}"[:500])


def check_requirements(fn: Any) -> list[str]:
    """The requirement IDs a check proves, read from its ``CheckResult(name, title, [IDs])``
    (the one place they are written), so a check that raised still fails the right IDs."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "CheckResult"
            and len(node.args) >= 3
        ):
            try:
                value = ast.literal_eval(node.args[2])
            except ValueError:
                return []
            return [str(v) for v in value] if isinstance(value, list | tuple) else []
    return []


def _results(
    cfg: WorkerCheckConfig, checks: list[CheckResult], started_at: str, wall: float
) -> Any:
    from llorch_conformance.conformance._results import RunResults, ScenarioResult

    run_id = cfg.run_id or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    res = RunResults(
        run_id=run_id,
        seed=cfg.seed,
        target={
            "kind": "worker",
            "worker_url": cfg.worker_url,
            "queen_listen": None
            if cfg.queen_listen is None
            else f"{cfg.queen_listen[0]}:{cfg.queen_listen[1]}",
            "heartbeat_interval_s": cfg.heartbeat_interval_s,
        },
        level="should",
        started_at=started_at,
        wall_time_s=wall,
    )
    for c in checks:
        res.scenarios.append(
            ScenarioResult(
                nodeid=f"worker-check::{c.name}",
                feature="rbee worker (black-box)",
                scenario=c.title,
                adapter="worker",
                dialect=None,
                requirements=list(c.requirements),
                status=c.status,
                duration_s=c.duration_s,
                message=c.message,
                failed_requirements=list(c.failed),
                evidence=c.evidence,
            )
        )
    if not cfg.only:
        for rid, why in NOT_BLACK_BOX.items():
            res.scenarios.append(
                ScenarioResult(
                    nodeid=f"worker-check::not-black-box::{rid}",
                    feature="rbee worker (black-box)",
                    scenario=f"{rid} is not observable black-box",
                    adapter="worker",
                    dialect=None,
                    requirements=[rid],
                    status="skipped",
                    message=why,
                )
            )
    return res


def run_worker_check(cfg: WorkerCheckConfig, out: Path | None = None) -> Any:
    """Run the checks (starting a mock queen on ``queen_listen`` when given); write results."""
    from llorch_conformance.mock_engines.rbee import QueenConfig, run_mock_queen

    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.monotonic()
    queen = None
    if cfg.queen_listen is not None:
        host, port = cfg.queen_listen
        try:
            queen = run_mock_queen(
                QueenConfig(
                    heartbeat_interval_s=cfg.heartbeat_interval_s,
                    heartbeat_timeout_s=3 * cfg.heartbeat_interval_s,
                ),
                host=host,
                port=port,
            )
        except OSError as exc:
            raise UsageError(
                f"--queen-listen {host}:{port}: cannot listen ({exc.strerror or exc})"
            ) from None
        queen.start()
    try:
        probe = WorkerProbe(
            cfg.worker_url,
            queen=queen,
            heartbeat_interval_s=cfg.heartbeat_interval_s,
            max_concurrency=cfg.max_concurrency,
        )
        checks = anyio.run(run_checks, probe, cfg.only)
    finally:
        if queen is not None:
            queen.stop()
    res = _results(cfg, checks, started_at, time.monotonic() - t0)
    if out is not None:
        res.write(out / "results.json")
        (out / "worker_check.md").write_text(_markdown(cfg, checks), "utf-8")
    return res


def _markdown(cfg: WorkerCheckConfig, checks: list[CheckResult]) -> str:
    lines = [
        "# AUTOGENERATED: Proof Bundle",
        f"# rbee worker check: {cfg.worker_url}",
        "",
        "| check | requirements | status | message |",
        "|---|---|---|---|",
    ]
    for c in checks:
        msg = c.message.replace("|", "\\|").replace("\n", " ")[:300]
        lines.append(f"| {c.name} | {', '.join(c.requirements)} | {c.status} | {msg} |")
    for rid, why in NOT_BLACK_BOX.items():
        lines.append(f"| - | {rid} | skipped | {why} |")
    return "\n".join(lines) + "\n"
