"""``llorch-conformance`` command line.

Each sub-command lives in its own module that exposes ``register(subparsers)``; this module only
assembles them, maps exceptions to exit codes and keeps the promise CI scripts rely on:

* 0 — everything required passed (or the command did its job);
* 1 — conformance failures (the system under test missed a requirement);
* 2 — harness or usage errors (bad arguments, unreadable files, a broken harness).

Wrong arguments produce one clear line on stderr, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from llorch_conformance.adapters.api import ConformanceFailure, HarnessError, LlorchError

__all__ = ["EXIT_ERROR", "EXIT_FAILURE", "EXIT_OK", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_ERROR = 2

# Modules that contribute sub-commands, in --help order. Each has ``register(subparsers)``
# and keeps its heavy imports inside the command function so ``--help`` stays fast.
_COMMAND_MODULES = (
    "llorch_conformance.conformance._cmd_run",
    "llorch_conformance.conformance._cmd_list",
    "llorch_conformance.conformance._cmd_init",
    "llorch_conformance.conformance._cmd_explain",
    "llorch_conformance.conformance._cmd_show",
    "llorch_conformance.mock_engines._cli",
    "llorch_conformance.mock_engines._proxy_cli",
    "llorch_conformance.adapters.orchestrator._cli",
    "llorch_conformance.adapters.rbee_worker._cli",
    "llorch_conformance.conformance.rbee._cli",
    "llorch_conformance.reports._cli",
    "llorch_conformance.reports.gate._cli",
    "llorch_conformance.conformance.real._cli",
)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit 2 (usage error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from llorch_conformance.conformance import __version__

    parser = _Parser(
        prog="llorch-conformance",
        description="Conformance suite and mock engines for LLM worker adapters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except BrokenPipeError:  # `... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("llorch-conformance: interrupted", file=sys.stderr)
        return 130
    except HarnessError as exc:
        print(f"llorch-conformance: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ConformanceFailure as exc:
        print(f"llorch-conformance: FAIL: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except LlorchError as exc:
        print(f"llorch-conformance: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return int(rc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
