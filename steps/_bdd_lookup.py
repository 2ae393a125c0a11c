"""pytest-bdd's step lookup, memoised: the same answer, computed once per step text and module.

Why: for every step of every scenario pytest-bdd walks *every* fixture name of the session and
asks pytest which definitions of it the test can see (``find_fixturedefs_for_step``). The suite
has a few hundred step definitions, and pytest-bdd registers the parsed arguments of each step
it runs as fixtures too, so the walk grows as a run goes on: profiled at ~0.7 ms per step early
in a run and several seconds of CPU over the 600 scenarios of the default run — more than any
scenario's own work but the waits.

What is memoised, and why the answer cannot go stale:

* the answer is the step *definitions* (fixtures whose function pytest-bdd registered as a
  step) that match the step's type and text and that the test can see;
* step definitions are registered when their modules are imported (plugins, conftests, test
  modules), never per test; the key holds the number of step definitions known, so one added
  later (a module imported mid-run) misses the cache instead of being ignored;
* what a test can see of a definition depends on the collectors above it (session, package,
  module, class), not on the test itself: the key holds their node ids;
* the cache lives on the session's fixture manager (weakly), so a second session in the same
  process never sees the first one's definitions.

The fixtures pytest-bdd injects per test (parsed step arguments, ``target_fixture`` values) are
never step definitions, which is why they may come and go without touching the answer.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["install"]

_Key = tuple[int, object, str, tuple[str, ...]]


def install() -> None:
    """Replace ``pytest_bdd.scenario.find_fixturedefs_for_step`` by its memoised form (once)."""
    scenario_mod = importlib.import_module("pytest_bdd.scenario")
    original: Any = getattr(scenario_mod, "find_fixturedefs_for_step")  # noqa: B009
    if getattr(original, "__llorch_memo__", False):
        return
    registry = importlib.import_module("pytest_bdd.steps").step_function_context_registry
    setattr(scenario_mod, "find_fixturedefs_for_step", _memoised(original, registry))  # noqa: B010


def _memoised(
    original: Callable[..., Iterable[Any]], registry: Any
) -> Callable[..., Iterator[Any]]:
    caches: weakref.WeakKeyDictionary[Any, dict[_Key, tuple[Any, ...]]] = (
        weakref.WeakKeyDictionary()
    )

    def find_fixturedefs_for_step(step: Any, fixturemanager: Any, node: Any) -> Iterator[Any]:
        cache = caches.get(fixturemanager)
        if cache is None:
            cache = caches[fixturemanager] = {}
        parents = tuple(n.nodeid for n in node.listchain()[:-1])
        key = (len(registry), step.type, step.name, parents)
        found = cache.get(key)
        if found is None:
            found = cache[key] = tuple(
                original(step=step, fixturemanager=fixturemanager, node=node)
            )
        return iter(found)

    find_fixturedefs_for_step.__llorch_memo__ = True  # type: ignore[attr-defined]
    find_fixturedefs_for_step.__wrapped__ = original  # type: ignore[attr-defined]
    return find_fixturedefs_for_step
