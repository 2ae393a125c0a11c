"""Benchmark: wall time of ``llorch-conformance run``, old tree vs this tree, side by side.

Issue 18.1 asks for a run at least 3x faster than main before the speed work (commit 84df667),
measured on the same machine in one sitting. This script:

* makes the old tree a git worktree (``git worktree add /tmp/bench-old 84df667`` unless
  ``--old-tree`` names one) and runs both trees from the shared interpreter with ``PYTHONPATH``
  pointing at the tree (``llorch_conformance`` resolves to that tree's package);
* for each kind of run — ``one`` (``run --only vllm``), ``vendor`` (``run --adapter
  acme_adapter:make --dialect vllm``, the vendor adapter of tests/vendor) and ``full`` (``run``)
  — alternates old and new, ``--runs`` times each (default 3), and prints each wall time (the
  whole command, as a user waits for it: start-up, run, proof bundle), the medians and the ratio;
* compares the verdicts of every old and new run of a kind (per (adapter, requirement) and per
  scenario, :mod:`benches.compare_verdicts`) and prints any difference;
* ``--flake N``: runs the full default run of this tree N times under load (``--burners`` busy
  processes, default 2, one per core of a 2-core CI machine) and prints every verdict flip.

It prints; it never asserts a speed. Usage::

    python benches/bench_run.py                      # one, vendor and full; 3 runs each side
    python benches/bench_run.py --kinds one --runs 1
    python benches/bench_run.py --kinds none --flake 5 --burners 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benches`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benches.compare_verdicts import find_results, flips, load_verdicts

NEW_TREE = Path(__file__).resolve().parents[1]
OLD_REF = "84df667"
KINDS: dict[str, list[str]] = {
    "one": ["--only", "vllm"],
    "vendor": ["--adapter", "acme_adapter:make", "--dialect", "vllm"],
    "full": [],
}


def ensure_old_tree(path: Path, ref: str) -> Path:
    """A git worktree of ``ref`` at ``path`` (created once; reused when it is already there)."""
    if (path / "llorch_conformance").exists():
        return path
    subprocess.run(
        ["git", "-C", str(NEW_TREE), "worktree", "add", "--detach", str(path), ref],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return path


_CPU: list[float] = []  # CPU seconds (user + system, the run and all its workers) of each run


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(tree: Path, kind: str, out: Path, extra: Sequence[str] = ()) -> float:
    """One ``run`` of ``tree``; its wall time in seconds (its CPU time is appended to ``_CPU``:
    steadier than wall time on a shared machine). The exit code is printed, not judged (a
    failing verdict is a verdict; the comparison shows whether old and new agree)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "tests" / "vendor")])
    env.pop("LLORCH_RUN_ID", None)
    cmd = [
        sys.executable, "-m", "llorch_conformance", "run", *KINDS[kind], "--out", str(out),
        "--no-progress", *extra,
    ]  # fmt: skip
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env, cwd=str(tree), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
    )
    wall = time.perf_counter() - t0
    _CPU.append(_children_cpu() - cpu0)
    if proc.returncode not in (0, 1):
        tail = proc.stdout.decode("utf-8", "replace")[-2000:]
        print(f"  ! {tree.name} {kind}: exit {proc.returncode}\n{tail}", file=sys.stderr)
    return wall


def _burn() -> None:
    while True:
        pass


@contextlib.contextmanager
def burners(n: int) -> Iterator[None]:
    """``n`` busy processes for the duration (the loaded-machine condition of the flake check)."""
    procs = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(5)


