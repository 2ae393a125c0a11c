"""Issue 18, the start-up of a run: what a command line imports before its command runs, and
the shortcuts that keep it small give the same answers as the long way."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import subprocess
import sys
from importlib import metadata
from typing import Any

import pytest

from llorch_conformance.conformance import CATALOGUE, cli
from llorch_conformance.conformance._targets import distributions_providing

from ._cli import cli_env

pytest_plugins = ["pytester"]


def _subparsers(parser: argparse.ArgumentParser) -> Any:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _modules() -> dict[str, list[str]]:
    """module -> its commands, in table order."""
    out: dict[str, list[str]] = {}
    for command, module, _ in cli._COMMANDS:
        out.setdefault(module, []).append(command)
    return out


def test_the_command_table_names_what_each_module_registers_in_help_order() -> None:
    for module, commands in _modules().items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert list(sub.choices) == commands, module
    full = _subparsers(cli.build_parser())
    assert [(a.dest, a.help) for a in full._choices_actions] == [
        (command, text) for command, _, text in cli._COMMANDS
    ]


@pytest.mark.parametrize("command", [c for c, _, _ in cli._COMMANDS])
def test_a_named_command_gets_the_same_sub_parser_as_the_full_parser(command: str) -> None:
    full = cli.build_parser()
    lean = cli.build_parser([command, "--help"])
    assert list(_subparsers(lean).choices) == _modules()[cli._MODULE_OF[command]]
    assert (
        _subparsers(lean).choices[command].format_help()
        == _subparsers(full).choices[command].format_help()
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--only", "vllm", "-j", "1", "--seed", "3"],
        ["run", "--adapter", "pkg.mod:make", "--dialect", "vllm", "--out", "x", "--lf"],
        ["list", "faults", "--format", "json"],
        ["explain", "WA-INT-3002"],
        ["diff", "a", "b"],
    ],
)
def test_a_named_command_parses_to_the_same_namespace(argv: list[str]) -> None:
    assert vars(cli.build_parser(argv).parse_args(argv)) == vars(
        cli.build_parser().parse_args(argv)
    )


def _outcome(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parser.parse_args(argv)
            code: object = "parsed"
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-h"],
        ["--version"],
        ["-h", "run", "--only", "vllm"],
        ["nosuch"],
        ["nosuch", "--help"],
        ["", "x"],
        ["--bogus", "run"],
        ["run", "--bogus"],
        ["list", "--help"],
    ],
)
def test_a_line_without_a_command_prints_what_the_full_parser_prints(argv: list[str]) -> None:
    """Help, version and usage errors of the lean parsers are the full parser's, to the byte."""
    lean = _outcome(cli.build_parser(argv), argv)
    assert lean == _outcome(cli.build_parser(), argv)
    assert lean[0] != "parsed"


def _imported_after(code: str) -> set[str]:
    """The ``llorch_conformance`` modules a fresh interpreter holds after running ``code``."""
    probe = (
        f"{code}\nimport sys, json\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('llorch_conformance'))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
        check=True,
    )
    return set(json.loads(proc.stdout.splitlines()[-1]))


_HEAVY = (
    "llorch_conformance.mock_engines",
    "llorch_conformance.adapters.orchestrator",
    "llorch_conformance.adapters.rbee_worker",
    "llorch_conformance.conformance.real",
    "llorch_conformance.conformance.rbee",
)


@pytest.mark.parametrize(
    ("command", "heavy"),
    [
        ("run", _HEAVY),
        ("list", (*_HEAVY, "llorch_conformance.reports")),
        ("explain", (*_HEAVY, "llorch_conformance.reports")),
        ("--help", (*_HEAVY, "llorch_conformance.reports")),
    ],
)
def test_parsing_a_command_imports_only_its_own_module(
    command: str, heavy: tuple[str, ...]
) -> None:
    loaded = _imported_after(
        f"from llorch_conformance.conformance import cli\ncli.build_parser([{command!r}])"
    )
    assert not [m for m in loaded if m.startswith(heavy)], sorted(loaded)


