"""CLI commands of the proof-bundle layer: ``verify``, ``replay`` and ``bundle``.

* ``verify BUNDLE [--public-key KEY]`` — exit 0 when the bundle passes every rule of
  :func:`reports.verify_bundle`, 1 when it does not (each problem printed as
  ``FILE: RULE: message``), 2 when BUNDLE is not a directory or the key cannot be read;
* ``replay BUNDLE`` — rerun the recorded scenarios with the recorded seed and configuration;
  exit 0 when every transcript matches, 1 when any differs (each difference printed);
* ``bundle RESULTS.json`` — write a proof bundle for an existing ``results.json`` (the run
  command does this itself; this is for results produced by a vendor's own pytest run).

Signing keys are plain Ed25519 keys, e.g. ``openssl genpkey -algorithm ed25519 -out key.pem`` and
``openssl pkey -in key.pem -pubout -out key.pub``, or ``ssh-keygen -t ed25519 -N "" -f key``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._run_hook import add_bundle_options

__all__ = ["add_bundle_options", "register"]


def register(sub: Any) -> None:
    v: argparse.ArgumentParser = sub.add_parser(
        "verify",
        help="check a proof bundle: headers, manifest hashes, summary schema, signature",
    )
    v.add_argument(
        "bundle", metavar="BUNDLE", help="the bundle directory (<base>/conformance/<run_id>)"
    )
    v.add_argument(
        "--public-key", metavar="KEY", help="Ed25519 public key; the signature must verify"
    )
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=_verify)

    r: argparse.ArgumentParser = sub.add_parser(
        "replay",
        help="rerun a bundle's scenarios with its seed and configuration and diff the transcripts",
    )
    r.add_argument("bundle", metavar="BUNDLE", help="the bundle directory to replay")
    r.add_argument(
        "--scenario", metavar="TEXT", help="compare only scenarios whose name contains TEXT"
    )
    r.add_argument("--out", type=Path, metavar="DIR", help="keep the replay's results.json here")
    r.add_argument(
        "-j", "--jobs", default="1", metavar="N|auto", help="parallel workers (default 1)"
    )
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.set_defaults(func=_replay)

    b: argparse.ArgumentParser = sub.add_parser(
        "bundle", help="write a proof bundle for an existing results.json"
    )
    b.add_argument(
        "results",
        type=Path,
        metavar="RESULTS.json",
        help="a results.json of a run (--llorch-results)",
    )
    b.add_argument(
        "--fail-on",
        choices=("must", "should"),
        default="must",
        help="which failing levels make the bundle's verdict fail (default must)",
    )
    add_bundle_options(b)
    b.set_defaults(func=_bundle)


def _verify(args: argparse.Namespace) -> int:
    from ._verify import verify_bundle

    report = verify_bundle(args.bundle, public_key=args.public_key)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for p in report.problems:
            print(f"verify: {p}", file=sys.stderr)
        for n in report.notes:
            print(f"verify: note: {n}")
        if report.ok:
            sig = ", signature verified" if report.signature_verified else ""
            print(f"verify: OK {args.bundle} ({report.files_checked} files{sig})")
        else:
            print(
                f"verify: FAILED {args.bundle}: {len(report.problems)} problem(s)", file=sys.stderr
            )
    return 0 if report.ok else 1


def _replay(args: argparse.Namespace) -> int:
    from llorch_conformance.adapters.api import UsageError

    from ._replay import replay_bundle

    jobs: int | str = args.jobs
    if jobs != "auto":
        try:
            jobs = int(jobs)
        except ValueError:
            raise UsageError(f"--jobs must be a number or 'auto', got {args.jobs!r}") from None
    report = replay_bundle(args.bundle, scenario=args.scenario, out=args.out, jobs=jobs)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for d in report.differences:
            print(f"replay: DIFF {d}")
        state = "identical" if report.identical else f"{len(report.differences)} difference(s)"
        print(f"replay: {report.compared} scenario(s) compared: {state}")
    return 0 if report.identical else 1


def _bundle(args: argparse.Namespace) -> int:
    from llorch_conformance.adapters.api import UsageError
    from llorch_conformance.conformance import RunResults

    from ._bundle import write_bundle

    if not args.results.is_file():
        raise UsageError(f"{args.results}: no such results file")
    try:
        results = RunResults.read(args.results)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{args.results}: not a llorch-conformance results.json ({exc})") from None
    out = write_bundle(
        results,
        base=args.proof_dir,
        config={"source": "bundle", "results": str(args.results)},
        secrets=args.secret,
        fail_on=args.fail_on,
        sign_key=args.sign_key,
        screenshot=args.screenshot,
    )
    print(f"proof bundle: {out.path}" + (" (signed)" if out.signed else ""))
    return 0
