"""``llorch-conformance run``: the suite against adapters, a summary table, a results file.

Exit codes (conformance.cli): 0 every MUST requirement passed (or was declared unsupported),
1 conformance failures (``--fail-on should`` also counts SHOULD failures), 2 harness or usage
errors — including a scenario that hit a harness error, because then the verdict is unknown.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ._options import add_cli_options

__all__ = ["register"]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run the conformance suite against adapters and write results.json",
        description="Run the conformance suite. Default target: every built-in adapter against "
        "its mock engine.",
    )
    add_cli_options(p)  # --adapter, --dialect, --only, ..., --seed: shared with the pytest plugin
    p.add_argument(
        "--fail-on",
        choices=("must", "should"),
        default="must",
        help="exit 1 on failing MUST (default) or also SHOULD requirements",
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
        help="the output root (alias of --proof-dir; default $LLORCH_PROOF_DIR or "
        "./.proof_bundle): each run goes to DIR/conformance/<run-id>/ (proof bundle and "
        "results.json), gate reports to DIR/gate/<run-id>/",
    )
    p.add_argument(
        "--keep",
        type=int,
        default=None,
        metavar="N",
        help="after the run, keep only the N newest runs this tool wrote under the output root "
        "(nothing else there is ever deleted)",
    )
    p.add_argument(
        "-j",
        "--jobs",
        default="auto",
        metavar="N|auto",
        help="parallel workers (auto: 3 per core, min 6; with --parallel xdist 2 per core, min "
        "4, and 1 per core for one adapter)",
    )
    p.add_argument(
        "--parallel",
        choices=("fork", "xdist"),
        default=None,
        help="how the workers start: fork (default where os.fork exists: forked from the "
        "collected session, no start-up per worker) or xdist (pytest-xdist, a fresh "
        "interpreter per worker)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="no progress line (plain counts on stderr)"
    )
    p.add_argument(
        "--lf",
        "--last-failed",
        dest="last_failed",
        action="store_true",
        help="rerun only the scenarios that failed or errored in the previous run under the "
        "output root (all of them when it had none, like pytest)",
    )
    p.add_argument(
        "-x",
        "--exitfirst",
        dest="exitfirst",
        action="store_true",
        help="stop at the first failing scenario (= --maxfail 1)",
    )
    p.add_argument(
        "--maxfail",
        type=int,
        default=None,
        metavar="N",
        help="stop after N failing scenarios (the rest is reported not run)",
    )
    p.add_argument(
        "--collect-only",
        action="store_true",
        help="list the scenarios the selection would run (adapter, requirements, name); run none",
    )
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
    from llorch_conformance.reports import (
        add_run_options,  # --proof-dir, --no-bundle, --sign-key, ...
    )

    add_run_options(p)
    from llorch_conformance.reports.gate import (
        add_gate_options,  # --baseline, --max-regression, --waivers
    )

    add_gate_options(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from llorch_conformance.adapters.api import UsageError
    from llorch_conformance.conformance._catalogue import is_known

    from ._preflight import check_run_args, parse_jobs, preflight

    for rid in args.requirement:
        if not is_known(rid):
            raise UsageError(
                f"--requirement {rid!r} is not a catalogue ID (see 'llorch-conformance list requirements')"
            )
    jobs = parse_jobs(args.jobs)
    if args.engine_url and not args.dialect:
        raise UsageError("--engine-url needs --dialect: which engine listens there?")
    check_run_args(args)
    if not args.collect_only:
        preflight(args)  # first: a dead URL is refused before anything heavy is imported
    only = tuple(x for x in (args.only or "").split(",") if x)
    from llorch_conformance.reports.gate import (  # bad waivers/baseline fail before the run
        finish_gate,
        prepare_gate,
    )

    gate = prepare_gate(args)
    from ._outroot import output_root

    root = output_root(args.out, args.proof_dir)
    scope = args.scope or _default_scope(args)
    select = _last_failed(root) if args.last_failed else None
    if args.collect_only:
        return _collect_only(args, only, scope, select)
    # Everything of this run goes under the one root: the bundle writer and the gate read these.
    args.proof_dir = str(root)
    if args.worker_url:  # the rbee worker target (conformance.rbee)
        from llorch_conformance.conformance.rbee._cli import worker_run

        args.out = None  # its results.json lives in the bundle, stored once
        worker_results, rc = worker_run(args)
        run_dir = _finish_run_dir(args, root, worker_results)
        args.out = root / "gate" / run_dir.name
        rc = finish_gate(gate, args, worker_results, rc)
        _report_sizes(args, root, run_dir)
        return rc

    from rich.console import Console

    from llorch_conformance.conformance._runner import run_suite

    console = Console(stderr=True)
    t0 = time.monotonic()
    progress_cb, stop = _progress(console, enabled=not args.no_progress and console.is_terminal)
    maxfail = 1 if args.exitfirst else args.maxfail
    run_kwargs: dict[str, Any] = {
        "adapter": args.adapter,
        "dialect": args.dialect,
        "engine_url": args.engine_url,
        "orchestrator_url": args.orchestrator_url,
        "only": only,
        "level": args.level,
        "requirements": args.requirement,
        "seed": args.seed,
        "scope": scope,
        "adapter_name": args.adapter_name,
        "adapter_version": args.adapter_version,
    }
    if select is not None:
        run_kwargs["select"] = sorted(select)
    with tempfile.TemporaryDirectory(prefix="llorch-raw-") as raw:
        try:
            results = run_suite(
                **run_kwargs,
                orchestrator_pool=args.orchestrator_pool,
                orchestrator_token_env=args.orchestrator_token_env,
                out=Path(raw),
                jobs=jobs,
                parallel=args.parallel,
                progress=progress_cb,
                pytest_args=["-k", args.keyword] if args.keyword else (),
                maxfail=maxfail,
            )
        finally:
            stop()
    wall = time.monotonic() - t0
    results.wall_time_s = wall
    narrowed = bool(args.requirement or args.keyword or select is not None)
    from llorch_conformance.reports import (
        bundle_run,  # the proof bundle, written on failure too
    )

    rc = bundle_run(args, results, run_kwargs)
    run_dir = _finish_run_dir(args, root, results)
    # Failures first (after the bundle, so each block's evidence path exists), then the verdict
    # table and the counts as the closing summary — pytest's order.
    _failures(results, fail_on=args.fail_on, run_dir=run_dir)
    _summary(
        results, fail_on=args.fail_on, wall=wall, narrowed=narrowed, maxfail=maxfail, scope=scope
    )
    args.out = root / "gate" / run_dir.name  # where finish_gate writes gate.md/gate.json
    rc = finish_gate(gate, args, results, rc)
    _report_sizes(args, root, run_dir)
    return rc


def _default_scope(args: argparse.Namespace) -> str:
    """A vendor adapter or a live engine is judged on the adapter's scenarios; the orchestrator
    target keeps every scenario it can drive (all); the worker target is the worker's."""
    if args.worker_url:
        return "worker"
    if args.adapter or args.engine_url:
        return "adapter"
    return "all"


