"""``llorch-conformance run``: the suite against adapters, a summary table, a results file.

Exit codes (conformance.cli): 0 every MUST requirement passed (or was declared unsupported),
1 conformance failures (``--fail-on should`` also counts SHOULD failures), 2 harness or usage
errors — including a scenario that hit a harness error, because then the verdict is unknown.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run the conformance suite against adapters and write results.json",
        description="Run the conformance suite. Default target: every built-in adapter against "
        "its mock engine.",
    )
    p.add_argument(
        "--adapter",
        metavar="MODULE:FACTORY|NAME",
        help="a vendor adapter factory (module:factory) or an entry point of llorch_conformance.adapters",
    )
    p.add_argument(
        "--dialect",
        metavar="ENGINE",
        help="the engine dialect the adapter speaks (llamacpp, vllm, tgi, openai, triton, mock)",
    )
    p.add_argument(
        "--only", metavar="D1,D2", help="restrict the built-in adapters to these dialects"
    )
    p.add_argument(
        "--engine-url",
        metavar="URL",
        help="a live engine (needs --dialect); a fault proxy in front of it injects the faults",
    )
    p.add_argument(
        "--orchestrator-url",
        metavar="URL",
        help="judge an orchestrator facade at URL black-box (tasks, SSE, cancel, auth, metrics); "
        "scenarios it cannot control are reported unsupported",
    )
    p.add_argument(
        "--orchestrator-pool",
        default="default",
        metavar="POOL",
        help="with --orchestrator-url: the pool standing for the target (default: default)",
    )
    p.add_argument(
        "--orchestrator-token-env",
        default="LLORCH_API_TOKEN",
        metavar="NAME",
        help="with --orchestrator-url: environment variable holding its API token "
        "(default LLORCH_API_TOKEN; a token is never taken from the command line)",
    )
    p.add_argument(
        "--level",
        choices=("must", "should"),
        default="should",
        help="which requirement levels to run (default: should = all)",
    )
    p.add_argument(
        "--fail-on",
        choices=("must", "should"),
        default="must",
        help="exit 1 on failing MUST (default) or also SHOULD requirements",
    )
    p.add_argument(
        "--requirement",
        action="append",
        default=[],
        metavar="ID",
        help="only scenarios proving this ID (repeatable)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="run seed, recorded in the results (default 0)"
    )
    p.add_argument(
        "-k",
        dest="keyword",
        metavar="EXPR",
        help="only scenarios whose test name matches (pytest -k)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="where results.json goes (default llorch-results/<run-id>)",
    )
    p.add_argument(
        "-j",
        "--jobs",
        default="auto",
        metavar="N|auto",
        help="parallel workers via pytest-xdist (default auto when installed)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.add_argument(
        "--worker-url",
        metavar="URL",
        help="validate an rbee worker black-box instead of adapters (as 'worker-check')",
    )
    p.add_argument(
        "--queen-listen",
        metavar="HOST:PORT",
        help="with --worker-url: serve a mock queen here for the heartbeat checks",
    )
    from reports._run_hook import add_run_options  # --proof-dir, --no-bundle, --sign-key, ...

    add_run_options(p)
    from reports.gate import add_gate_options  # --baseline, --max-regression, --waivers

    add_gate_options(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from adapters.api import UsageError
    from conformance._catalogue import is_known

    for rid in args.requirement:
        if not is_known(rid):
            raise UsageError(
                f"--requirement {rid!r} is not a catalogue ID (see 'llorch-conformance list requirements')"
            )
    jobs: int | str = args.jobs
    if jobs != "auto":
        try:
            jobs = int(jobs)
        except ValueError:
            raise UsageError(f"--jobs must be a number or 'auto', got {args.jobs!r}") from None
        if jobs < 0:
            raise UsageError("--jobs must not be negative")
    if args.engine_url and not args.dialect:
        raise UsageError("--engine-url needs --dialect: which engine listens there?")
    only = tuple(x for x in (args.only or "").split(",") if x)
    from reports.gate import finish_gate, prepare_gate  # bad waivers/baseline fail before the run

    gate = prepare_gate(args)
    if args.queen_listen and not args.worker_url:
        raise UsageError("--queen-listen needs --worker-url")
    if args.orchestrator_url and args.worker_url:
        raise UsageError("--orchestrator-url and --worker-url are different targets: pick one")
    if args.worker_url:  # the rbee worker target (conformance.rbee)
        from conformance.rbee._cli import worker_run

        worker_results, rc = worker_run(args)
        return finish_gate(gate, args, worker_results, rc)

    from rich.console import Console

    from conformance._runner import run_suite

    console = Console(stderr=True)
    t0 = time.monotonic()
    progress_cb, stop = _progress(console, enabled=not args.no_progress and console.is_terminal)
    try:
        results = run_suite(
            adapter=args.adapter,
            dialect=args.dialect,
            engine_url=args.engine_url,
            only=only,
            orchestrator_url=args.orchestrator_url,
            orchestrator_pool=args.orchestrator_pool,
            orchestrator_token_env=args.orchestrator_token_env,
            level=args.level,
            requirements=args.requirement,
            seed=args.seed,
            out=args.out,
            jobs=jobs,
            progress=progress_cb,
            pytest_args=["-k", args.keyword] if args.keyword else (),
        )
    finally:
        stop()
    wall = time.monotonic() - t0
    results.wall_time_s = wall
    out = Path(args.out) if args.out is not None else Path("llorch-results") / results.run_id
    results.write(out / "results.json")
    _summary(results, fail_on=args.fail_on, out=out / "results.json", wall=wall)
    from reports._run_hook import bundle_run  # the proof bundle, written on failure too
    from reports.gate import finish_gate

    rc = bundle_run(
        args,
        results,
        {
            "adapter": args.adapter,
            "dialect": args.dialect,
            "engine_url": args.engine_url,
            "orchestrator_url": args.orchestrator_url,
            "only": only,
            "level": args.level,
            "requirements": args.requirement,
            "seed": args.seed,
        },
    )
    return finish_gate(gate, args, results, rc)


def _progress(console: Any, *, enabled: bool) -> tuple[Any, Any]:
    """A rich progress bar fed by the runner's callbacks; plain counts when not a terminal."""
    state: dict[str, Any] = {"total": 0, "done": 0}
    if not enabled:

        def plain(kind: str, value: Any) -> None:
            if kind == "total":
                state["total"] = value
                print(f"llorch-conformance: running {value} scenarios", file=sys.stderr)
            else:
                state["done"] += 1
                if state["done"] % 50 == 0:
                    print(f"llorch-conformance: {state['done']}/{state['total']}", file=sys.stderr)

        return plain, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(
        TextColumn("[bold]conformance"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    prog.start()
    task = prog.add_task("run", total=None)

    def cb(kind: str, value: Any) -> None:
        if kind == "total":
            prog.update(task, total=value)
        else:
            prog.advance(task)

    return cb, prog.stop


_STYLE = {
    "pass": "[green]pass[/]",
    "fail": "[bold red]FAIL[/]",
    "unsupported": "[yellow]unsupported[/]",
    "skipped": "[dim]skipped[/]",
    "error": "[bold magenta]ERROR[/]",
}


def _cell(verdict: Any) -> str:
    """A table cell; a declaration shows as ``pass, declared: cancel``, never a plain pass."""
    if verdict.declared and verdict.status in ("pass-declared", "unsupported", "fail"):
        style = {"pass-declared": "cyan", "unsupported": "yellow", "fail": "bold red"}
        return f"[{style[verdict.status]}]{verdict.label}[/]"
    return _STYLE.get(verdict.status, "?")


def _summary(results: Any, *, fail_on: str, out: Path, wall: float) -> None:
    from rich.console import Console
    from rich.table import Table

    from conformance._catalogue import CATALOGUE, PENDING_COMPONENTS

    console = Console() if Console().is_terminal else Console(width=200)
    verdicts = {(v.adapter, v.requirement): v for v in results.verdicts()}
    adapters = results.adapters()
    table = Table(title=f"conformance run {results.run_id} (seed {results.seed})")
    table.add_column("requirement", no_wrap=True)
    table.add_column("level", no_wrap=True)
    for a in adapters:
        table.add_column("run-wide" if a == "*" else a)
    for r in CATALOGUE:
        if r.pending is not None:
            continue
        cells = [
            _cell(verdicts[(a, r.id)]) if (a, r.id) in verdicts else "[dim]-[/]" for a in adapters
        ]
        if all(c == "[dim]-[/]" for c in cells):
            continue
        table.add_row(r.id, r.level.value, *cells)
    console.print(table)
    counts = results.counts()
    console.print(
        "scenarios: "
        + ", ".join(f"{counts[k]} {k}" for k in ("pass", "fail", "unsupported", "skipped", "error"))
    )
    pending = [r for r in CATALOGUE if r.pending is not None]
    console.print(f"not covered (layer not built): {len(pending)} IDs")
    for comp, why in PENDING_COMPONENTS.items():
        ids = [r.id for r in pending if r.pending == comp]
        if ids:
            console.print(f"  [dim]{comp} ({why}): {', '.join(ids)}[/]")
    uncovered = results.uncovered()
    if uncovered:
        console.print(f"no scenario ran in this selection for: {', '.join(uncovered)}")
    failing = results.failing(fail_on=fail_on)
    for v in failing[:40]:
        console.print(
            f"[red]FAIL[/] {v.adapter} {v.requirement}: {v.message[:200]}",
            markup=True,
            highlight=False,
        )
    if len(failing) > 40:
        console.print(f"... and {len(failing) - 40} more")
    for s in results.errors()[:20]:
        console.print(
            f"[magenta]ERROR[/] {s.adapter} {s.scenario}: {s.message[:300]}", highlight=False
        )
    console.print(f"results: {out}")
    console.print(f"wall time: {wall:.1f} s")
