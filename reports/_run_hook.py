"""The two calls ``llorch-conformance run`` makes to leave a proof bundle behind every run.

``add_run_options(parser)`` adds ``--proof-dir DIR``, ``--no-bundle``, ``--sign-key KEY``,
``--secret VALUE`` and ``--screenshot``; ``bundle_run(args, results, run_suite_kwargs)`` writes
the bundle (by default to ``$LLORCH_PROOF_DIR or .proof_bundle``/conformance/<run_id>/) and
returns the run's exit code, folding in the redaction audit:

* the bundle is written whatever the verdict — failures and harness errors in scenarios included;
* an audit hit blamed on an adapter (:class:`RedactionLeak`) turns a passing run into exit 1;
  one blamed on the harness (:class:`RedactionAuditError`) makes it exit 2 — the audit never
  just warns;
* ``run_suite_kwargs`` are stored in ``run_config.json`` under ``run_suite`` for the reader
  (``diff`` reports a changed selection); ``replay`` takes only checked values from them
  (requirement IDs, level, scope, labels) and reruns the scenarios ``results.json`` lists.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any, Literal

from llorch_conformance.adapters.api import ConformanceFailure, HarnessError

__all__ = ["add_bundle_options", "add_run_options", "bundle_run"]


def add_bundle_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that writes a bundle (``run`` may reuse them)."""
    p.add_argument(
        "--proof-dir",
        metavar="DIR",
        help="bundle base directory (default $LLORCH_PROOF_DIR or .proof_bundle); "
        "the bundle goes to DIR/conformance/<run_id>/",
    )
    p.add_argument(
        "--sign-key",
        metavar="KEY",
        help="Ed25519 private key (PEM or OpenSSH) to sign the bundle's attestation",
    )
    p.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="VALUE",
        help="a secret of this run the redaction audit must not find (repeatable; the values of "
        "LLORCH_API_TOKEN, OPENAI_API_KEY, HF_TOKEN are added automatically)",
    )
    p.add_argument(
        "--screenshot",
        action="store_true",
        help="render report.html in headless Chromium into report.png (when installed)",
    )


def add_run_options(p: argparse.ArgumentParser) -> None:
    add_bundle_options(p)
    p.add_argument(
        "--no-bundle", action="store_true", help="do not write a proof bundle for this run"
    )


def bundle_run(args: argparse.Namespace, results: Any, run_suite_kwargs: Mapping[str, Any]) -> int:
    """Write the run's bundle; return the exit code of the whole run (see module docstring)."""
    fail_on: Literal["must", "should"] = (
        "should" if getattr(args, "fail_on", "") == "should" else "must"
    )
    rc = int(results.exit_code(fail_on=fail_on))
    if getattr(args, "no_bundle", False):
        return rc
    from ._bundle import RedactionAuditError, RedactionLeak, write_bundle  # heavy: only when used

    kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in run_suite_kwargs.items()}
    kwargs.pop("progress", None)
    kwargs.pop("out", None)
    keyword = getattr(args, "keyword", None)  # run -k EXPR: recorded for the reader only —
    if keyword:  # replay reruns the scenarios results.json lists, never pytest arguments
        kwargs["keyword"] = str(keyword)
    config = {"argv": sys.argv[1:], "run_suite": kwargs}
    try:
        out = write_bundle(
            results,
            base=getattr(args, "proof_dir", None),
            config=config,
            secrets=list(getattr(args, "secret", []) or []),
            fail_on=fail_on,
            sign_key=getattr(args, "sign_key", None),
            screenshot=bool(getattr(args, "screenshot", False)),
        )
    except RedactionLeak as exc:
        args.bundle_path = exc.bundle
        print(f"llorch-conformance: FAIL: {exc}", file=sys.stderr)
        return max(rc, 1)
    except RedactionAuditError as exc:
        print(f"llorch-conformance: error: {exc}", file=sys.stderr)
        return 2
    except (HarnessError, ConformanceFailure):
        raise
    # Where the bundle really went (<run_id>-N under parallel runs): reports.gate reads it.
    args.bundle_path = out.path
    signed = " (signed)" if out.signed else ""
    print(f"proof bundle: {out.path}{signed}")
    return rc
