"""One output root per run: where runs go, which ones this tool made, ``--keep``, ``--lf``.

Layout (the proof-bundle standard's ``<base>/<type>/<run_id>/``, PB-1001, with base = the root)::

    <root>/                         --out DIR = --proof-dir DIR = $LLORCH_PROOF_DIR, default
                                    ./.proof_bundle (the standard's base, PB-1003)
      .llorch-runs                  the run directories this tool created, one per line
      conformance/<run_id>/         the run: its proof bundle, results.json (stored once)
      gate/<run_id>/                gate.md, gate.json of a run with --baseline/--waivers

Why an index file: ``--keep N`` deletes old runs, and must never delete anything this tool did
not create — a directory a user put under the root, a file, a symlink. Only directories listed
in the index *and* still holding a results.json of ours (schema, run id) are candidates; every
listed path is re-validated (one safe name under ``conformance/`` or ``gate/``, inside the root,
not a symlink) because the index is a file on disk like any other.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from llorch_conformance.adapters.api import UsageError

__all__ = [
    "DEFAULT_ROOT",
    "INDEX",
    "RunDir",
    "dir_size",
    "human_size",
    "last_failures",
    "list_runs",
    "output_root",
    "prune",
    "register_run",
]

DEFAULT_ROOT = ".proof_bundle"
INDEX = ".llorch-runs"
_KINDS = ("conformance", "gate")
_MAX_RESULTS_BYTES = 256 * 1024 * 1024  # a results.json larger than this is not read (--lf)
_MAX_INDEX_BYTES = 4 * 1024 * 1024


def output_root(
    out: str | os.PathLike[str] | None, proof_dir: str | os.PathLike[str] | None
) -> Path:
    """``--out`` and ``--proof-dir`` are aliases; then ``$LLORCH_PROOF_DIR``; then the default."""
    if out is not None and proof_dir is not None and Path(out) != Path(proof_dir):
        raise UsageError(
            f"--out {out} and --proof-dir {proof_dir} name the one output root: give one"
        )
    chosen = out if out is not None else proof_dir
    if chosen is None:
        chosen = os.environ.get("LLORCH_PROOF_DIR") or DEFAULT_ROOT
    root = Path(chosen)
    if root.exists() and not root.is_dir():
        raise UsageError(f"output root {root} exists and is not a directory")
    return root


@dataclass(frozen=True)
class RunDir:
    """A run directory this tool created (validated)."""

    path: Path
    rel: str  # "conformance/<name>"
    mtime: float


def _safe_rel(rel: str) -> bool:
    parts = rel.split("/")
    return (
        len(parts) == 2
        and parts[0] in _KINDS
        and bool(parts[1])
        and parts[1] not in (".", "..")
        and not parts[1].startswith(".")
        and "\\" not in parts[1]
        and "\x00" not in parts[1]
    )


def _read_index(root: Path) -> list[str]:
    idx = root / INDEX
    try:
        if idx.is_symlink() or not idx.is_file() or idx.stat().st_size > _MAX_INDEX_BYTES:
            return []
        lines = idx.read_text("utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return list(dict.fromkeys(line.strip() for line in lines if _safe_rel(line.strip())))


def register_run(root: Path, run_dir: Path) -> None:
    """Record ``run_dir`` (``<root>/<kind>/<name>``) as created by this tool."""
    rel = f"{run_dir.parent.name}/{run_dir.name}"
    if not _safe_rel(rel) or run_dir.parent.parent.resolve() != root.resolve():
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / INDEX, "a", encoding="utf-8") as fh:  # one short append: safe in parallel
        fh.write(rel + "\n")


def _ours(root: Path, rel: str) -> Path | None:
    """The directory of an index entry when it is still a run of ours, else None."""
    p = root / rel
    try:
        if p.is_symlink() or not p.is_dir():
            return None
        if p.resolve().parent.parent != root.resolve():
            return None
    except OSError:
        return None
    if rel.startswith("gate/"):
        return p
    res = p / "results.json"
    try:
        if res.is_symlink() or not res.is_file():
            return None
        with open(res, "rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return None
    return p if '"llorch-conformance/results/1"' in head else None


def list_runs(root: Path) -> list[RunDir]:
    """Run directories of ours under ``root``, oldest first."""
    runs: list[RunDir] = []
    for rel in _read_index(root):
        if not rel.startswith("conformance/"):
            continue
        p = _ours(root, rel)
        if p is not None:
            runs.append(RunDir(p, rel, (p / "results.json").stat().st_mtime))
    runs.sort(key=lambda r: r.mtime)
    return runs


def prune(root: Path, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest runs of ours (and their gate reports); return them."""
    runs = list_runs(root)
    doomed = runs[: max(0, len(runs) - keep)]
    removed: list[str] = []
    for r in doomed:
        for rel in (r.rel, f"gate/{r.path.name}"):
            p = _ours(root, rel)
            if p is None or (rel.startswith("gate/") and rel not in _read_index(root)):
                continue
            shutil.rmtree(p, ignore_errors=True)
            removed.append(rel)
    if removed:
        left = [rel for rel in _read_index(root) if rel not in removed]
        tmp = root / (INDEX + ".tmp")
        tmp.write_text("".join(f"{rel}\n" for rel in left), "utf-8")
        os.replace(tmp, root / INDEX)
    return removed


def last_failures(root: Path) -> tuple[Path, list[str]] | None:
    """The newest run of ours under ``root`` and the keys of the scenarios still failing; None:
    no run.

    Like pytest's ``--lf`` cache: the failed/errored scenarios of that run, plus — when that run
    was itself a ``--lf`` rerun (its ``run_config.json`` lists the selection) — the selected
    ones it did not get to (``-x`` stopped it), so ``-x`` then ``--lf`` walks every failure.
    """
    from ._runner import scenario_key

    runs = list_runs(root)
    if not runs:
        return None
    path = runs[-1].path / "results.json"
    try:
        if path.stat().st_size > _MAX_RESULTS_BYTES:
            raise UsageError(f"--lf: {path} is larger than {human_size(_MAX_RESULTS_BYTES)}")
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--lf: cannot read the last run's {path} ({exc})") from None
    scen = raw.get("scenarios") if isinstance(raw, dict) else None
    if not isinstance(scen, list):
        raise UsageError(f"--lf: {path} is not a llorch-conformance results.json")
    ran = [s for s in scen if isinstance(s, dict) and isinstance(s.get("nodeid"), str)]
    failed = [scenario_key(s["nodeid"]) for s in ran if s.get("status") in ("fail", "error")]
    seen = {scenario_key(s["nodeid"]) for s in ran}
    carried = [k for k in _previous_selection(runs[-1].path) if k not in seen]
    return runs[-1].path, list(dict.fromkeys([*failed, *carried]))


def _previous_selection(run_dir: Path) -> list[str]:
    """The ``--lf`` selection a run was made with (its bundle's run_config.json), else []."""
    cfg = run_dir / "run_config.json"
    try:
        if cfg.is_symlink() or not cfg.is_file() or cfg.stat().st_size > _MAX_INDEX_BYTES:
            return []
        raw = json.loads(cfg.read_text("utf-8"))
    except (OSError, ValueError):
        return []
    sel = raw.get("run_suite", {}).get("select") if isinstance(raw, dict) else None
    if not isinstance(sel, list):
        return []
    return [str(k) for k in sel if isinstance(k, str) and len(k) < 1000][:100_000]


def dir_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path`` (symlinks not followed)."""
    total = files = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
                files += 1
            except OSError:
                continue
    return total, files


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