def _last_failed(root: Path) -> frozenset[str] | None:
    """``--lf``: the scenario keys that failed in the newest run under ``root``.

    None (run everything, as pytest does) when that run had no failure; a usage error when the
    root holds no run of this tool."""

    from ._outroot import last_failures

    found = last_failures(root)
    if found is None:
        from llorch_conformance.adapters.api import UsageError

        raise UsageError(f"--lf: no previous run under {root} (give the same --out as that run)")
    path, failed = found
    if not failed:
        print(f"llorch-conformance: --lf: no failures in {path}; running the whole selection")
        return None
    print(f"llorch-conformance: --lf: rerunning {len(failed)} failed scenario(s) of {path}")
    return frozenset(failed)


def _collect_only(
    args: argparse.Namespace, only: tuple[str, ...], scope: str, select: frozenset[str] | None
) -> int:
    """``--collect-only``: what would run, one line per scenario, and the count; nothing runs."""
    from llorch_conformance.conformance._runner import collect_suite

    items = collect_suite(
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
        scope=scope,
        select=select,
        pytest_args=["-k", args.keyword] if args.keyword else (),
        adapter_name=args.adapter_name,
        adapter_version=args.adapter_version,
    )
    width = max((len(i.adapter) for i in items), default=1)
    for i in items:
        reqs = ",".join(i.requirements) or "-"
        print(f"{i.adapter:<{width}}  {reqs:<32}  {i.name}")
    adapters = sorted({i.adapter for i in items})
    print(f"{len(items)} scenario(s) selected (scope {scope}; adapters: {', '.join(adapters)})")
    if args.adapter:
        from ._targets import resolve_targets

        (t,) = resolve_targets(
            adapter=args.adapter,
            dialect=args.dialect,
            engine_url=args.engine_url,
            probe=False,
            adapter_name=args.adapter_name,
            adapter_version=args.adapter_version,
        )
        for line in _identities(SimpleNamespace(target={"targets": [t.describe()]})):
            print(line)
    return 0


