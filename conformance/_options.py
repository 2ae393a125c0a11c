"""The run options, declared once: ``llorch-conformance run --X`` and ``pytest --llorch-X``.

Why a table: the CLI and the pytest plugin select the same things (which adapters, which
requirements, which scope, which seed) and used to declare them twice, so a new option or a
changed help text had to be written in two places and the two drifted. Each :class:`RunOption`
here is added to the CLI's ``run`` parser (``--<name>``) and to the plugin's pytest group
(``--llorch-<name>``); a help text that names another option of the table is rewritten to that
surface's spelling. Options only one surface has (``--jobs``, ``--out`` ... on the CLI;
``--llorch-suite``, ``--llorch-results`` in pytest) are declared where they are used.

Light on purpose: the pytest plugin imports it in every pytest run (standard library only).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._guide import SCOPES

__all__ = [
    "RUN_OPTIONS",
    "RunOption",
    "add_cli_options",
    "add_pytest_options",
    "options_used",
    "pytest_argv",
    "pytest_flag",
]


@dataclass(frozen=True)
class RunOption:
    """One option of a run. ``name`` is the CLI spelling without ``--``; ``pytest_default`` is the
    plugin's default where it differs from the CLI's (the plugin then falls back to the
    environment, e.g. ``LLORCH_SEED``)."""

    name: str
    help: str
    metavar: str | None = None
    default: Any = None
    choices: tuple[str, ...] | None = None
    action: str | None = None
    type: Callable[[str], Any] | None = None
    pytest_default: Any = ...
    pytest_help: str | None = None

    @property
    def dest(self) -> str:
        """The attribute on the CLI's namespace (the plugin's is ``llorch_`` + this)."""
        return self.name.replace("-", "_")

    def kwargs(self, *, pytest: bool) -> dict[str, Any]:
        text = self.pytest_help if pytest and self.pytest_help is not None else self.help
        kw: dict[str, Any] = {"help": _spell(text, pytest=pytest)}
        if self.action is not None:
            kw["action"] = self.action
        if self.metavar is not None:
            kw["metavar"] = self.metavar
        if self.choices is not None:
            kw["choices"] = self.choices
        if self.type is not None:
            kw["type"] = self.type
        default = self.pytest_default if pytest and self.pytest_default is not ... else self.default
        if self.action == "append":
            default = []
        if default is not None or self.action == "append":
            kw["default"] = default
        return kw


#: Selection and identity of a run, shared by the CLI's ``run`` and the pytest plugin.
RUN_OPTIONS: Final[tuple[RunOption, ...]] = (
    RunOption(
        "adapter",
        "a vendor adapter factory (module:factory) or an entry point of "
        "llorch_conformance.adapters (default: the built-in adapters)",
        metavar="MODULE:FACTORY|NAME",
    ),
    RunOption(
        "dialect",
        "the engine dialect the adapter speaks (llamacpp, vllm, tgi, openai, triton, mock)",
        metavar="ENGINE",
    ),
    RunOption(
        "adapter-name",
        "with --adapter: the adapter's name in tables, bundles and matrices "
        "(default: the distribution that provides the factory's module)",
        metavar="NAME",
    ),
    RunOption(
        "adapter-version",
        "with --adapter: the adapter's version (default: that distribution's version, else "
        "the module's __version__)",
        metavar="VERSION",
    ),
    RunOption("only", "restrict the built-in adapters to these dialects", metavar="D1,D2"),
    RunOption(
        "engine-url",
        "a live engine (needs --dialect); a fault proxy in front of it injects the faults",
        metavar="URL",
    ),
    RunOption(
        "orchestrator-url",
        "judge an orchestrator facade at URL black-box (tasks, SSE, cancel, auth, metrics); "
        "scenarios it cannot control are reported unsupported",
        metavar="URL",
    ),
    RunOption(
        "orchestrator-pool",
        "with --orchestrator-url: the pool standing for the target (default: default)",
        metavar="POOL",
        default="default",
    ),
    RunOption(
        "orchestrator-token-env",
        "with --orchestrator-url: environment variable holding its API token "
        "(default LLORCH_API_TOKEN; a token is never taken from the command line)",
        metavar="NAME",
        default="LLORCH_API_TOKEN",
    ),
    RunOption(
        "level",
        "which requirement levels to run (default: should = all)",
        choices=("must", "should"),
        default="should",
    ),
    RunOption(
        "requirement",
        "only scenarios proving this ID (repeatable)",
        metavar="ID",
        action="append",
    ),
    RunOption(
        "scope",
        "what the run judges: the adapter's scenarios, the adapter host's, the "
        "orchestrator's, the worker's, or all (the suite's own self-checks included). Default: "
        "adapter for --adapter/--engine-url runs, orchestrator for --orchestrator-url, else all",
        choices=SCOPES,
    ),
    RunOption(
        "seed",
        "run seed, recorded in the results (default 0)",
        metavar="N",
        type=int,
        default=0,
        pytest_default=None,
        pytest_help="run seed, recorded in the results (default $LLORCH_SEED, else 0)",
    ),
)

_NAMES = "|".join(sorted((re.escape(o.name) for o in RUN_OPTIONS), key=len, reverse=True))
_OPTION_REF = re.compile(rf"--({_NAMES})\b(?!-)")


def _spell(text: str, *, pytest: bool) -> str:
    """Option names in a help text, spelled for the surface (``--adapter`` → ``--llorch-adapter``)."""
    return _OPTION_REF.sub(r"--llorch-\1", text) if pytest else text


def pytest_flag(option: RunOption) -> str:
    return f"--llorch-{option.name}"


def pytest_argv(values: Mapping[str, Any]) -> list[str]:
    """The plugin's argv for a run's option values, keyed by :attr:`RunOption.dest` (what
    ``run_suite`` passes to its pytest session). Absent, ``None`` or empty values are not given;
    a repeatable option repeats its flag; a sequence otherwise is joined with commas (``only``)."""
    argv: list[str] = []
    for option in RUN_OPTIONS:
        value = values.get(option.dest)
        if value is None or (isinstance(value, str | list | tuple) and not value):
            continue
        flag = pytest_flag(option)
        if option.action == "append":
            for item in value:
                argv += [flag, str(item)]
        elif isinstance(value, list | tuple):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return argv


def add_cli_options(parser: argparse.ArgumentParser) -> None:
    """Add every :data:`RUN_OPTIONS` entry to the CLI's ``run`` parser as ``--<name>``."""
    for option in RUN_OPTIONS:
        parser.add_argument(f"--{option.name}", dest=option.dest, **option.kwargs(pytest=False))


def add_pytest_options(group: Any) -> None:
    """Add every :data:`RUN_OPTIONS` entry to the plugin's pytest option group as
    ``--llorch-<name>`` (destination ``llorch_<name>``)."""
    for option in RUN_OPTIONS:
        group.addoption(
            pytest_flag(option), dest=f"llorch_{option.dest}", **option.kwargs(pytest=True)
        )


def options_used(namespace: Any) -> bool:
    """Whether any run option of the plugin differs from its default (the plugin activates)."""
    for option in RUN_OPTIONS:
        default = option.kwargs(pytest=True).get("default")
        if getattr(namespace, f"llorch_{option.dest}", default) != default:
            return True
    return False
