"""Steps of ``features/contract``: the adapter's surface — health, props, capabilities, engine_version, metrics."""

from __future__ import annotations

from pytest_bdd import then, when

from llorch_conformance.adapters.api import Capabilities, WorkerAdapter, WorkerHealth, WorkerProps

from ._checks import engine_versions, versions_seen
from ._context import ScenarioContext


@when("the adapter's health is queried")
def query_health(llorch_ctx: ScenarioContext) -> None:
    adapter = llorch_ctx.get_adapter()
    llorch_ctx.surface["health"] = llorch_ctx.call(adapter.health)


@when("the adapter's surface is inspected")
def inspect_surface(llorch_ctx: ScenarioContext) -> None:
    adapter = llorch_ctx.get_adapter()
    s = llorch_ctx.surface
    s["adapter"] = adapter
    s["is_protocol"] = isinstance(adapter, WorkerAdapter)
    s["health"] = llorch_ctx.call(adapter.health)
    s["props"] = llorch_ctx.call(adapter.props)
    s["capabilities"] = llorch_ctx.call(adapter.capabilities)
    s["engine_version"] = llorch_ctx.call(adapter.engine_version)
    s["engine_version_again"] = llorch_ctx.call(adapter.engine_version)
    # every call, across inspections (before and after a submit): the version checks read these
    s.setdefault("engine_versions", []).extend([s["engine_version"], s["engine_version_again"]])
    llorch_ctx.notes["surface"] = {
        "health": repr(s["health"]),
        "props": repr(s["props"]),
        "capabilities": repr(s["capabilities"]),
        "engine_version": s["engine_version"],
    }


@then("every metrics event carries only numbers")
def metrics_numbers(llorch_ctx: ScenarioContext) -> None:
    """Numbers where the contract says numbers (``steps._values``): a string, an object or
    ``null`` in a metrics event fails, and so does a negative or non-finite value."""
    from ._values import metrics_problems

    run = llorch_ctx.last
    problems: list[str] = []
    for _, ev in run.events:
        if ev.kind == "metrics":
            problems.extend(metrics_problems(ev.data, len(run.tokens)))
    llorch_ctx.check(
        not problems,
        "a metrics event carries values the contract does not allow",
        "; ".join(problems[:6]),
        ids=("ADAPT-3001", "ADAPT-3004", "OC-ADAPT-5020"),
    )


@then("it implements the WorkerAdapter protocol")
def is_protocol(llorch_ctx: ScenarioContext) -> None:
    s = llorch_ctx.surface
    llorch_ctx.check(
        s.get("is_protocol"),
        "the adapter does not implement the WorkerAdapter protocol",
        repr(type(s.get("adapter"))),
        ids=("ADAPT-3000", "ORCH-3620", "OC-ADAPT-OAI-6000"),
    )


@then("health is live and ready")
def health_ready(llorch_ctx: ScenarioContext) -> None:
    h = llorch_ctx.surface.get("health")
    llorch_ctx.check(
        isinstance(h, WorkerHealth) and h.live is True and h.ready is True,
        "health is not {live: true, ready: true} for a ready engine",
        repr(h),
        ids=(
            "ADAPT-3000",
            "OC-ADAPT-5001",
            "ORCH-3054",
            "OC-ADAPT-5020",
            "OC-ADAPT-5040",
            "OC-ADAPT-5060",
            "OC-ADAPT-OAI-6000",
        ),
    )


@then("health is not ready")
def health_not_ready(llorch_ctx: ScenarioContext) -> None:
    h = llorch_ctx.surface.get("health")
    llorch_ctx.check(
        isinstance(h, WorkerHealth) and h.ready is False,
        "health says ready while the engine loads",
        repr(h),
        ids=("ADAPT-3000",),
    )


@then("props report slot counts as integers or nothing")
def props_types(llorch_ctx: ScenarioContext) -> None:
    p = llorch_ctx.surface.get("props")
    ok = isinstance(p, WorkerProps) and all(
        v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
        for v in (p.slots_total, p.slots_free)
    )
    if ok and isinstance(p, WorkerProps) and p.slots_total is not None and p.slots_free is not None:
        ok = p.slots_free <= p.slots_total
    llorch_ctx.check(
        ok,
        "props are not WorkerProps with non-negative slot counts (free <= total)",
        repr(p),
        ids=("ADAPT-3000",),
    )


@then("engine_version is a non-empty stable string")
def version_stable(llorch_ctx: ScenarioContext) -> None:
    """Non-empty, the same on every call (before and after a submit, and in ``started``), and
    equal to the engine's own version where the engine is known."""
    seen = versions_seen(llorch_ctx)
    v = seen[0][1] if seen else None
    llorch_ctx.check(
        isinstance(v, str) and v.strip() and all(x == v for _, x in seen),
        "engine_version is empty or unstable",
        "; ".join(f"{where}: {x!r}" for where, x in seen),
        ids=("ADAPT-3000", "OC-ADAPT-OAI-6000"),
    )
    own = engine_versions(llorch_ctx)
    if own is not None:
        from ._values import version_matches

        llorch_ctx.check(
            version_matches(v, own),
            "engine_version is not the version the engine reports",
            f"adapter says {v!r}, the engine reports {' or '.join(own)!r}",
            ids=("ADAPT-3000", "OC-ADAPT-OAI-6000"),
        )


@then("capabilities name the engine and its version")
def caps_named(llorch_ctx: ScenarioContext) -> None:
    c = llorch_ctx.surface.get("capabilities")
    ok = (
        isinstance(c, Capabilities)
        and bool(c.engine)
        and c.engine_version == llorch_ctx.surface.get("engine_version")
    )
    llorch_ctx.check(
        ok,
        "capabilities do not name the engine and the same engine_version",
        repr(c),
        ids=("ADAPT-3000", "OC-ADAPT-5050"),
    )
