"""Fixtures of the step library; registered by :mod:`conformance.plugin` when the suite runs.

* ``llorch_portal`` (session): one anyio blocking portal; every adapter call runs on its loop.
* ``llorch_engines`` (session): mock engines per dialect, started lazily, stopped at the end.
* ``llorch_target``: parametrised by the plugin (one test per selected adapter).
* ``llorch_ctx`` (function): the :class:`~steps._context.ScenarioContext`; checks ``@needs:``
  declarations up front, captures logs, and leaves the evidence on the test item.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from llorch_conformance.adapters.api import Capability
from llorch_conformance.adapters.http_util import verifying_context
from llorch_conformance.conformance.plugin import (
    NOT_APPLICABLE,
    PER_RUN,
    Unsupported,
    active_state,
    item_requirements,
    item_tags,
)

from . import _bdd_lookup
from ._context import EnginePool, ScenarioContext

_bdd_lookup.install()  # the step lookup, memoised (see the module: the answer never goes stale)

#: The step modules: one per feature area (``steps/_<area>.py`` mirrors ``features/<area>/``;
#: the oracle area's is ``_oracle_steps``, next to the ``_oracle`` helper) and the shared
#: vocabulary (``_common``). Helpers (``_context``, ``_checks``, ``_oracle``, ``_values``,
#: ``_tls``) hold no steps.
STEP_MODULES = {
    "": "_common",
    "cancel": "_cancel",
    "contract": "_contract",
    "determinism": "_determinism",
    "engines": "_engines",
    "errors": "_errors",
    "harness": "_harness",
    "host": "_host",
    "http_util": "_http_util",
    "observability": "_observability",
    "oracle": "_oracle_steps",
    "orchestrator": "_orchestrator",
    "proof_bundle": "_proof_bundle",
    "security": "_security",
    "stream": "_stream",
    "worker": "_worker",
}

#: The step modules as plugin names, registered right after this module by
#: :mod:`conformance.plugin` in this order. Not ``pytest_plugins``: pytest would mark each for
#: assertion rewriting, and the step library judges through ``ScenarioContext.check``
#: (``ConformanceFailure`` naming its requirements), not bare ``assert``, so rewriting them only
#: cost every session ~0.1 s (parse, rewrite, compile; not cached where bytecode is not written).
STEP_PLUGINS = tuple(f"llorch_conformance.steps.{m}" for m in STEP_MODULES.values())

#: What the scenarios of each feature area import when they first run, imported once by
#: :func:`pytest_runtestloop` before any scenario starts ("" = every run that has a scenario).
#: Why: ``run`` forks its workers from the process that collected the session
#: (``conformance._forkpool``); a module imported there is shared by every worker, while one a
#: scenario imports is imported again by each worker that runs such a scenario (~0.2 s of CPU
#: per worker where bytecode is not cached, all at once at the start of the session). In a serial
#: run or an xdist worker it is the same work done a little earlier. ``tests/conformance/
#: test_startup.py`` checks that a warmed session imports nothing more of ours, that every name
#: of ours here imports, and that no thread is started (forking needs a single-threaded parent).
#: Third-party names are optional extras of uvicorn/httpx: missing ones are skipped.
WARM_IMPORTS: dict[str, tuple[str, ...]] = {
    "": (
        "llorch_conformance.mock_engines",
        "llorch_conformance._serving",
        "llorch_conformance.steps._oracle",
        "llorch_conformance.steps._values",
        # the portal's event loop; what uvicorn loads when a server starts, httpx when a client
        # first connects
        "anyio._backends._asyncio",
        "uvicorn.protocols.http.auto",
        "uvicorn.protocols.websockets.auto",
        "uvicorn.lifespan.on",
        "uvicorn.lifespan.off",
        "uvicorn.loops.auto",
        "uvicorn.loops.uvloop",
        "uvloop",
        "httpcore",
        "h11",
        "h2.connection",
        "certifi",
    ),
    "security": (
        "llorch_conformance.steps._tls",
        "trustme",
        "cryptography.hazmat.backends.openssl",
    ),
    "host": ("llorch_conformance.adapters.host",),
    "orchestrator": (
        "llorch_conformance.adapters.host",
        "llorch_conformance.adapters.mock",
        "llorch_conformance.adapters.orchestrator",
        "prometheus_client.parser",
    ),
    "worker": (
        "llorch_conformance.adapters.rbee_worker",
        "llorch_conformance.conformance.rbee",
        "llorch_conformance.mock_engines.rbee",
    ),
    "proof_bundle": ("llorch_conformance.reports", "jsonschema", "fastjsonschema"),
}


@pytest.fixture(scope="session")
def llorch_portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as portal:
        yield portal


@pytest.fixture(scope="session")
def llorch_seed(request: pytest.FixtureRequest) -> int:
    state = active_state(request.config)
    return state.seed if state is not None else 0


@pytest.fixture(scope="session")
def llorch_engines(request: pytest.FixtureRequest, llorch_seed: int) -> Iterator[EnginePool]:
    state = active_state(request.config)
    live = {
        t.dialect: t.engine_url
        for t in (state.targets if state is not None else [])
        if getattr(t, "engine_url", None) and getattr(t, "fault_proxy", True)
    }
    pool = EnginePool(llorch_seed, live)
    try:
        yield pool
    finally:
        pool.close()


#: Capabilities an adapter may declare unsupported (``Capabilities.declared_unsupported``): the
#: ``@needs:<name>`` tags a scenario may carry.
KNOWN_NEEDS = frozenset(c.value for c in Capability)


@pytest.fixture
def llorch_ctx(
    request: pytest.FixtureRequest,
    llorch_target: Any,
    llorch_portal: BlockingPortal,
    llorch_engines: EnginePool,
    llorch_seed: int,
) -> Iterator[ScenarioContext]:
    node = request.node
    if isinstance(llorch_target, NOT_APPLICABLE):
        pytest.skip(
            "not applicable: no selected target speaks " + ", ".join(llorch_target.dialects)
        )
    tags = item_tags(node)
    ctx = ScenarioContext(
        target=llorch_target,
        requirements=item_requirements(node),
        tags=tags,
        portal=llorch_portal,
        engines=llorch_engines,
        seed=llorch_seed,
        getfixturevalue=request.getfixturevalue,
        scenario_key=_scenario_key(node),
    )
    ctx.logs.install()
    try:
        orch = _orchestrator_reason(request, llorch_target, tags)
        if orch is not None:
            ctx.unsupported(orch)
        # (an orchestrator target is live too, but its gate is the one above)
        engine_live = ctx.live and not getattr(llorch_target, "orchestrator", False)
        if (
            llorch_target is not PER_RUN
            and engine_live
            and not ctx.proxied
            and "black-box" not in tags
        ):
            ctx.unsupported(
                f"live engine at {llorch_target.engine_url}: this scenario needs the mock "
                "engine (fault control, journal or plan)"
            )
        ctx.learn_orchestrator_engine()
        if llorch_target is not PER_RUN:
            needs = sorted(t.split(":", 1)[1] for t in tags if t.startswith("needs:"))
            if needs:
                declared = set(ctx.declared_unsupported())
                gaps = [n for n in needs if n in declared or f"unsupported:{n}" in declared]
                if gaps:
                    # the fold judges each declaration per requirement (conformance._declarations)
                    raise Unsupported(
                        f"adapter {llorch_target.name!r} declares {', '.join(map(repr, gaps))} "
                        f"unsupported (Capabilities.declared_unsupported={sorted(declared)})",
                        declared=gaps,
                    )
        yield ctx
    finally:
        try:
            ctx.close()
        finally:
            ctx.logs.remove()
            try:
                node._llorch_evidence = ctx.evidence()
                step = getattr(node, "_llorch_failed_step", None)
                if step:
                    node._llorch_evidence["failed_step"] = step
            except Exception as exc:
                node._llorch_evidence = {"error": f"evidence collection failed: {exc!r}"}


def _scenario_key(node: Any) -> str:
    """The scenario's identity without its target: the same on every adapter (the cross-adapter
    scenarios compare one task), different between scenarios and outline examples."""
    name = str(getattr(node, "originalname", None) or getattr(node, "name", ""))
    callspec = getattr(node, "callspec", None)
    params = getattr(callspec, "params", {}) if callspec is not None else {}
    extra = sorted(f"{k}={v!r}" for k, v in params.items() if k != "llorch_target")
    return "|".join([name, *extra])


def _feature_folder(node: Any) -> str:
    """The folder of the scenario's feature file under ``features/`` ("" when unknown)."""
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    fn = getattr(node, "function", None)
    template = scenario_wrapper_template_registry.get(fn) if fn is not None else None
    filename = getattr(getattr(template, "feature", None), "filename", "") or ""
    return Path(filename).parent.name


