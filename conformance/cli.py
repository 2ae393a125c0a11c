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

# Modules that contribute sub-commands, in --help order, each with the commands its
# ``register(subparsers)`` adds (tests/conformance/test_cli.py checks this table against them).
# Importing a module costs its package's imports too (``mock_engines``, ``reports``, the facade
# ...: ~0.3 s of a run's start-up when all of them load), so a command line that names its
# command builds a parser with only that command's module; ``--help``, ``--version`` and anything
# argparse must reject get the full parser, so every message stays the same.
_COMMAND_MODULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("llorch_conformance.conformance._cmd_run", ("run",)),
    ("llorch_conformance.conformance._cmd_list", ("list",)),
    ("llorch_conformance.conformance._cmd_init", ("init",)),
    ("llorch_conformance.conformance._cmd_explain", ("explain",)),
    ("llorch_conformance.conformance._cmd_show", ("show",)),
    ("llorch_conformance.mock_engines._cli", ("serve",)),
    ("llorch_conformance.mock_engines._proxy_cli", ("proxy",)),
    ("llorch_conformance.adapters.orchestrator._cli", ("orchestrator",)),
    ("llorch_conformance.adapters.rbee_worker._cli", ("worker",)),
    ("llorch_conformance.conformance.rbee._cli", ("worker-check",)),
    ("llorch_conformance.reports._cli", ("verify", "replay", "bundle")),
    ("llorch_conformance.reports.gate._cli", ("diff", "matrix")),
    (
        "llorch_conformance.conformance.real._cli",
        ("record", "replay-cassette", "drift", "real-engine"),
    ),
)
_MODULE_OF = {command: module for module, commands in _COMMAND_MODULES for command in commands}


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit 2 (usage error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``llorch-conformance`` parser; every sub-command unless ``argv`` names one.

    When ``argv`` starts with a known command, only the module of that command is imported and
    registered: the parser then parses ``argv`` exactly as the full one would (sub-parsers are
    independent and the top level has no option of its own but ``--help``/``--version``, which
    come before a command). Any other ``argv`` gets the full parser.
    """
    from llorch_conformance.conformance import __version__

    parser = _Parser(
        prog="llorch-conformance",
        description="Conformance suite and mock engines for LLM worker adapters.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    first = argv[0] if argv else None
    if first is not None and first in _MODULE_OF:
        modules: tuple[str, ...] = (_MODULE_OF[first],)
    else:
        modules = tuple(module for module, _ in _COMMAND_MODULES)
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
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
