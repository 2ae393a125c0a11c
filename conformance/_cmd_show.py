"""``llorch-conformance show BUNDLE``: the verdicts and failures of a saved run, read-only.

A bundle is data from somewhere else (a CI artifact, a vendor's upload), so it is read as
hostile input:

* only ``BUNDLE/results.json`` is read — a regular file (no symlink), at most
  :data:`MAX_RESULTS_BYTES`; nothing named inside it (evidence paths, URLs, argv) is opened,
  contacted or evaluated: paths are only printed;
* every string is cleaned of terminal control characters (no escape sequence reaches the
  terminal) and bounded in length; nesting depth and list lengths are bounded;
* anything that is not a results file of this tool is one line, exit 2.

Exit code: 0 when shown (``--exit-code`` makes it the run's verdict instead: 1 when a MUST —
or with ``--fail-on should`` a SHOULD — failed, 2 when a scenario hit a harness error).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Final

__all__ = ["MAX_RESULTS_BYTES", "load_bundle_results", "register"]

MAX_RESULTS_BYTES: Final = 64 * 1024 * 1024
_MAX_STR: Final = 4000
_MAX_ITEMS: Final = 100_000
_MAX_DEPTH: Final = 32
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "show",
        help="show the verdicts and failures of a saved run (proof bundle or run directory)",
        description="Print a saved run's identity, counts, failures grouped by root cause and "
        "its verdict table, from BUNDLE/results.json only (read-only; nothing in the bundle is "
        "opened, run or contacted). A directory that is not a run of this tool is one line, "
        "exit 2.",
    )
    p.add_argument(
        "bundle",
        metavar="BUNDLE",
        help="a run directory, e.g. .proof_bundle/conformance/<run_id>",
    )
    p.add_argument(
        "--fail-on",
        choices=("must", "should"),
        default="must",
        help="which failing levels count as failures (default must)",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="list every verdict, not only the ones that are not pass",
    )
    p.add_argument(
        "--exit-code",
        action="store_true",
        help="exit with the run's verdict (0 pass, 1 failures, 2 harness errors) instead of 0",
    )
    p.set_defaults(func=_show)


def _clean(obj: Any, depth: int = 0) -> Any:
    """A bounded, control-character-free copy of parsed JSON."""
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(obj, str):
        s = _CONTROL.sub("?", obj)
        return s if len(s) <= _MAX_STR else s[: _MAX_STR - 3] + "..."
    if isinstance(obj, list):
        if len(obj) > _MAX_ITEMS:
            raise ValueError(f"a list of {len(obj)} items")
        return [_clean(x, depth + 1) for x in obj]
    if isinstance(obj, dict):
        if len(obj) > _MAX_ITEMS:
            raise ValueError(f"an object of {len(obj)} keys")
        return {_clean(str(k), depth + 1): _clean(v, depth + 1) for k, v in obj.items()}
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    raise ValueError(f"unexpected {type(obj).__name__}")


def load_bundle_results(bundle: str | Path) -> Any:
    """The :class:`~conformance.RunResults` of a run directory, read defensively (see module)."""
    from llorch_conformance.adapters.api import UsageError

    from ._results import STATUSES, RunResults

    root = Path(bundle)
    shown = str(root)[:200]
    if not root.is_dir():
        raise UsageError(f"show: {shown}: not a directory (give a run directory)")
    path = root / "results.json"
    try:
        if path.is_symlink() or not path.is_file():
            raise UsageError(
                f"show: {shown}: no results.json (not a run directory of llorch-conformance)"
            )
        size = path.stat().st_size
        if size > MAX_RESULTS_BYTES:
            raise UsageError(
                f"show: {shown}/results.json is {size} bytes (limit {MAX_RESULTS_BYTES})"
            )
        with open(path, "rb") as fh:
            raw = json.loads(fh.read(MAX_RESULTS_BYTES + 1).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = _CONTROL.sub("?", str(exc))[:200]
        raise UsageError(f"show: {shown}/results.json cannot be read ({reason})") from None
    try:
        data = _clean(raw)
        if not isinstance(data, dict) or data.get("schema") != "llorch-conformance/results/1":
            raise ValueError("no llorch-conformance/results/1 schema")
        scen = data.get("scenarios")
        if not isinstance(scen, list) or not all(isinstance(s, dict) for s in scen):
            raise ValueError("scenarios is not a list of objects")
        for s in scen:
            if s.get("status") not in STATUSES:
                raise ValueError(f"unknown status {str(s.get('status'))[:40]!r}")
            for key in ("requirements", "failed_requirements"):
                if not isinstance(s.get(key, []), list):
                    raise ValueError(f"{key} is not a list")
            if not isinstance(s.get("evidence", {}), dict):
                s["evidence"] = {}
        if not isinstance(data.get("target", {}), dict):
            data["target"] = {}
        results = RunResults.from_dict(data)
        results.verdicts()  # every derived view must work before anything is printed
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        reason = str(exc)[:200]
        raise UsageError(
            f"show: {shown}/results.json is not a llorch-conformance results file ({reason})"
        ) from None
    return results


def _show(args: argparse.Namespace) -> int:
    from llorch_conformance.reports import group_failures, render_console

    from ._catalogue import get_requirement, is_known

    results = load_bundle_results(args.bundle)
    w = sys.stdout.write
    c = results.counts()
    w(f"run {results.run_id} (seed {results.seed}, level {results.level}) from {args.bundle}\n")
    for t in (results.target or {}).get("targets", []) or []:
        if isinstance(t, dict):
            ver = t.get("adapter_version") or t.get("version")
            w(
                f"  target {t.get('name')} {ver or ''}".rstrip()
                + f" (dialect {t.get('dialect')}, {t.get('origin')})\n"
            )
    w(
        "scenarios: "
        + ", ".join(f"{c[k]} {k}" for k in ("pass", "fail", "unsupported", "skipped", "error"))
        + "\n"
    )
    groups = group_failures(results, bundle_dir=Path(args.bundle), fail_on=args.fail_on)
    for line in render_console(groups):
        w(line + "\n")
    verdicts = results.verdicts()
    shown = [v for v in verdicts if args.all or v.status != "pass"]
    order = {"fail": 0, "error": 1, "unsupported": 2, "skipped": 3, "pass": 4}
    shown.sort(key=lambda v: (order.get(v.status, 9), v.adapter, v.requirement))
    w(f"verdicts ({len(verdicts)}; {'all' if args.all else 'not pass'} shown):\n")
    for v in shown:
        level = get_requirement(v.requirement).level.value if is_known(v.requirement) else "?"
        msg = f"  {v.message[:160]}" if v.message and v.status != "pass" else ""
        w(f"  {v.status:<11} {level:<6} {v.adapter:<20} {v.requirement}{msg}\n")
    rc = int(results.exit_code(fail_on=args.fail_on))
    w(f"verdict: {('pass', 'FAIL', 'ERROR')[rc]} (exit {rc} for --fail-on {args.fail_on})\n")
    return rc if args.exit_code else 0
