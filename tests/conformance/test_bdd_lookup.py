"""The memoised pytest-bdd step lookup (steps._bdd_lookup) gives pytest-bdd's own answer for
every step of the suite, and a step definition added later is seen."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from llorch_conformance.steps import _bdd_lookup


class _Compare:
    """After collection: the memoised lookup against the original, for every step of every
    collected scenario, twice (the second time from the cache)."""

    def __init__(self) -> None:
        self.steps = 0
        self.mismatches: list[str] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        mod = importlib.import_module("pytest_bdd.scenario")
        memo = mod.find_fixturedefs_for_step
        original = memo.__wrapped__
        templates = mod.scenario_wrapper_template_registry
        fm = session._fixturemanager
        for item in session.items:
            template = templates.get(getattr(item, "obj", None))
            spec = getattr(item, "callspec", None)
            example = spec.params.get("_pytest_bdd_example", {}) if spec is not None else {}
            scen = template.render(example) if template is not None else None
            for step in getattr(scen, "steps", ()):
                want = list(original(step=step, fixturemanager=fm, node=item))
                for _ in range(2):
                    got = list(memo(step=step, fixturemanager=fm, node=item))
                    if got != want:
                        self.mismatches.append(f"{item.nodeid}: {step.type} {step.name}")
                self.steps += 1


def test_the_memoised_lookup_answers_as_pytest_bdd_for_every_step(tmp_path: Path) -> None:
    from llorch_conformance.conformance._runner import _session_args

    _bdd_lookup.install()
    args = _session_args(
        str(tmp_path), adapter=None, dialect=None, engine_url=None, only=("vllm", "mock"),
        orchestrator_url=None, orchestrator_pool="default", orchestrator_token_env="X",
        level="should", requirements=(), seed=0, run_id="t", scope="all", results_path=None,
    )  # fmt: skip
    check = _Compare()
    rc = pytest.main([*args, "--collect-only"], plugins=[check])
    assert int(rc) == 0
    assert check.steps > 1000  # every step of ~300 scenarios
    assert not check.mismatches, check.mismatches[:10]


class _Node:
    def __init__(self, *ids: str) -> None:
        self.ids = ids

    def listchain(self) -> list[Any]:
        return [type("N", (), {"nodeid": i})() for i in self.ids]


class _Step:
    type = "given"
    name = "a step"


class _FM:
    """Stands for a session's fixture manager (weakly referenced by the cache)."""


def test_the_cache_key_is_the_step_the_collectors_above_and_the_known_definitions() -> None:
    calls: list[str] = []
    registry: list[object] = [object()]

    def original(step: Any, fixturemanager: Any, node: Any) -> list[str]:
        calls.append(node.ids[-1])
        return [f"def-{len(registry)}"]

    memo = _bdd_lookup._memoised(original, registry)
    fm = _FM()
    a = _Node("", "mod.py", "mod.py::test_a")
    b = _Node("", "mod.py", "mod.py::test_b")
    assert list(memo(step=_Step(), fixturemanager=fm, node=a)) == ["def-1"]
    # another test of the same module: the answer is the module's, computed once
    assert list(memo(step=_Step(), fixturemanager=fm, node=b)) == ["def-1"]
    assert calls == ["mod.py::test_a"]
    # a test of another module asks again
    memo(step=_Step(), fixturemanager=fm, node=_Node("", "other.py", "other.py::test_c"))
    assert len(calls) == 2
    # a step definition registered later: asked again, and the new answer is seen
    registry.append(object())
    assert list(memo(step=_Step(), fixturemanager=fm, node=b)) == ["def-2"]
    assert len(calls) == 3
    # another session (fixture manager): its own cache
    memo(step=_Step(), fixturemanager=_FM(), node=b)
    assert len(calls) == 4


def test_install_is_idempotent() -> None:
    _bdd_lookup.install()
    first: Any = importlib.import_module("pytest_bdd.scenario").find_fixturedefs_for_step
    _bdd_lookup.install()
    assert importlib.import_module("pytest_bdd.scenario").find_fixturedefs_for_step is first
