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
import atexit
import importlib
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from llorch_conformance.adapters.api import ConformanceFailure, HarnessError, LlorchError

__all__ = ["EXIT_ERROR", "EXIT_FAILURE", "EXIT_OK", "build_parser", "console_main", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_ERROR = 2

# Every sub-command in --help order: its name, the module whose ``register(subparsers)`` adds
# it, and its one-line help (tests/conformance/test_startup.py checks all three against the
# modules). Why a table: importing a command module costs its package's imports too
# (``mock_engines``, ``reports``, the facade ...: ~0.3-0.5 s when all of them load). A command
# line that names its command gets a parser with only that module; one that names none
# (``--help``, ``--version``, nothing, a misspelt command) gets the top level with every command
# as a name and its help, which is all argparse prints there, so every message stays the same.
_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("run", "llorch_conformance.conformance._cmd_run",
     "run the conformance suite against adapters and write results.json"),
    ("list", "llorch_conformance.conformance._cmd_list",
     "list the requirement catalogue or the named faults"),
    ("init", "llorch_conformance.conformance._cmd_init",
     "scaffold an adapter package (factory, entry point, a test running the suite)"),
    ("explain", "llorch_conformance.conformance._cmd_explain",
     "explain one requirement: text, level, source, how to meet it, proving scenarios"),
    ("show", "llorch_conformance.conformance._cmd_show",
     "show the verdicts and failures of a saved run (proof bundle or run directory)"),
    ("serve", "llorch_conformance.mock_engines._cli", "serve a mock engine"),
    ("proxy", "llorch_conformance.mock_engines._proxy_cli",
     "fault-injecting proxy in front of a live engine (mock engine controls)"),
    ("orchestrator", "llorch_conformance.adapters.orchestrator._cli",
     "serve the orchestrator facade (tasks, SSE, cancel, capabilities) over adapters"),
    ("worker", "llorch_conformance.adapters.rbee_worker._cli",
     "serve an adapter as an rbee worker (/health, /info, /v1/infer, heartbeats to a queen)"),
    ("worker-check", "llorch_conformance.conformance.rbee._cli",
     "validate an rbee worker black-box (--worker-url) and write results"),
    ("verify", "llorch_conformance.reports._cli",
     "check a proof bundle: headers, manifest hashes, summary schema, signature"),
    ("replay", "llorch_conformance.reports._cli",
     "rerun a bundle's scenarios with its seed and selection and diff the transcripts"),
    ("bundle", "llorch_conformance.reports._cli",
     "write a proof bundle for an existing results.json"),
    ("diff", "llorch_conformance.reports.gate._cli",
     "compare two proof bundles: status changes, timing regressions, version changes"),
    ("matrix", "llorch_conformance.reports.gate._cli",
     "compatibility matrix of bundles: adapter version x engine version x suite version"),
    ("record", "llorch_conformance.conformance.real._cli",
     "record a live engine's answers (raw frames + timing) to a cassette"),
    ("replay-cassette", "llorch_conformance.conformance.real._cli",
     "serve a cassette as a mock engine (timing-faithful, with a speed factor)"),
    ("drift", "llorch_conformance.conformance.real._cli",
     "drift check: a live engine against the mock of its dialect"),
    ("real-engine", "llorch_conformance.conformance.real._cli",
     "start a real engine (llama-server, vLLM or Triton) on loopback and print its URL"),
)  # fmt: skip
_MODULE_OF = {command: module for command, module, _ in _COMMANDS}
_MODULES = tuple(dict.fromkeys(module for _, module, _ in _COMMANDS))


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit 2 (usage error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``llorch-conformance`` parser: every sub-command, or only what ``argv`` needs.

    ``argv`` naming a command: only that command's module is imported and registered; the
    parser parses ``argv`` exactly as the full one would (sub-parsers are independent, and the
    top level's only options, ``--help``/``--version``, act before a command). ``argv`` naming
    none (empty, ``-h``/``--help``/``--version`` first, or a word that is no command): the top
    level with each command as a bare name and its help — parsing such a line only ever prints
    help, the version or a usage error, which read nothing else. Anything else (another option
    first) gets the full parser.
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
    if argv is not None and (
        first is None or first in ("-h", "--help", "--version") or not first.startswith("-")
    ):
        if first in _MODULE_OF:
            importlib.import_module(_MODULE_OF[first]).register(sub)
        else:
            for command, _, text in _COMMANDS:
                sub.add_parser(command, help=text).set_defaults(_names_only=True)
        return parser
    for module in _MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
    if getattr(args, "_names_only", False):  # not reached: a bare name always errs; be safe
        args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except BrokenPipeError:  # `... | head`: the reader left; not an error of ours
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


def console_main() -> NoReturn:
    """The ``llorch-conformance`` command (console script, ``python -m llorch_conformance``):
    :func:`main`, then the process ends without the interpreter's own finalisation.

    Why: tearing down ~1,000 modules and freeing a run's evidence (many MB of small objects)
    took ~0.1 s after the summary was printed — wall time a user waits for and nothing observes.
    Everything observable of an ordinary exit is kept, in its order: no other non-daemon thread
    is running (else: the ordinary exit, which waits for it), the ``atexit`` handlers run
    (logging's flush, coverage's data file, ``weakref.finalize``, multiprocessing's clean-up),
    then stdout and stderr are flushed (a failing flush also takes the ordinary exit). An
    exception or ``SystemExit`` out of :func:`main` always takes the ordinary way; :func:`main`
    itself, which tests call in process, exits nothing.
    """
    rc = main()
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        sys.exit(rc)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # e.g. a closed pipe: let the interpreter report it as it always has
        sys.exit(rc)
    os._exit(rc)


if __name__ == "__main__":  # pragma: no cover
    console_main()