def _finish_run_dir(args: argparse.Namespace, root: Path, results: Any) -> Path:
    """The run's directory under the root (the bundle, or results.json alone with --no-bundle),
    registered as created by this tool."""
    from llorch_conformance.reports import TestType, safe_name

    from ._outroot import register_run

    written = getattr(args, "bundle_path", None)
    if written is not None:
        run_dir = Path(written)
    else:  # --no-bundle: results.json alone, in a fresh directory of its own
        parent = root / TestType.CONFORMANCE.value
        parent.mkdir(parents=True, exist_ok=True)
        rid = safe_name(str(results.run_id))
        for n in range(1, 1000):
            run_dir = parent / (rid if n == 1 else f"{rid}-{n}")
            try:
                run_dir.mkdir()
                break
            except FileExistsError:
                continue
        results.write(run_dir / "results.json")
    register_run(root, run_dir)
    return run_dir


def _report_sizes(args: argparse.Namespace, root: Path, run_dir: Path) -> None:
    """Where the run went, how big it and the root are, and ``--keep`` pruning."""
    from ._outroot import dir_size, human_size, list_runs, prune, register_run

    gate_dir = root / "gate" / run_dir.name
    if gate_dir.is_dir():
        register_run(root, gate_dir)
    removed = prune(root, args.keep) if args.keep is not None else []
    size, files = dir_size(run_dir)
    print(f"run directory: {run_dir} ({files} files, {human_size(size)})")
    runs = list_runs(root)
    total, _ = dir_size(root)
    tail = "" if args.keep is not None else "; --keep N keeps the N newest"
    print(f"output root: {root} ({len(runs)} run(s), {human_size(total)}{tail})")
    if removed:
        print(f"removed {len(removed)} older run director(y/ies) (--keep {args.keep})")


def _progress(console: Any, *, enabled: bool) -> tuple[Any, Any]:
    """A progress line fed by the runner's callbacks, with live pass/fail counts.

    On a terminal: a rich bar ``conformance ━━━ 37/120 0:00:12  31 passed  4 failed  2 unsupported``;
    otherwise a plain line on stderr every 50 scenarios (and at the end) with the same counts.
    """
    state: dict[str, Any] = {"total": 0, "done": 0}
    counts: dict[str, int] = dict.fromkeys(("pass", "fail", "error", "unsupported", "skipped"), 0)

    def live() -> str:
        words = {"pass": "passed", "fail": "failed", "error": "errors"}
        parts = [f"{counts[k]} {words.get(k, k)}" for k in counts if counts[k] or k in words]
        return "  ".join(parts)

    if not enabled:

        def plain(kind: str, value: Any) -> None:
            if kind == "total":
                state["total"] = value
                print(f"llorch-conformance: running {value} scenarios", file=sys.stderr)
                return
            state["done"] += 1
            counts[str(value) if value in counts else "pass"] += 1
            if state["done"] % 50 == 0 or state["done"] == state["total"]:
                print(
                    f"llorch-conformance: {state['done']}/{state['total']}  {live()}",
                    file=sys.stderr,
                )

        return plain, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(
        TextColumn("[bold]conformance"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[live]}"),
        console=console,
        transient=True,
    )
    prog.start()
    task = prog.add_task("run", total=None, live="")

    def cb(kind: str, value: Any) -> None:
        if kind == "total":
            prog.update(task, total=value)
        else:
            counts[str(value) if value in counts else "pass"] += 1
            prog.update(
                task,
                advance=1,
                live=f"[green]{counts['pass']} passed[/]  [red]{counts['fail']} failed[/]"
                + (f"  [magenta]{counts['error']} errors[/]" if counts["error"] else ""),
            )

    return cb, prog.stop


_STYLE = {
    "pass": "[green]pass[/]",
    "fail": "[bold red]FAIL[/]",
    "unsupported": "[yellow]unsupported[/]",
    "skipped": "[dim]skipped[/]",
    "error": "[bold magenta]ERROR[/]",
}


