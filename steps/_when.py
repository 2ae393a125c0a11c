"""When steps: drive the adapter (stream, cancel, close, query) and the shared HTTP layer."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import anyio
from pytest_bdd import parsers, when

from llorch_conformance.adapters.api import HarnessError, WorkerAdapter

from ._context import CALL_LIMIT_S, ScenarioContext, StreamRun, collect_stream


@when("the adapter streams the task")
def stream_task(llorch_ctx: ScenarioContext) -> None:
    llorch_ctx.stream()


@when(parsers.parse("the adapter streams the task {n:d} times"))
def stream_task_n(llorch_ctx: ScenarioContext, n: int) -> None:
    for _ in range(n):
        llorch_ctx.stream()


@when("the adapter streams the task again without faults")
def stream_again(llorch_ctx: ScenarioContext) -> None:
    if llorch_ctx.faults:
        if llorch_ctx.in_process:
            setter = getattr(llorch_ctx.get_adapter(), "set_faults", None)
            if setter is not None:
                setter([])
        elif llorch_ctx.engine is not None:
            llorch_ctx.engine.set_faults([])
    llorch_ctx.stream()


@when(parsers.parse("the task is cancelled after {n:d} tokens"))
def cancel_after(llorch_ctx: ScenarioContext, n: int) -> None:
    llorch_ctx.stream(cancel_after=n)


@when(parsers.parse("the caller stops reading after {n:d} tokens"))
def close_after(llorch_ctx: ScenarioContext, n: int) -> None:
    llorch_ctx.stream(close_after=n)


@when("an unknown task is cancelled")
def cancel_unknown(llorch_ctx: ScenarioContext) -> None:
    adapter = llorch_ctx.get_adapter()
    try:
        llorch_ctx.call(adapter.cancel, "no-such-task-llorch")
        llorch_ctx.notes["cancel_unknown"] = "ok"
    except Exception as exc:  # judged by the Then step
        llorch_ctx.notes["cancel_unknown"] = f"raised {exc!r}"


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


@when("the adapter's engine metrics are scraped")
def scrape_metrics(llorch_ctx: ScenarioContext) -> None:
    adapter = llorch_ctx.get_adapter()
    scrape = getattr(adapter, "engine_metrics", None) or getattr(adapter, "scrape_metrics", None)
    if scrape is None:
        llorch_ctx.fail(
            "the adapter offers no engine metrics scrape (engine_metrics()) and does not declare "
            "'metrics_scrape' unsupported",
            ids=("OC-ADAPT-5001a",),
        )
    else:
        llorch_ctx.notes["metrics_scrape"] = repr(llorch_ctx.call(scrape))[:500]


@when("the task is streamed on two replicas of the engine")
def two_replicas(llorch_ctx: ScenarioContext) -> None:
    """Two engines of the same dialect and seed, one adapter each, the same task on both."""
    if llorch_ctx.in_process:
        adapters = [
            llorch_ctx.make_adapter("mock://replica-a"),
            llorch_ctx.make_adapter("mock://replica-b"),
        ]
        journals: list[Any] = []
    else:
        engine_a = llorch_ctx.need_engine()
        engine_b = llorch_ctx.engines.get(llorch_ctx.dialect, "replica-b")
        engine_b.reset()
        adapters = [
            llorch_ctx.make_adapter(engine_a.base_url),
            llorch_ctx.make_adapter(engine_b.base_url),
        ]
        journals = [engine_a.journal, engine_b.journal]
    request = llorch_ctx.make_request()
    for adapter in adapters:
        run: StreamRun = llorch_ctx.portal.call(partial(collect_stream, adapter, request))
        llorch_ctx.replica_runs.append(run)
    llorch_ctx.replica_journals = journals


@when("every selected adapter streams the task against its own mock engine")
def every_adapter(llorch_ctx: ScenarioContext) -> None:
    """The cross-dialect oracle: the same task through every selected target."""
    from llorch_conformance.conformance.plugin import active_state

    state = active_state(llorch_ctx._getfixturevalue("request").config)
    if state is None:
        raise HarnessError("the llorch plugin is not active")
    results: dict[str, StreamRun] = {}
    parsed: dict[str, Any] = {}
    skipped: list[str] = []
    for target in state.targets:
        if target.live:
            skipped.append(f"{target.name} (live engine)")
            continue
        engine: Any = None
        if target.dialect == "mock":
            url = "mock://local"
        else:
            engine = llorch_ctx.engines.get(target.dialect)
            engine.reset()
            url = engine.base_url
        adapter = _SubContext(llorch_ctx, target).make(url, engine)
        request = llorch_ctx.make_request(engine=target.dialect, determinism="strict")
        try:
            results[target.name] = llorch_ctx.portal.call(partial(collect_stream, adapter, request))
        finally:
            aclose = getattr(adapter, "aclose", None)
            if aclose is not None:
                llorch_ctx.call(aclose)
        if engine is not None:
            # what this adapter forwarded, as its engine parsed it (the Then step compares it
            # with the task); read now: a later target of the same dialect resets the journal
            t0 = results[target.name].t_start
            gens = [
                e
                for e in engine.journal.entries
                if getattr(e, "generation", False)
                and getattr(e, "plan", None) is not None
                and e.t_received >= t0
            ]
            if gens:
                parsed[target.name] = gens[-1].plan
    llorch_ctx.scratch["oracle_dialects"] = {t.name: t.dialect for t in state.targets}
    llorch_ctx.notes["oracle_skipped"] = skipped
    llorch_ctx.notes["oracle"] = {name: run.transcript()[-3:] for name, run in results.items()}
    llorch_ctx.scratch["oracle_runs"] = results
    llorch_ctx.scratch["oracle_parsed"] = parsed


class _SubContext:
    """Builds an adapter for another target with the scenario's harness config."""

    def __init__(self, ctx: ScenarioContext, target: Any) -> None:
        self.ctx = ctx
        self.target = target

    def make(self, url: str, engine: Any) -> Any:
        saved = self.ctx.target, self.ctx.engine
        self.ctx.target, self.ctx.engine = self.target, engine
        try:
            config = self.ctx.build_config()
        finally:
            self.ctx.target, self.ctx.engine = saved
        return self.target.factory(url, **config)


