"""Issue 18, the start-up of a run: what a command line imports before its command runs, and
the shortcuts that keep it small give the same answers as the long way."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from importlib import metadata
from typing import Any

import pytest

from llorch_conformance.conformance import cli
from llorch_conformance.conformance._targets import distributions_providing

from ._cli import cli_env


def _subparsers(parser: argparse.ArgumentParser) -> Any:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_the_command_table_names_what_each_module_registers_in_help_order() -> None:
    for module, commands in cli._COMMAND_MODULES:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        assert tuple(sub.choices) == commands, module
    full = _subparsers(cli.build_parser())
    assert list(full.choices) == [c for _, cs in cli._COMMAND_MODULES for c in cs]


@pytest.mark.parametrize("command", [c for _, cs in cli._COMMAND_MODULES for c in cs])
def test_a_named_command_gets_the_same_sub_parser_as_the_full_parser(command: str) -> None:
    full = cli.build_parser()
    lean = cli.build_parser([command, "--help"])
    assert list(_subparsers(lean).choices) == list(
        next(cs for _, cs in cli._COMMAND_MODULES if command in cs)
    )  # its module's commands only
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


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--help"], "worker-check"),  # the full list of commands
        (["nosuch"], "invalid choice: 'nosuch'"),  # every choice named in the error
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_no_named_command_gets_the_full_parser(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main(argv)
    out = capsys.readouterr()
    assert needle in out.out + out.err
    if argv == ["nosuch"]:
        assert "replay-cassette" in out.err


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