def _cell(verdict: Any) -> str:
    """A table cell; a declaration shows as ``pass, declared: cancel``, never a plain pass; a
    requirement its failing scenarios left unjudged shows as ``unproven`` (a MUST fails the run)."""
    if getattr(verdict, "unproven", False):
        return "[red]unproven[/]"
    if verdict.declared and verdict.status in ("pass-declared", "unsupported", "fail"):
        style = {"pass-declared": "cyan", "unsupported": "yellow", "fail": "bold red"}
        return f"[{style[verdict.status]}]{verdict.label}[/]"
    return _STYLE.get(verdict.status, "?")


def _summary(
    results: Any,
    *,
    fail_on: str,
    wall: float,
    narrowed: bool,
    maxfail: int | None,
    scope: str = "all",
) -> None:
    from rich.console import Console
    from rich.table import Table

    from llorch_conformance.conformance._catalogue import CATALOGUE, PENDING_COMPONENTS

    console = Console() if Console().is_terminal else Console(width=200)
    verdicts = {(v.adapter, v.requirement): v for v in results.verdicts()}
    adapters = results.adapters()
    for line in _identities(results):
        console.print(line, highlight=False, markup=False)
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
    # IDs no layer of this project can prove yet (AUTH-1006) are news only to whole-suite and
    # orchestrator runs; a vendor adapter's report must not carry them.
    pending = [r for r in CATALOGUE if r.pending is not None]
    if pending and scope in ("all", "orchestrator"):
        console.print(f"not covered (layer not built): {len(pending)} IDs")
        for comp, why in PENDING_COMPONENTS.items():
            ids = [r.id for r in pending if r.pending == comp]
            if ids:
                console.print(f"  [dim]{comp} ({why}): {', '.join(ids)}[/]")
    uncovered = results.uncovered()
    if scope != "all":  # only what this scope and these dialects could have run is news
        expected = _expected_ids(scope, results)
        uncovered = [r for r in uncovered if r in expected]
    if uncovered and narrowed:  # -k/--requirement/--lf chose the IDs: the rest is not news
        asked = [
            r for r in getattr(results, "target", {}).get("requirements", []) if r in uncovered
        ]
        if asked:
            console.print(f"no scenario ran in this selection for: {', '.join(asked)}")
    elif uncovered:
        console.print(f"no scenario ran in this selection for: {', '.join(uncovered)}")
    if maxfail is not None and results.counts()["fail"] + results.counts()["error"] >= maxfail:
        console.print(
            f"[yellow]stopped after {maxfail} failing scenario(s) (-x/--maxfail): "
            "the rest of the selection did not run[/]"
        )
    console.print(f"wall time: {wall:.1f} s")


def _failures(results: Any, *, fail_on: str, run_dir: Path) -> None:
    """Failing and erroring scenarios as blocks grouped by root cause (reports.render_console),
    after the bundle is written so each block's evidence path exists."""
    from rich.console import Console

    from llorch_conformance.reports import group_failures, render_console

    groups = group_failures(
        results, bundle_dir=run_dir, fail_on="should" if fail_on == "should" else "must"
    )
    if groups:
        console = Console() if Console().is_terminal else Console(width=200)
        render_console(groups, console=console)


def _expected_ids(scope: str, results: Any) -> set[str]:
    """IDs the packaged scenarios of ``scope`` prove for the run's dialects."""
    from ._cmd_explain import packaged_scenarios
    from ._guide import scope_of_area

    targets = (getattr(results, "target", {}) or {}).get("targets", []) or []
    dialects = {str(t.get("dialect")) for t in targets if isinstance(t, dict)}
    ids: set[str] = set()
    for sc in packaged_scenarios():
        if scope_of_area(sc.area) != scope:
            continue
        wanted = {t.split(":", 1)[1] for t in sc.tags if t.startswith("dialect:")}
        if wanted and not wanted & dialects:
            continue
        ids.update(sc.tags)
    return ids


def _identities(results: Any) -> list[str]:
    """``name version (distribution)`` of each vendor target of the run (shown with the table)."""
    out = []
    for t in (getattr(results, "target", {}) or {}).get("targets", []) or []:
        if not isinstance(t, dict) or t.get("origin") not in ("vendor", "entry-point"):
            continue
        line = f"adapter {t.get('name')} {t.get('version') or '(version unknown)'}"
        if t.get("distribution") and t.get("distribution") != t.get("name"):
            line += f" (distribution {t.get('distribution')})"
        out.append(line + f", dialect {t.get('dialect')}, {t.get('spec')}")
    return out