def test_distributions_providing_is_the_stdlib_table_restricted() -> None:
    full = metadata.packages_distributions()
    names = sorted(full)
    # every name at once: the per-distribution rule (declared, else inferred from the files)
    assert distributions_providing(names) == {n: full[n] for n in names}
    # one name at a time: the RECORD shortcut skips no distribution that provides it
    for name in [*names[::7], "pytest", "_pytest", "llorch_conformance"]:
        assert distributions_providing([name]) == ({name: full[name]} if name in full else {})
    assert distributions_providing(["no_such_module_xyz", ""]) == {}


def test_the_step_library_is_registered_in_order_and_not_rewritten(
    pytester: pytest.Pytester,
) -> None:
    """``steps._plugin`` then its step modules, as ``pytest_plugins`` registered them, but loaded
    by the ordinary importer (no assertion rewriting) in a session like ``run``'s (no plugin
    autoload: with it, pytest marks every module of an installed plugin's distribution itself);
    ``-p no:NAME`` still blocks one."""
    pytester.makeconftest(
        """
        import sys

        def pytest_collection_finish(session):
            pm = session.config.pluginmanager
            names = [pm.get_name(p) for p in pm.get_plugins()]
            ours = [n for n in names if n and n.startswith("llorch_conformance.steps.")]
            rewritten = sorted(
                n for n in ours
                if type(sys.modules[n].__loader__).__name__ == "AssertionRewritingHook"
            )
            print("ORDER", " ".join(n for n in pm._name2plugin if n in ours))
            print("REWRITTEN", " ".join(rewritten) or "-")
        """
    )
    result = pytester.runpytest_subprocess(
        "--disable-plugin-autoload", "-p", "pytest_bdd.plugin",
        "-p", "llorch_conformance.conformance.plugin",
        "-p", "no:cacheprovider", "-p", "no:llorch_conformance.steps._worker", "--llorch-suite",
        "--llorch-only", "mock", "--llorch-requirement", "ORCH-3058", "--collect-only", "-s",
    )  # fmt: skip
    from llorch_conformance.steps._plugin import STEP_PLUGINS

    out = result.stdout.str()
    order = next(line for line in out.splitlines() if line.startswith("ORDER")).split()[1:]
    expected = [p for p in STEP_PLUGINS if not p.endswith("._worker")]
    assert order == ["llorch_conformance.steps._plugin", *expected]
    assert "REWRITTEN -" in out


