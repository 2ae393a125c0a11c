"""Steps for adapters served through the adapter host (``adapters.host``: AH-*, ORCH-3600..3604).

The adapter under test is bound as replica ``r0`` of pool ``pool-a`` in a fresh
:class:`adapters.host.AdapterHost`; a small view gives the host the WorkerAdapter shape, so the
ordinary stream, fault and cancel steps run unchanged *through* the host. That proves the host's
requirements with every target adapter — a vendor learns whether their adapter works under it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from pytest_bdd import given, parsers, then, when

from llorch_conformance.adapters.api import TaskRequest, TokenEvent

from ._context import LogCapture, ScenarioContext, collect_stream

POOL = "pool-a"
REPLICA = "r0"


class HostView:
    """The host's facade for one pool, in the WorkerAdapter shape the steps drive."""

    def __init__(self, host: Any, inner: Any, *, correlation_id: str | None = None) -> None:
        self.host = host
        self.inner = inner
        self.correlation_id = correlation_id
        self.capability_calls = 0

    async def health(self) -> Any:
        return await self.host.health(POOL)

    async def props(self) -> Any:
        return await self.host.props(POOL)

    async def capabilities(self) -> Any:
        return await self.host.capabilities(POOL)

    async def engine_version(self) -> str:
        return str(await self.inner.engine_version())

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        result: AsyncIterator[TokenEvent] = self.host.submit(
            POOL, request, correlation_id=self.correlation_id
        )
        return result

    async def cancel(self, task_id: str) -> None:
        await self.host.cancel(POOL, task_id)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


class _CountingCaps:
    """Wraps the adapter to count capability calls (the cache check of ORCH-3603)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def capabilities(self) -> Any:
        self.calls += 1
        return await self._inner.capabilities()


def host_view(ctx: ScenarioContext) -> HostView:
    """Build (once) the host with the target adapter bound as ``pool-a/r0``."""
    view = ctx.scratch.get("host_view")
    if view is not None:
        return view  # type: ignore[no-any-return]
    from llorch_conformance.adapters.host import AdapterHost, BreakerConfig, PoolPolicy
    from llorch_conformance.adapters.http_util import RetryPolicy

    # The in-process mock adapter may already exist (faults are set on it): reuse it.
    inner = _CountingCaps(ctx.adapter if ctx.adapter is not None else ctx.make_adapter())
    host = AdapterHost(
        retry_policy=RetryPolicy(seed=ctx.seed),
        breaker=BreakerConfig(
            failure_threshold=int(ctx.scratch.get("breaker_threshold", 5)), open_s=30.0
        ),
    )
    host.bind(POOL, REPLICA, inner)
    attempts = ctx.scratch.get("pool_attempts")
    if attempts is not None:
        host.set_pool_policy(
            POOL, PoolPolicy(retry=RetryPolicy(seed=ctx.seed, max_attempts=int(attempts)))
        )
    view = HostView(host, inner, correlation_id=ctx.scratch.get("correlation_id"))
    ctx.scratch["host_view"] = view
    ctx.scratch["host"] = host
    ctx.adapter = view
    return view


@given("the adapter is served through the adapter host")
def through_host(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.scratch["via_host"] = True
    llorch_ctx.notes["host"] = {"pool": POOL, "replica": REPLICA}


@given(parsers.parse("the pool's retry policy allows {n:d} attempt"))
@given(parsers.parse("the pool's retry policy allows {n:d} attempts"))
def pool_policy(llorch_ctx: ScenarioContext, n: int) -> None:
    llorch_ctx.scratch["pool_attempts"] = n


@given(parsers.parse("the host's circuit breaker opens after {n:d} failures"))
def breaker_threshold(llorch_ctx: ScenarioContext, n: int) -> None:
    llorch_ctx.scratch["breaker_threshold"] = n


@given(parsers.parse('the caller sends correlation id "{cid}"'))
def correlation(llorch_ctx: ScenarioContext, cid: str) -> None:
    llorch_ctx.scratch["correlation_id"] = cid


@when("the host streams the task")
def host_stream(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.stream(host_view(llorch_ctx))


@when(parsers.parse("the host streams the task {n:d} times"))
def host_stream_n(llorch_ctx: ScenarioContext, n: int) -> None:
    view = host_view(llorch_ctx)
    for _ in range(n):
        llorch_ctx.stream(view)


@when(parsers.parse("the host cancels the task after {n:d} tokens"))
def host_cancel(llorch_ctx: ScenarioContext, n: int) -> None:
    llorch_ctx.stream(host_view(llorch_ctx), cancel_after=n)


@when("the host's facade is inspected")
def host_surface(llorch_ctx: ScenarioContext) -> None:
    view = host_view(llorch_ctx)
    s = llorch_ctx.surface
    s["health"] = llorch_ctx.call(view.health)
    s["props"] = llorch_ctx.call(view.props)
    s["capabilities"] = llorch_ctx.call(view.capabilities)
    s["capabilities_again"] = llorch_ctx.call(view.capabilities)
    s["engine_version"] = llorch_ctx.call(view.engine_version)
    llorch_ctx.notes["host_surface"] = {k: repr(v) for k, v in s.items()}


@when("the replica is rebound to an adapter for a second engine and the task is streamed")
def host_rebind(llorch_ctx: ScenarioContext) -> None:
    view = host_view(llorch_ctx)
    llorch_ctx.stream(view)  # on the first engine
    if llorch_ctx.in_process:
        second = llorch_ctx.make_adapter("mock://second")
        llorch_ctx.scratch["second_journal"] = None
    else:
        engine_b = llorch_ctx.engines.get(llorch_ctx.dialect, "replica-b")
        engine_b.reset()
        second = llorch_ctx.make_adapter(engine_b.base_url)
        llorch_ctx.scratch["second_journal"] = engine_b.journal
    old = view.host.bind(POOL, REPLICA, second)
    llorch_ctx.scratch["rebind_returned_old"] = old is view.inner
    llorch_ctx.stream(view)  # must go to the second engine


@when("tasks pinned to the bound pool and to an unknown pool are streamed")
def host_pins(llorch_ctx: ScenarioContext) -> None:
    view = host_view(llorch_ctx)
    for pin in (POOL, "pool-that-is-not-bound"):
        request = llorch_ctx.make_request(placement={"mode": "pin", "pin_pool_id": pin})
        run = llorch_ctx.portal.call(partial(collect_stream, _PinnedView(view), request))
        llorch_ctx.runs.append(run)


class _PinnedView:
    """Submits to another pool name so only the pin can route the task."""

    def __init__(self, view: HostView) -> None:
        self.view = view

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        result: AsyncIterator[TokenEvent] = self.view.host.submit("pool-unnamed", request)
        return result

    async def cancel(self, task_id: str) -> None:
        await self.view.host.cancel("pool-unnamed", task_id)


@then(parsers.parse('the started event carries correlation id "{cid}"'))
def started_cid(llorch_ctx: ScenarioContext, cid: str) -> None:
    got = llorch_ctx.last.started_field("correlation_id")
    llorch_ctx.check(
        got == cid,
        "started does not carry the caller's correlation id",
        f"got {got!r}",
        ids=("AH-1003",),
    )


def _narrations(ctx: ScenarioContext) -> list[dict[str, Any]]:
    """The host's narration records about tasks (registry narration such as bind is left out)."""
    out = []
    for r in ctx.logs.records:
        n = r.__dict__.get("narration")
        if isinstance(n, dict) and (n.get("task_id") or n.get("job_id")):
            out.append(n)
    return out