def _orchestrator_reason(request: pytest.FixtureRequest, target: Any, tags: set[str]) -> str | None:
    """For ``--orchestrator-url`` runs: why this scenario is unsupported (``None``: it runs)."""
    from ._orchestrator import orchestrator_gate

    per_run = target is PER_RUN
    if per_run:
        state = active_state(request.config)
        targets = state.targets if state is not None else []
        if not targets or not all(getattr(t, "orchestrator", False) for t in targets):
            return None
        url = targets[0].orchestrator_url
    elif getattr(target, "orchestrator", False):
        url = target.orchestrator_url
    else:
        return None
    return orchestrator_gate(url, _feature_folder(request.node), tags, per_run=per_run)


def pytest_bdd_step_error(
    request: pytest.FixtureRequest,
    feature: Any,
    scenario: Any,
    step: Any,
    step_func: Any,
    step_func_args: Any,
    exception: Exception,
) -> None:
    """Remember the step that failed: failure reports show it as what was expected."""
    kind = str(getattr(step, "type", "") or getattr(step, "keyword", "")).strip().capitalize()
    request.node._llorch_failed_step = f"{kind} {getattr(step, 'name', '')}".strip()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Import what the collected scenarios will import (:data:`WARM_IMPORTS`, and the modules
    of the built-in adapters under test) and load the CA bundle before the first one runs; runs before the fork pool's
    loop (registered later, so called first among ``tryfirst`` hooks) and returns ``None`` so
    the run loop proceeds as before."""
    if session.config.option.collectonly or not session.items:
        return
    for name in warm_imports(session.items, _targets(session.config)):
        try:
            importlib.import_module(name)
        except ImportError:
            if name.startswith("llorch_conformance."):
                raise  # ours always imports: a broken module is news, not an optimisation
    # and the CA bundle, which every client of the harness and the adapters verifies with
    # (~0.1 s of CPU per context; forked workers share the parent's)
    verifying_context(http2=False)
    verifying_context(http2=True)


def warm_imports(items: list[pytest.Item], targets: list[Any]) -> list[str]:
    """The module names :func:`pytest_runtestloop` imports for ``items`` run on ``targets``."""
    names = dict.fromkeys(WARM_IMPORTS[""])
    for area in sorted({_feature_folder(item) for item in items}):
        names.update(dict.fromkeys(WARM_IMPORTS.get(area, ())))
    for t in targets:  # a built-in adapter's module is imported by its factory's first call
        if getattr(t, "origin", None) == "builtin":
            names[f"llorch_conformance.adapters.{t.name}"] = None
    return list(names)


def _targets(config: pytest.Config) -> list[Any]:
    state = active_state(config)
    return list(state.targets) if state is not None else []