def test_no_step_module_judges_with_a_bare_assert() -> None:
    """Why the step library may skip assertion rewriting: its verdicts are ``check``/
    ``ConformanceFailure``. An ``assert`` there only narrows a type for mypy (``is not None``,
    ``isinstance``); a verdict by ``assert`` would lose pytest's message without rewriting."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "steps"
    verdicts = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Assert):
                continue
            test = node.test
            narrowing = (
                isinstance(test, ast.Compare)
                and len(test.ops) == 1
                and isinstance(test.ops[0], ast.IsNot)
                and isinstance(test.comparators[0], ast.Constant)
                and test.comparators[0].value is None
            ) or (
                isinstance(test, ast.Call)
                and isinstance(test.func, ast.Name)
                and test.func.id == "isinstance"
            )
            if not narrowing:
                verdicts.append(f"{path.name}:{node.lineno}")
    assert not verdicts, f"bare assert used as a verdict: {verdicts}"


# one short scenario of each area that imports more than the common set (and one that does not)
_WARM_PROBE = (
    "test_the_adapter_asks_the_engine_for_deterministic_sampling",
    "test_the_host_retries_a_failure_before_the_first_token_and_counts_it",
    "test_a_client_that_disconnects_from_the_facade_cancels_the_task_upstream",
    "test_bundles_live_under_the_proof_directory_by_fixed_type_then_run_id",
    "test_tls_works_when_the_test_trusts_the_engines_certificate_explicitly",
    "test_health_and_info_of_a_served_worker",
)
# what the warm-up must leave nothing of for the scenarios to import (third-party names beyond
# these are best effort: a stdlib module imported by a library at run time is cheap)
_WARMED_PACKAGES = (
    "llorch_conformance", "uvicorn", "httpcore", "h11", "h2", "starlette", "trustme",
    "jsonschema", "fastjsonschema", "anyio._backends",
)  # fmt: skip


def test_after_the_warm_up_the_scenarios_import_nothing_of_ours(
    pytester: pytest.Pytester,
) -> None:
    """What the areas' scenarios import is imported before the first one runs (once, in the
    process a forked run's workers are copies of)."""
    # a plugin, not a conftest: a conftest's hooks reach only the items under its folder
    pytester.makepyfile(
        warm_probe=f"""
        import sys

        SEEN = {{}}

        def pytest_runtest_logstart(nodeid, location):
            SEEN.setdefault("first", set(sys.modules))

        def pytest_sessionfinish(session):
            assert "first" in SEEN, "no scenario started"
            late = sorted(set(sys.modules) - SEEN["first"])
            late = [m for m in late if m.startswith({_WARMED_PACKAGES!r})]
            print("\\nLATE", " ".join(late) or "-")
        """
    )
    result = pytester.runpytest_subprocess(
        "--disable-plugin-autoload", "-p", "pytest_bdd.plugin", "-p", "warm_probe",
        "-p", "llorch_conformance.conformance.plugin", "-p", "no:cacheprovider", "-s",
        "--llorch-suite", "--llorch-only", "vllm", "-k", " or ".join(_WARM_PROBE),
    )  # fmt: skip
    out = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= len(_WARM_PROBE), out[-3000:]
    late = next(line for line in out.splitlines() if line.startswith("LATE"))
    assert late == "LATE -", late


def test_every_warm_import_of_ours_imports_and_starts_no_thread() -> None:
    from llorch_conformance.features import AREAS
    from llorch_conformance.steps._plugin import WARM_IMPORTS

    assert set(WARM_IMPORTS) <= {"", *AREAS}
    names = sorted({n for ns in WARM_IMPORTS.values() for n in ns})
    probe = (
        "import importlib, threading\n"
        f"for n in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except ImportError:\n"
        "        if n.startswith('llorch_conformance.'):\n"
        "            raise\n"
        "print(threading.active_count())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=cli_env()
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "1", "a warm import started a thread: forking is then unsafe"


def _console(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (which ends in ``console_main()``) in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=cli_env()
    )


_CONSOLE = (
    "import atexit, sys\n"
    "from llorch_conformance.conformance.cli import console_main\n"
    "atexit.register(lambda: print('atexit ran', flush=False))\n"
)


def test_console_main_keeps_output_exit_code_and_atexit_handlers() -> None:
    """The quick exit: everything printed arrives (stdout is flushed after the ``atexit``
    handlers, as the interpreter does), the exit code is main's."""
    ok = _console(_CONSOLE + "sys.argv = ['x', 'list', 'requirements', '--format', 'json']\n"
                  "console_main()\n")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    body, _, tail = ok.stdout.rpartition("]")
    assert tail.strip() == "atexit ran"
    assert len(json.loads(body + "]")) == len(CATALOGUE)
    bad = _console(_CONSOLE + "sys.argv = ['x', 'show', '/no/such/run']\nconsole_main()\n")
    assert bad.returncode == 2 and "atexit ran" in bad.stdout
    assert bad.stderr.strip().splitlines()[-1].startswith("llorch-conformance: error:")


def test_console_main_waits_for_a_running_thread_as_an_ordinary_exit_does() -> None:
    code = _CONSOLE + (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "sys.argv = ['x', 'explain', 'WA-INT-3002']\n"
        "console_main()\n"
    )
    proc = _console(code)
    assert proc.returncode == 0, proc.stderr
    assert "thread done" in proc.stdout and "atexit ran" in proc.stdout