@then(parsers.parse('the host\'s narration names correlation id "{cid}"'))
def narration_cid(llorch_ctx: ScenarioContext, cid: str) -> None:
    ns = _narrations(llorch_ctx)
    llorch_ctx.check(
        ns and all(n.get("correlation_id") == cid for n in ns),
        "host narration lacks the correlation id",
        f"{len(ns)} narration records",
        ids=("AH-1003",),
    )


@then("the host narrates submit, start and end as adapter-host with the task's ids")
def narration_actions(llorch_ctx: ScenarioContext) -> None:
    ns = [n for n in _narrations(llorch_ctx) if n.get("actor") == "adapter-host"]
    actions = [str(n.get("action")) for n in ns]
    llorch_ctx.notes["narration_actions"] = actions
    llorch_ctx.check(
        "submit" in actions,
        "no submit narration with actor=adapter-host",
        f"actions {actions}",
        ids=("ORCH-3604", "AH-2002"),
    )
    llorch_ctx.check(
        len(set(actions)) >= 2,
        "the host narrates only one lifecycle point",
        f"actions {actions}",
        ids=("AH-2002",),
    )
    task_id = llorch_ctx.last.request.task_id
    llorch_ctx.check(
        all(
            (n.get("task_id") or n.get("job_id")) == task_id and n.get("pool_id") == POOL
            for n in ns
        ),
        "host narration lacks the task and pool ids",
        str(ns[:2])[:300],
        ids=("ORCH-3604", "AH-2002"),
    )
    long = [n["human"] for n in ns if len(str(n.get("human", ""))) > 100]
    llorch_ctx.check(
        not long, "narration longer than 100 characters", str(long[:1]), ids=("AH-2002",)
    )


