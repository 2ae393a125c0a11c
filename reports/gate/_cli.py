"""CLI commands of the gate: ``diff BASE NEW`` and ``matrix BUNDLE...``.

* ``diff`` — Markdown (stdout, or ``--markdown FILE``) fit for a pull-request comment and JSON
  (``--json FILE``, ``-`` for stdout); exit 0 when nothing gates, 1 on a regression or an expired
  waiver, 2 when a bundle or the waiver file is unreadable or an argument is bad (one line).
* ``matrix`` — Markdown to stdout (or ``--markdown FILE``), ``--html FILE``, ``--json FILE``;
  exit 0 (a matrix states facts), 2 on unreadable bundles. ``--can-i-deploy ADAPTER DIALECT``
  asks one question instead: exit 0 verified with the current catalogue, 1 not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    from ._run_gate import add_policy_options

    d: argparse.ArgumentParser = sub.add_parser(
        "diff",
        help="compare two proof bundles: status changes, timing regressions, version changes",
        description="Compare a new proof bundle with the last accepted one (the CI gate).",
    )
    d.add_argument("base", type=Path, metavar="BASE", help="the accepted (baseline) bundle")
    d.add_argument("new", type=Path, metavar="NEW", help="the bundle of the change")
    add_policy_options(d)
    d.add_argument(
        "--fail-on",
        choices=("must", "should", "may"),
        default="must",
        help="which requirement levels gate on a status regression (default must, like run)",
    )
    d.add_argument("--markdown", type=Path, metavar="FILE", help="write the Markdown here")
    d.add_argument("--json", metavar="FILE", help="write the JSON report here ('-' = stdout)")
    d.set_defaults(func=_diff)

    m: argparse.ArgumentParser = sub.add_parser(
        "matrix",
        help="compatibility matrix of bundles: adapter version x engine version x suite version",
    )
    m.add_argument(
        "bundles", type=Path, nargs="+", metavar="BUNDLE", help="proof bundles to put side by side"
    )
    m.add_argument("--markdown", type=Path, metavar="FILE", help="write the Markdown here")
    m.add_argument("--html", type=Path, metavar="FILE", help="write an HTML page here")
    m.add_argument("--json", metavar="FILE", help="write the JSON here ('-' = stdout)")
    m.add_argument(
        "--can-i-deploy",
        nargs=2,
        metavar=("ADAPTER[@VERSION]", "DIALECT[@ENGINE_VERSION]"),
        help="answer one question instead: exit 0 when the newest matching run is verified "
        "with the current catalogue, 1 when it is failing, stale or missing",
    )
    m.set_defaults(func=_matrix)


def _emit(text: str, target: str | Path | None) -> None:
    if target is None or str(target) == "-":
        sys.stdout.write(text)
        return
    from llorch_conformance.adapters.api import UsageError

    try:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(text, "utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None


def _diff(args: argparse.Namespace) -> int:
    from ._diff import diff_views
    from ._render import render_gate_markdown
    from ._run_gate import policy_from_args
    from ._view import load_bundle
    from ._waivers import load_waivers

    policy = policy_from_args(args)
    waivers = load_waivers(args.waivers) if args.waivers is not None else []
    base, new = load_bundle(args.base), load_bundle(args.new)
    report = diff_views(base, new, policy=policy, waivers=waivers, fail_on=args.fail_on)
    md = render_gate_markdown(report)
    if args.json is not None:
        _emit(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", args.json)
    if args.markdown is not None:
        _emit(md, args.markdown)
    if args.json != "-" and args.markdown is None:
        _emit(md, None)
    return report.exit_code


def _matrix(args: argparse.Namespace) -> int:
    from ._matrix import build_matrix, render_matrix_html, render_matrix_markdown
    from ._view import load_bundle

    matrix = build_matrix([load_bundle(b) for b in args.bundles])
    if args.can_i_deploy is not None:
        from ._matrix import can_i_deploy

        ok, why = can_i_deploy(matrix, *args.can_i_deploy)
        print(why)
        return 0 if ok else 1
    md = render_matrix_markdown(matrix)
    if args.html is not None:
        _emit(render_matrix_html(matrix), args.html)
    if args.json is not None:
        _emit(json.dumps(matrix.to_dict(), indent=2, ensure_ascii=False) + "\n", args.json)
    if args.markdown is not None:
        _emit(md, args.markdown)
    elif args.json != "-":
        _emit(md, None)
    return 0