def session_wall(out: Path) -> float | None:
    """The run's own ``wall_time_s`` (the pytest session: workers, scenarios, teardown); the
    rest of a command's wall time is the CLI's start-up and the proof bundle written after."""
    try:
        return float(json.loads(find_results(out).read_text("utf-8"))["wall_time_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def compare_kind(kind: str, old: Path, new: Path, runs: int, scratch: Path) -> None:
    walls: dict[str, list[float]] = {"old": [], "new": []}
    cpus: dict[str, list[float]] = {"old": [], "new": []}
    sessions: dict[str, list[float]] = {"old": [], "new": []}
    outs: dict[str, list[Path]] = {"old": [], "new": []}
    for i in range(runs):
        for side, tree in (("old", old), ("new", new)):
            out = scratch / f"{kind}-{side}-{i}"
            wall = run_once(tree, kind, out)
            walls[side].append(wall)
            cpus[side].append(_CPU[-1])
            outs[side].append(out)
            sess = session_wall(out)
            if sess is not None:
                sessions[side].append(sess)
            split = (
                f"  (session {sess:5.1f} s, start-up + bundle {wall - sess:5.1f} s)" if sess else ""
            )
            print(
                f"  {kind:6s} {side} run {i + 1}: {wall:6.1f} s{split}  CPU {_CPU[-1]:5.1f} s",
                flush=True,
            )
    m_old, m_new = statistics.median(walls["old"]), statistics.median(walls["new"])
    print(
        f"{kind:6s} median old {m_old:6.1f} s  new {m_new:6.1f} s  "
        f"ratio {m_old / m_new:4.1f}x  (runs: {runs} each, alternating)"
    )
    c_old, c_new = statistics.median(cpus["old"]), statistics.median(cpus["new"])
    print(f"{kind:6s} CPU (user+system, all processes): old {c_old:6.1f} s  new {c_new:6.1f} s")
    if sessions["old"] and sessions["new"]:
        s_old, s_new = statistics.median(sessions["old"]), statistics.median(sessions["new"])
        print(
            f"{kind:6s} session only: old {s_old:6.1f} s  new {s_new:6.1f} s  {s_old / s_new:4.1f}x"
        )
    verdicts = [load_verdicts(p) for p in outs["old"] + outs["new"]]
    diff = flips(verdicts)
    print(f"{kind:6s} verdicts old vs new: {len(diff)} difference(s)")
    for key, seen in diff[:40]:
        print(f"    DIFF {key}: " + " | ".join(seen))


def flake_check(new: Path, n: int, n_burners: int, scratch: Path) -> None:
    outs = []
    with burners(n_burners):
        for i in range(n):
            out = scratch / f"flake-{i}"
            wall = run_once(new, "full", out)
            outs.append(out)
            print(f"  flake run {i + 1}/{n} under {n_burners} burners: {wall:6.1f} s", flush=True)
    verdicts = [load_verdicts(p) for p in outs]
    diff = flips(verdicts)
    print(f"flake check: {n} loaded full runs, {len(diff)} verdict flip(s)")
    for key, seen in diff:
        print(f"    FLIP {key}: " + " | ".join(seen))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="one,vendor,full", help="one,vendor,full or none")
    ap.add_argument("--runs", type=int, default=3, help="runs of each side per kind")
    ap.add_argument("--old-tree", type=Path, default=Path("/tmp/bench-old"))
    ap.add_argument("--old-ref", default=OLD_REF)
    ap.add_argument("--flake", type=int, default=0, metavar="N", help="N loaded full runs")
    ap.add_argument("--burners", type=int, default=2, help="busy processes during --flake")
    ap.add_argument("--keep", action="store_true", help="keep the runs' output directories")
    args = ap.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k and k != "none"]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or args.runs < 1 or args.flake < 0 or args.burners < 0:
        print(f"bench_run: bad arguments ({unknown or 'counts'})", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="bench-run-"))
    try:
        print(f"machine: {os.cpu_count()} cores; new tree {NEW_TREE}")
        if kinds:
            old = ensure_old_tree(args.old_tree, args.old_ref)
            print(f"old tree {old} ({args.old_ref})")
            for kind in kinds:
                compare_kind(kind, old, NEW_TREE, args.runs, scratch)
        if args.flake:
            flake_check(NEW_TREE, args.flake, args.burners, scratch)
    finally:
        if args.keep:
            print(f"runs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
