"""Benchmark: the start-up of ``llorch-conformance``, old tree vs this tree, side by side.

Issue 18: before its first scenario a run pays a fixed cost — the interpreter, the command line,
resolving the targets, pytest's configuration, the step library, collecting the features. This
script measures that part alone: each ``run`` is stopped at the end of collection by a tiny
plugin (``PYTEST_PLUGINS``) that prints the number of collected scenarios and the process's CPU
time, so the wall time of the process is *process start -> collected*. It also times the whole of
the quick commands (``--help``, ``list requirements``, ``explain``).

* The old tree is a git worktree of ``84df667`` (``--old-ref``) unless ``--old-tree`` names one;
  both run from this interpreter with ``PYTHONPATH`` pointing at the tree.
* Old and new alternate, ``--runs`` times each (default 3); it prints every run, the medians and
  the ratio, wall and CPU (CPU is steadier on a shared machine).
* Bytecode: by default whatever the environment says (``PYTHONDONTWRITEBYTECODE=1`` makes every
  process compile our sources, as a source tree on such a machine does); ``--pycache DIR`` unsets
  it and gives each tree its own warm ``PYTHONPYCACHEPREFIX`` (as an installed wheel has ``.pyc``).
* Old runs use ``-j 1`` (with pytest-xdist the old controller collects nothing); new runs use
  ``--new-jobs`` (default ``auto``: the forked workers' parent collects in process).

It prints; it never asserts a speed. Usage::

    python benches/bench_startup.py
    python benches/bench_startup.py --kinds vendor --runs 5 --pycache /tmp/pyc
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benches`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benches.bench_run import KINDS, NEW_TREE, OLD_REF, ensure_old_tree

_STOP_PLUGIN = '''"""Stop a run at the end of collection: the count and this process's CPU time."""
import os, resource, sys

def pytest_collection_finish(session):
    r = resource.getrusage(resource.RUSAGE_SELF)
    sys.stderr.write(f"STARTUP-COLLECTED {len(session.items)} {r.ru_utime + r.ru_stime:.4f}\\n")
    sys.stderr.flush()
    os._exit(0)
'''

QUICK: dict[str, list[str]] = {
    "help": ["--help"],
    "list": ["list", "requirements"],
    "explain": ["explain", "WA-INT-3002"],
}


def _env(tree: Path, plugin_dir: str, pycache: Path | None, *, stop: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([plugin_dir, str(tree), str(tree / "tests" / "vendor")])
    env.pop("LLORCH_RUN_ID", None)
    env.pop("PYTEST_ADDOPTS", None)
    if stop:
        env["PYTEST_PLUGINS"] = "llorch_bench_stop"
    else:
        env.pop("PYTEST_PLUGINS", None)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache / tree.name)
    return env


def to_collected(
    tree: Path, args: Sequence[str], plugin_dir: str, pycache: Path | None, cwd: str
) -> tuple[float, float, int]:
    """(wall s, CPU s, scenarios) of one ``run`` from process start to the end of collection."""
    with tempfile.TemporaryDirectory(prefix="bench-startup-out-") as out:
        cmd = [sys.executable, "-m", "llorch_conformance", "run", *args, "--out", out]
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd,
            env=_env(tree, plugin_dir, pycache, stop=True),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("STARTUP-COLLECTED")), None)
    if line is None:
        raise SystemExit(f"{tree.name}: the run did not reach collection:\n{proc.stderr[-2000:]}")
    _, count, cpu = line.split()
    return wall, float(cpu), int(count)


def whole(
    tree: Path, args: Sequence[str], plugin_dir: str, pycache: Path | None, cwd: str
) -> float:
    """Wall seconds of a whole quick command."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "llorch_conformance", *args],
        env=_env(tree, plugin_dir, pycache, stop=False),
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - t0


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old-tree", type=Path, default=None, help="a checkout of the old tree")
    ap.add_argument("--old-ref", default=OLD_REF, help=f"git ref of the old tree ({OLD_REF})")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kinds", default="vendor,one,full", help="run kinds: vendor, one, full")
    ap.add_argument("--quick", default="help,list,explain", help="quick commands (or none)")
    ap.add_argument("--new-jobs", default="auto", help="-j of the new tree's runs (auto)")
    ap.add_argument("--pycache", type=Path, default=None, help="warm bytecode caches here")
    a = ap.parse_args(argv)
    old = a.old_tree or ensure_old_tree(Path(tempfile.gettempdir()) / "bench-old", a.old_ref)
    new = NEW_TREE
    kinds = [k for k in a.kinds.split(",") if k in KINDS]
    quick = [q for q in a.quick.split(",") if q in QUICK]
    bytecode = (
        f"warm caches under {a.pycache}"
        if a.pycache
        else ("none (PYTHONDONTWRITEBYTECODE=1)" if os.environ.get("PYTHONDONTWRITEBYTECODE")
              else "as the environment has it")
    )  # fmt: skip
    print(f"old {old}  new {new}  bytecode: {bytecode}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-startup-") as plugin_dir,
        tempfile.TemporaryDirectory(prefix="bench-startup-cwd-") as cwd,
    ):
        Path(plugin_dir, "llorch_bench_stop.py").write_text(_STOP_PLUGIN, "utf-8")
        jobs = {"old": ["-j", "1"], "new": ["-j", a.new_jobs]}
        summary: list[str] = []
        for kind in kinds:
            walls: dict[str, list[float]] = {"old": [], "new": []}
            cpus: dict[str, list[float]] = {"old": [], "new": []}
            if a.pycache is not None:  # warm the caches (not measured)
                for side, tree in (("old", old), ("new", new)):
                    to_collected(tree, [*KINDS[kind], *jobs[side]], plugin_dir, a.pycache, cwd)
            for i in range(a.runs):
                order = (("old", old), ("new", new)) if i % 2 == 0 else (("new", new), ("old", old))
                for side, tree in order:
                    w, c, n = to_collected(
                        tree, [*KINDS[kind], *jobs[side]], plugin_dir, a.pycache, cwd
                    )
                    walls[side].append(w)
                    cpus[side].append(c)
                    print(f"  {kind:6} {side}  {w:6.3f} s wall  {c:6.3f} s CPU  ({n} collected)")
            wo, wn = _median(walls["old"]), _median(walls["new"])
            co, cn = _median(cpus["old"]), _median(cpus["new"])
            summary.append(
                f"{kind:8} start -> collected  wall {wo:.3f} -> {wn:.3f} s ({wo / wn:.2f}x)  "
                f"CPU {co:.3f} -> {cn:.3f} s ({co / cn:.2f}x)"
            )
        for q in quick:
            times: dict[str, list[float]] = {"old": [], "new": []}
            for i in range(a.runs):
                order = (("old", old), ("new", new)) if i % 2 == 0 else (("new", new), ("old", old))
                for side, tree in order:
                    times[side].append(whole(tree, QUICK[q], plugin_dir, a.pycache, cwd))
            to, tn = _median(times["old"]), _median(times["new"])
            summary.append(f"{q:8} whole command      wall {to:.3f} -> {tn:.3f} s ({to / tn:.2f}x)")
    print(f"medians of {a.runs} (old -> new):")
    for line in summary:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
