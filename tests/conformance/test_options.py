"""One option table feeds the CLI's ``run`` and the pytest plugin (conformance._options)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from llorch_conformance.conformance._options import (
    RUN_OPTIONS,
    add_cli_options,
    add_pytest_options,
    options_used,
)


class _Group:
    """Records what the plugin adds to its pytest option group."""

    def __init__(self) -> None:
        self.options: dict[str, dict[str, Any]] = {}

    def addoption(self, flag: str, **kw: Any) -> None:
        self.options[flag] = kw


def _cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_cli_options(parser)
    return parser


def test_every_run_option_is_on_both_surfaces() -> None:
    group = _Group()
    add_pytest_options(group)
    cli = {a.option_strings[0]: a for a in _cli()._actions if a.option_strings[0] != "-h"}
    assert set(cli) == {f"--{o.name}" for o in RUN_OPTIONS}
    assert set(group.options) == {f"--llorch-{o.name}" for o in RUN_OPTIONS}
    for o in RUN_OPTIONS:
        assert group.options[f"--llorch-{o.name}"]["dest"] == "llorch_" + o.name.replace("-", "_")
        assert cli[f"--{o.name}"].choices == group.options[f"--llorch-{o.name}"].get("choices")


def test_help_names_options_in_each_surfaces_spelling() -> None:
    group = _Group()
    add_pytest_options(group)
    pool = group.options["--llorch-orchestrator-pool"]["help"]
    assert pool.startswith("with --llorch-orchestrator-url:"), pool
    scope = group.options["--llorch-scope"]["help"]
    assert "--llorch-adapter/--llorch-engine-url" in scope and "--adapter/" not in scope
    cli_scope = next(a for a in _cli()._actions if a.dest == "scope").help or ""
    assert "--adapter/--engine-url" in cli_scope and "llorch-" not in cli_scope


def test_cli_defaults_and_types() -> None:
    ns = _cli().parse_args(["--seed", "7", "--requirement", "ADAPT-3000", "--requirement", "X"])
    assert ns.seed == 7 and ns.requirement == ["ADAPT-3000", "X"]
    ns = _cli().parse_args([])
    assert (ns.seed, ns.requirement, ns.level, ns.orchestrator_pool) == (0, [], "should", "default")
    with pytest.raises(SystemExit):
        _cli().parse_args(["--scope", "everything"])


def test_plugin_activates_on_any_option_and_not_on_defaults() -> None:
    group = _Group()
    add_pytest_options(group)
    defaults = argparse.Namespace(
        **{kw["dest"]: kw.get("default") for kw in group.options.values()}
    )
    assert defaults.llorch_seed is None  # the plugin falls back to $LLORCH_SEED
    assert not options_used(defaults)
    for flag, value in [("llorch_seed", 0), ("llorch_only", "vllm"), ("llorch_level", "must")]:
        changed = argparse.Namespace(**{**vars(defaults), flag: value})
        assert options_used(changed), flag


def test_pytest_argv_carries_the_cli_selection_to_the_plugin() -> None:
    """CLI flags → run_suite's values → the session's ``--llorch-*`` argv → the same values."""
    from llorch_conformance.conformance._options import pytest_argv

    cli = _cli().parse_args(
        ["--adapter", "pkg.mod:make", "--dialect", "vllm", "--requirement", "ADAPT-3000",
         "--requirement", "WA-INT-3001", "--seed", "7", "--level", "must", "--scope", "adapter",
         "--orchestrator-pool", "gpu"]
    )  # fmt: skip
    values = {o.dest: getattr(cli, o.dest) for o in RUN_OPTIONS}
    values["only"] = ("llamacpp", "tgi")
    plugin = argparse.ArgumentParser()
    group = _Group()
    add_pytest_options(group)
    for flag, kw in group.options.items():
        plugin.add_argument(flag, **kw)
    got = plugin.parse_args(pytest_argv(values))
    assert got.llorch_adapter == "pkg.mod:make" and got.llorch_dialect == "vllm"
    assert got.llorch_requirement == ["ADAPT-3000", "WA-INT-3001"]
    assert (got.llorch_seed, got.llorch_level, got.llorch_scope) == (7, "must", "adapter")
    assert got.llorch_only == "llamacpp,tgi" and got.llorch_orchestrator_pool == "gpu"
    assert got.llorch_engine_url is None  # not given: not on the argv
    assert "--llorch-engine-url" not in pytest_argv(values)