@then("a host record carries job_id, session_id, engine, engine_version, pool_id and replica_id")
def host_log_fields(llorch_ctx: ScenarioContext) -> None:
    keys = ("engine", "engine_version", "pool_id", "replica_id")
    found = []
    for r in llorch_ctx.logs.records:
        if not r.name.startswith(("llorch.adapter_host", "llorch.narration")):
            continue
        f = {**LogCapture.fields(r), **(r.__dict__.get("narration") or {})}
        if all(f.get(k) is not None for k in keys) and (f.get("job_id") or f.get("task_id")):
            found.append(f)
    llorch_ctx.check(
        found,
        "no host record carries the README_LLM ids",
        f"{len(llorch_ctx.logs.records)} records",
        ids=("AH-2001",),
    )


def _metric(ctx: ScenarioContext, name: str) -> float:
    host = ctx.scratch["host"]
    total = 0.0
    for family in host.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                total += float(sample.value)
    return total


@then(
    parsers.parse(
        "the host metrics count {started:d} started task, {retries:d} retry and the tokens"
    )
)
def host_metrics(llorch_ctx: ScenarioContext, started: int, retries: int) -> None:
    got = {
        "tasks_started_total": _metric(llorch_ctx, "tasks_started_total"),
        "adapter_host_retries_total": _metric(llorch_ctx, "adapter_host_retries_total"),
        "tokens_out_total": _metric(llorch_ctx, "tokens_out_total"),
    }
    llorch_ctx.notes["host_metrics"] = got
    tokens = len(llorch_ctx.last.tokens)
    ok = (
        got["tasks_started_total"] == started
        and got["adapter_host_retries_total"] == retries
        and got["tokens_out_total"] == tokens
    )
    llorch_ctx.check(
        ok,
        "host counters disagree with what happened",
        f"{got}, tokens streamed {tokens}",
        ids=("AH-2003",),
    )


@then("the replica's circuit breaker is open")
def breaker_open(llorch_ctx: ScenarioContext) -> None:
    host = llorch_ctx.scratch["host"]
    state = host.breaker(POOL, REPLICA).state
    llorch_ctx.notes["breaker"] = str(state)
    llorch_ctx.check(
        "open" in str(state).lower() and "half" not in str(state).lower(),
        "the breaker did not open after repeated failures",
        str(state),
        ids=("ORCH-3602",),
    )


@then(parsers.parse("the last stream failed fast with {code}"))
def failed_fast(llorch_ctx: ScenarioContext, code: str) -> None:
    term = llorch_ctx.last.terminal
    got = llorch_ctx.last.terminal_field("code")
    llorch_ctx.check(
        got == code,
        "an open breaker did not fail the task fast",
        f"terminal {None if term is None else term.data}",
        ids=("ORCH-3602",),
    )


@then("the host asked the adapter for capabilities once")
def caps_cached(llorch_ctx: ScenarioContext) -> None:
    view: HostView = llorch_ctx.scratch["host_view"]
    calls = view.inner.calls
    same = llorch_ctx.surface.get("capabilities") == llorch_ctx.surface.get("capabilities_again")
    llorch_ctx.check(
        calls == 1 and same,
        "the capability snapshot was not cached",
        f"adapter asked {calls} times",
        ids=("ORCH-3603",),
    )


@then("the second engine received the task and the first engine only the first task")
def rebind_routed(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.check(
        llorch_ctx.scratch.get("rebind_returned_old"),
        "bind did not return the replaced adapter",
        ids=("AH-1001", "ORCH-3600"),
    )
    first = llorch_ctx.generation_entries()
    second_journal = llorch_ctx.scratch.get("second_journal")
    second = (
        [e for e in second_journal.entries if e.generation] if second_journal is not None else []
    )
    llorch_ctx.check(
        len(first) == 1 and len(second) == 1,
        "after the rebind the task did not go to the new adapter only",
        f"first engine {len(first)} generation request(s), second {len(second)}",
        ids=("AH-1001", "ORCH-3600"),
    )
    for run in llorch_ctx.runs[-2:]:
        term = run.terminal
        llorch_ctx.check(
            term is not None and term.kind == "end",
            "a stream around the rebind failed",
            f"{None if term is None else term.data}",
            ids=("AH-1001",),
        )


@then("the pinned task ends with end and the unknown pin ends INVALID_PARAMS, not retriable")
def pins_checked(llorch_ctx: ScenarioContext) -> None:
    ok_run, bad_run = llorch_ctx.runs[-2:]
    t1, t2 = ok_run.terminal, bad_run.terminal
    llorch_ctx.check(
        t1 is not None and t1.kind == "end",
        "a valid pin did not route to its pool",
        f"{None if t1 is None else t1.data}",
        ids=("AH-1007",),
    )
    llorch_ctx.check(
        t2 is not None
        and t2.kind == "error"
        and t2.data.get("code") == "INVALID_PARAMS"
        and t2.data.get("retriable") is False,
        "an unknown pin did not fail with INVALID_PARAMS, not retriable",
        f"{None if t2 is None else t2.data}",
        ids=("AH-1007",),
    )
