"""CLI commands of the proof-bundle layer: ``verify``, ``replay`` and ``bundle``.

* ``verify BUNDLE [--public-key KEY]`` — exit 0 when the bundle passes every rule of
  :func:`reports.verify_bundle`, 1 when it does not (each problem printed as
  ``FILE: RULE: message``), 2 when BUNDLE is not a directory or the key cannot be read;
* ``replay BUNDLE`` — rerun the recorded scenarios with the recorded seed and selection;
  exit 0 when every transcript matches, 1 when any differs (each difference printed), 2 when the
  bundle is malformed or asks for something replay never takes from a bundle (code, pytest
  arguments, environment names, a URL — see :mod:`reports._replay` and ``replay --help``);
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

_DATA_MODEL = """\
A bundle is data, never code: it may come from anyone. Every reader (verify, replay, diff,
matrix) refuses links of any kind, odd files, and JSON that is not strict, bounded (size,
nesting, numbers) and of its schema, with one line naming the file (exit 2)."""

_VERIFY_DESCRIPTION = f"""\
Check a proof bundle: layout, headers, manifest hashes, attestation and signature.

{_DATA_MODEL}

exit 0: the bundle verifies; 1: a rule is broken (each problem printed as FILE: RULE: message);
2: not a bundle, unreadable key, or a file that cannot be read as data (one line)."""

_REPLAY_DESCRIPTION = f"""\
Rerun the scenarios a bundle recorded, with its seed, and diff the transcripts.

{_DATA_MODEL}

What replay takes from the bundle, each checked against our own vocabulary: the recorded
scenarios, requirement IDs (must be in the installed catalogue), level, scope, seed, and the
target kind (built-in adapter names must be built-in adapters; dialects ours).

What replay never does:
  - run or import anything from the bundle (its pytest arguments are ignored, a conftest.py in
    it is never loaded, and replay refuses to run from inside the bundle folder);
  - import an adapter the bundle names: a vendor adapter's bundle needs --adapter SPEC;
  - read an environment variable the bundle names: the orchestrator token comes from the
    variable you name with --orchestrator-token-env;
  - contact a URL taken from the bundle: give your own --engine-url/--orchestrator-url, or pass
    --allow-bundle-url (and still no token is sent there unless you name its variable).

exit 0: identical; 1: a difference (each printed); 2: malformed bundle or refused request."""


def register(sub: Any) -> None:
    v: argparse.ArgumentParser = sub.add_parser(
        "verify",
        help="check a proof bundle: headers, manifest hashes, summary schema, signature",
        description=_VERIFY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        help="rerun a bundle's scenarios with its seed and selection and diff the transcripts",
        description=_REPLAY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    r.add_argument(
        "--adapter",
        metavar="SPEC",
        help="the vendor adapter to replay (package.module:factory or entry-point name); "
        "required for a vendor adapter's bundle — the bundle's own spec is never imported",
    )
    r.add_argument(
        "--engine-url",
        metavar="URL",
        help="the live engine to replay against (for a bundle recorded against one)",
    )
    r.add_argument(
        "--orchestrator-url",
        metavar="URL",
        help="the orchestrator facade to replay against (for an orchestrator bundle)",
    )
    r.add_argument(
        "--orchestrator-token-env",
        metavar="NAME",
        help="the environment variable holding the orchestrator's token (default "
        "LLORCH_API_TOKEN with your --orchestrator-url; with --allow-bundle-url no token is "
        "sent unless you name one)",
    )
    r.add_argument(
        "--allow-bundle-url",
        action="store_true",
        help="contact the engine/orchestrator URL recorded in the bundle (refused without this)",
    )
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

    from ._replay import ReplayChoice, replay_bundle

    jobs: int | str = args.jobs
    if jobs != "auto":
        try:
            jobs = int(jobs)
        except ValueError:
            raise UsageError(f"--jobs must be a number or 'auto', got {args.jobs!r}") from None
    choice = ReplayChoice(
        adapter=args.adapter,
        engine_url=args.engine_url,
        orchestrator_url=args.orchestrator_url,
        orchestrator_token_env=args.orchestrator_token_env,
        allow_bundle_url=args.allow_bundle_url,
    )
    report = replay_bundle(
        args.bundle, scenario=args.scenario, out=args.out, jobs=jobs, choice=choice
    )
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
    from ._bundle_read import MAX_JSON_BYTES, one_line, parse_json_bytes, schema_problem

    shown = one_line(args.results)
    if not args.results.is_file():
        raise UsageError(f"{shown}: no such results file")
    try:  # the same strict, bounded reading as a bundle's results.json
        if args.results.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"larger than {MAX_JSON_BYTES} bytes")
        raw = parse_json_bytes(args.results.read_bytes())
        problem = schema_problem(raw, "results")
        if problem is not None:
            raise ValueError(problem)
        results = RunResults.from_dict(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{shown}: not a llorch-conformance results.json ({one_line(exc)})"
        ) from None
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