# -- the shared HTTP layer (per-run scenarios) ------------------------------------------------
@when("the shared HTTP client is built with its defaults")
def build_default_client(llorch_ctx: ScenarioContext) -> None:
    from llorch_conformance.adapters.http_util import HttpClientConfig, build_client

    client = build_client(HttpClientConfig())
    llorch_ctx.scratch["client"] = client
    llorch_ctx.add_cleanup(lambda: llorch_ctx.portal.call(client.aclose))


@when(parsers.parse("an operation that keeps failing retriably is retried with seed {seed:d}"))
def retry_seeded(llorch_ctx: ScenarioContext, seed: int) -> None:
    from llorch_conformance.adapters.api import UpstreamCondition, error_for_condition
    from llorch_conformance.adapters.http_util import RetryPolicy, RetryTimeline, retry_async

    async def attempt_all(
        policy: RetryPolicy, *, idempotent: bool, retriable: bool
    ) -> dict[str, Any]:
        attempts: list[int] = []
        delays: list[float] = []

        async def fake_sleep(s: float) -> None:
            delays.append(s)

        async def op(n: int) -> None:
            attempts.append(n)
            cond = UpstreamCondition.OVERLOADED if retriable else UpstreamCondition.INVALID_REQUEST
            raise error_for_condition(cond, "mock failure")

        timeline = RetryTimeline()
        try:
            with anyio.fail_after(CALL_LIMIT_S):
                await retry_async(
                    op, policy, idempotent=idempotent, timeline=timeline, sleep=fake_sleep
                )
        except Exception as exc:
            final = type(exc).__name__
        else:
            final = "success"
        return {
            "attempts": attempts,
            "delays_ms": [round(d * 1000.0, 3) for d in delays],
            "timeline": timeline.to_list(),
            "final": final,
        }

    policy = RetryPolicy(seed=seed)
    first = llorch_ctx.portal.call(lambda: attempt_all(policy, idempotent=True, retriable=True))
    second = llorch_ctx.portal.call(
        lambda: attempt_all(RetryPolicy(seed=seed), idempotent=True, retriable=True)
    )
    non_idem = llorch_ctx.portal.call(lambda: attempt_all(policy, idempotent=False, retriable=True))
    non_retr = llorch_ctx.portal.call(lambda: attempt_all(policy, idempotent=True, retriable=False))
    llorch_ctx.notes["retry"] = {
        "first": first,
        "second": second,
        "non_idempotent": non_idem,
        "non_retriable": non_retr,
        "bounds_ms": [policy.delay_bound_ms(n) for n in (1, 2, 3)],
        "at": time.time(),
    }
