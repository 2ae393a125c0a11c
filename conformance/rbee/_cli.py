"""``llorch-conformance worker-check``: validate any rbee worker black-box (the ``--worker-url`` target).

Point the worker's heartbeats at ``--queen-listen HOST:PORT`` (the harness serves a mock queen
there) to include the heartbeat checks; without it they are reported ``skipped``. Results go to
``--out DIR`` (``results.json`` in the harness's results model, ``worker_check.md``). Exit codes:
0 every MUST passed, 1 a requirement failed, 2 harness or usage error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from llorch_conformance.adapters.api import UsageError

__all__ = ["register"]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "worker-check",
        help="validate an rbee worker black-box (--worker-url) and write results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--worker-url", required=True, metavar="URL", help="the rbee worker to judge")
    p.add_argument(
        "--queen-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve a mock queen here for heartbeat checks",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="the worker's heartbeat interval (default 30)",
    )
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=8,
        help="streams held open to saturate the worker (default 8)",
    )
    p.add_argument(
        "--only", dest="only_checks", default="", metavar="CHECK,...", help="run only these checks"
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help="write results.json and worker_check.md here"
    )
    p.add_argument("--seed", type=int, default=0, help="run seed, recorded in the results")
    from llorch_conformance.reports import (
        add_run_options,  # --proof-dir, --no-bundle, --sign-key, ...
    )

    add_run_options(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    return worker_run(args)[1]


def worker_run(args: argparse.Namespace) -> tuple[Any, int]:
    """Run the worker target from parsed arguments (``worker-check`` or ``run --worker-url``).

    Returns the :class:`~conformance._results.RunResults` and the exit code after the proof bundle
    was written (``reports._run_hook.bundle_run``).
    """
    from ._checks import CHECKS
    from ._runner import WorkerCheckConfig, parse_listen, run_worker_check

    if not args.worker_url.startswith(("http://", "https://")):
        raise UsageError(f"--worker-url {args.worker_url!r}: must be an http(s) URL")
    interval = float(getattr(args, "heartbeat_interval", 30.0))
    concurrency = int(getattr(args, "max_concurrency", 8))
    if interval <= 0:
        raise UsageError("--heartbeat-interval must be positive")
    if concurrency < 1:
        raise UsageError("--max-concurrency must be at least 1")
    only = tuple(x for x in (getattr(args, "only_checks", "") or "").split(",") if x)
    known = [n for n, _ in CHECKS]
    for name in only:
        if name not in known:
            raise UsageError(f"--only {name!r}: unknown check (known: {', '.join(known)})")
    cfg = WorkerCheckConfig(
        worker_url=args.worker_url,
        queen_listen=parse_listen(args.queen_listen) if args.queen_listen else None,
        heartbeat_interval_s=interval,
        max_concurrency=concurrency,
        only=only,
        seed=int(getattr(args, "seed", 0) or 0),
    )
    out = Path(args.out) if getattr(args, "out", None) else None
    res = run_worker_check(cfg, out)
    for s in res.scenarios:
        mark = {
            "pass": "PASS",
            "fail": "FAIL",
            "skipped": "SKIP",
            "error": "ERROR",
            "unsupported": "UNSUP",
        }[s.status]
        ids = ",".join(s.requirements)
        tail = f": {s.message}" if s.message and s.status != "pass" else ""
        print(f"{mark:5} {ids:22} {s.scenario}{tail}"[:400])
    if out is not None:
        print(f"results: {out / 'results.json'}")
    from llorch_conformance.reports import (
        bundle_run,  # the same proof bundle as 'run' writes
    )

    rc = bundle_run(
        args,
        res,
        {
            "worker_url": cfg.worker_url,
            "queen_listen": args.queen_listen,
            "heartbeat_interval_s": cfg.heartbeat_interval_s,
            "only": list(only),
            "seed": cfg.seed,
        },
    )
    return res, rc
