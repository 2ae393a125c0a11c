"""Fixtures of the step library; registered by :mod:`conformance.plugin` when the suite runs.

* ``llorch_portal`` (session): one anyio blocking portal; every adapter call runs on its loop.
* ``llorch_engines`` (session): mock engines per dialect, started lazily, stopped at the end.
* ``llorch_target``: parametrised by the plugin (one test per selected adapter).
* ``llorch_ctx`` (function): the :class:`~steps._context.ScenarioContext`; checks ``@needs:``
  declarations up front, captures logs, and leaves the evidence on the test item.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from conformance.plugin import NOT_APPLICABLE, PER_RUN, active_state, item_requirements, item_tags

from ._context import EnginePool, ScenarioContext

pytest_plugins = [
    "steps._given",
    "steps._when",
    "steps._then",
    "steps._then_more",
    "steps._host",
    "steps._orch",
    "steps._bundle",
    "steps._registration",
    "steps.worker_steps",
]


@pytest.fixture(scope="session")
def llorch_portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as portal:
        yield portal


@pytest.fixture(scope="session")
def llorch_seed(request: pytest.FixtureRequest) -> int:
    state = active_state(request.config)
    return state.seed if state is not None else 0


@pytest.fixture(scope="session")
def llorch_engines(llorch_seed: int) -> Iterator[EnginePool]:
    pool = EnginePool(llorch_seed)
    try:
        yield pool
    finally:
        pool.close()


#: Capabilities an adapter may declare unsupported (``Capabilities.declared_unsupported``).
KNOWN_NEEDS = frozenset({"cancel", "api_key", "tls", "deadline", "metrics_scrape", "retries"})


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
    )
    ctx.logs.install()
    try:
        if llorch_target is not PER_RUN:
            if ctx.live and "black-box" not in tags:
                ctx.unsupported(
                    f"live engine at {llorch_target.engine_url}: this scenario needs the mock "
                    "engine (fault control, journal or plan)"
                )
            needs = sorted(t.split(":", 1)[1] for t in tags if t.startswith("needs:"))
            if needs:
                declared = set(ctx.declared_unsupported())
                for need in needs:
                    if need in declared or f"unsupported:{need}" in declared:
                        ctx.unsupported(
                            f"adapter {llorch_target.name!r} declares {need!r} unsupported "
                            f"(Capabilities.declared_unsupported={sorted(declared)})"
                        )
        yield ctx
    finally:
        try:
            ctx.close()
        finally:
            ctx.logs.remove()
            try:
                node._llorch_evidence = ctx.evidence()
            except Exception as exc:
                node._llorch_evidence = {"error": f"evidence collection failed: {exc!r}"}
