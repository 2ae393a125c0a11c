"""Adapter host: registry, facade, retries before the first token, breaker, cancel, narration."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from llorch_conformance.adapters.api import TaskRequest, TokenEvent, check_stream, joined_text
from llorch_conformance.adapters.host import (
    AdapterHost,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    NarrationCapture,
    PoolPolicy,
)
from llorch_conformance.adapters.http_util import RetryPolicy

from .fakes import FakeAdapter, fail, ok

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def req(task_id: str = "t1", **over: Any) -> TaskRequest:
    raw: dict[str, Any] = {
        "task_id": task_id,
        "session_id": "s1",
        "workload": "completion",
        "model_ref": "m:v0",
        "engine": "mock",
        "ctx": 4096,
        "priority": "interactive",
        "prompt": "hi",
        "max_tokens": 8,
        "deadline_ms": 5000,
    }
    raw.update(over)
    return TaskRequest.from_dict(raw)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Sleeps:
    """Records retry delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, s: float) -> None:
        self.delays.append(s)


def host(**kw: Any) -> AdapterHost:
    kw.setdefault("retry_policy", RetryPolicy(seed=7))
    kw.setdefault("sleep", Sleeps())
    return AdapterHost(**kw)


async def collect(it: Any) -> list[TokenEvent]:
    with anyio.fail_after(5):
        return [ev async for ev in it]


async def test_bind_submit_stream_conforms_and_carries_correlation_id() -> None:
    h = host()
    h.bind("p0", "r0", FakeAdapter())
    events = await collect(h.submit("p0", req(), correlation_id="cid-1"))
    assert check_stream(events) == []
    assert events[0].data["correlation_id"] == "cid-1"
    assert joined_text(events) == "aba"


async def test_correlation_id_is_generated_and_reaches_the_adapter() -> None:
    h = host()
    fake = FakeAdapter()
    h.bind("p0", "r0", fake)
    events = await collect(h.submit("p0", req()))
    cid = events[0].data["correlation_id"]
    assert len(cid) == 36 and fake.submits[0].extra["correlation_id"] == cid


async def test_unbound_pool_fails_with_pool_unavailable() -> None:
    h = host()
    events = await collect(h.submit("nope", req()))
    assert [e.kind for e in events] == ["error"]
    assert events[0].data["code"] == "POOL_UNAVAILABLE"


async def test_rebind_is_atomic_and_unbind_idempotent() -> None:
    h = host()
    a, b = FakeAdapter("a"), FakeAdapter("b")
    assert h.bind("p0", "r0", a) is None
    assert h.bind("p0", "r0", b) is a
    await collect(h.submit("p0", req()))
    assert len(b.submits) == 1 and not a.submits
    assert h.unbind("p0", "r0") is b
    assert h.unbind("p0", "r0") is None  # idempotent
    assert h.pools() == []


async def test_retry_before_first_token_hides_failed_attempts() -> None:
    sleeps = Sleeps()
    h = host(sleep=sleeps)
    fake = FakeAdapter(scripts=[fail(503, 0), fail(429, 300), ok(2)])
    h.bind("p0", "r0", fake)
    events = await collect(h.submit("p0", req()))
    assert check_stream(events) == []
    assert [e.kind for e in events].count("started") == 1
    assert len(fake.submits) == 3
    timeline = h.timelines["t1"]
    assert len(timeline) == 2
    # Retry-After (300 ms) is honoured when larger than the drawn jitter (bound 200 ms).
    assert sleeps.delays[1] >= 0.3


async def test_no_retry_on_non_retriable_or_after_first_token() -> None:
    h = host()
    fake = FakeAdapter(scripts=[fail(400)])
    h.bind("p0", "r0", fake)
    events = await collect(h.submit("p0", req()))
    assert events[-1].data["code"] == "INVALID_PARAMS" and len(fake.submits) == 1

    mid = [TokenEvent.started(), TokenEvent.token("x", 0), *fail(500, started=False)]
    fake2 = FakeAdapter(scripts=[mid, ok()])
    h.bind("p1", "r0", fake2)
    events = await collect(h.submit("p1", req("t2")))
    assert events[-1].data["code"] == "WORKER_RESET"
    assert len(fake2.submits) == 1  # a token was out: no retry


async def test_retries_are_capped() -> None:
    h = host()
    fake = FakeAdapter(default=fail(503))
    h.bind("p0", "r0", fake)
    events = await collect(h.submit("p0", req()))
    assert events[-1].kind == "error" and events[-1].data["retriable"] is True
    assert len(fake.submits) == 4  # DESIGN.md: 4 attempts in all


async def test_failover_to_another_replica() -> None:
    h = host()
    bad = FakeAdapter("bad", default=fail(503))
    good = FakeAdapter("good")
    h.bind("p0", "r0", bad)
    h.bind("p0", "r1", good)
    events = await collect(h.submit("p0", req()))
    assert events[-1].kind == "end"
    assert good.submits


async def test_not_ready_replica_is_skipped() -> None:
    h = host()
    h.bind("p0", "r0", FakeAdapter("down", ready=False))
    up = FakeAdapter("up")
    h.bind("p0", "r1", up)
    for n in range(3):
        await collect(h.submit("p0", req(f"t{n}")))
    assert len(up.submits) == 3


async def test_breaker_opens_fails_fast_and_recovers_half_open() -> None:
    clock = Clock()
    h = host(clock=clock, breaker=BreakerConfig(failure_threshold=2, open_s=10))
    fake = FakeAdapter(default=fail(503))
    h.bind("p0", "r0", fake)
    events = await collect(h.submit("p0", req()))
    assert h.breaker("p0", "r0").state is BreakerState.OPEN
    calls = len(fake.submits)
    assert calls == 2  # opened after the threshold; later attempts failed fast
    events = await collect(h.submit("p0", req("t2")))
    assert events[-1].data["code"] == "POOL_UNAVAILABLE"
    assert events[-1].data["retry_after_ms"] > 0
    assert len(fake.submits) == calls  # fail fast: the adapter was not called
    assert (await h.health("p0")).ready is False
    clock.t += 11
    fake.default = ok()
    events = await collect(h.submit("p0", req("t3")))
    assert events[-1].kind == "end"
    assert h.breaker("p0", "r0").state is BreakerState.CLOSED
    text = h.metrics.render().decode()
    assert (
        'adapter_host_breaker_transitions_total{pool_id="p0",replica_id="r0",to="open"} 1.0' in text
    )


def test_breaker_state_machine_with_injected_clock() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=3, open_s=5), clock=clock)
    for _ in range(2):
        b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allow()
    assert b.retry_after_ms() == 5000
    clock.t += 5
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and not b.allow()  # one trial at a time
    b.record_failure()
    assert b.state is BreakerState.OPEN
    clock.t += 5
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.consecutive_failures == 0
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerConfig(failure_threshold=0)


async def test_cancel_stops_tokens_and_is_idempotent() -> None:
    h = host()
    fake = FakeAdapter(default=ok(50))
    fake.gate = anyio.Event()
    h.bind("p0", "r0", fake)
    got: list[TokenEvent] = []
    with anyio.fail_after(5):
        stream = h.submit("p0", req())
        async for ev in stream:
            got.append(ev)
            if ev.kind == "token":
                await h.cancel("p0", "t1")
                await h.cancel("p0", "t1")  # idempotent
                await h.cancel("p0", "unknown")  # harmless
                fake.gate.set()
    kinds = [e.kind for e in got]
    assert kinds.count("token") == 1
    assert got[-1].is_terminal and check_stream(got) == []
    assert fake.cancels == ["t1"]


async def test_pin_routes_to_pool_and_invalid_pin_is_invalid_params() -> None:
    h = host()
    a, b = FakeAdapter("a"), FakeAdapter("b")
    h.bind("p0", "r0", a)
    h.bind("p1", "r0", b)
    events = await collect(h.submit("p0", req(placement={"mode": "pin", "pin_pool_id": "p1"})))
    assert events[-1].kind == "end" and b.submits and not a.submits
    events = await collect(
        h.submit("p0", req("t2", placement={"mode": "pin", "pin_pool_id": "zz"}))
    )
    assert [e.kind for e in events] == ["error"]
    assert events[0].data["code"] == "INVALID_PARAMS"


async def test_health_props_and_capability_cache() -> None:
    clock = Clock()
    h = host(clock=clock, capability_ttl_s=10)
    h.bind("p0", "r0", FakeAdapter("x", slots=2))
    h.bind("p0", "r1", FakeAdapter("x", slots=3, ready=False))
    assert (await h.health("p0")).to_dict() == {"live": True, "ready": True}
    props = await h.props("p0")
    assert (props.slots_total, props.slots_free) == (5, 5)
    caps = await h.capabilities("p0")
    assert caps.engine == "x" and (await h.capabilities("p0")) is caps
    clock.t += 11
    assert (await h.capabilities("p0")) is not caps
    assert (await h.health("none")).ready is False


async def test_drain_waits_for_in_flight_then_unbinds() -> None:
    h = host()
    fake = FakeAdapter(default=ok(3))
    fake.gate = anyio.Event()
    h.bind("p0", "r0", fake)
    results: list[bool] = []
    events: list[TokenEvent] = []

    async def consume() -> None:
        async for ev in h.submit("p0", req()):
            events.append(ev)

    async def drain() -> None:
        results.append(await h.drain("p0", "r0", deadline_s=5))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            while not fake.submits:
                await anyio.lowlevel.checkpoint()
            tg.start_soon(drain)
            while not h.replicas("p0")[0].draining:
                await anyio.lowlevel.checkpoint()
            assert results == []  # still waiting for the in-flight task
            fake.gate.set()
    assert results == [True]
    assert events[-1].kind == "end"
    assert h.pools() == []


async def test_first_token_timeout_override() -> None:
    h = host()
    slow = [TokenEvent.started()]

    async def never() -> None:
        await anyio.sleep(10)

    class Slow(FakeAdapter):
        async def submit(self, request: TaskRequest):  # type: ignore[override]
            self.submits.append(request)
            yield slow[0]
            await never()

    s = Slow()
    h.bind("p0", "r0", s)
    h.set_pool_policy(
        "p0", PoolPolicy(retry=RetryPolicy(max_attempts=1), first_token_timeout_s=0.05)
    )
    events = await collect(h.submit("p0", req()))
    assert [e.kind for e in events] == ["error"]
    assert events[0].data["code"] == "DECODE_TIMEOUT"


async def test_adapter_bugs_become_internal_errors() -> None:
    class Broken(FakeAdapter):
        async def submit(self, request: TaskRequest):  # type: ignore[override]
            yield TokenEvent.started()
            raise RuntimeError("boom Bearer sk-secret-value-123456")

    class NoTerminal(FakeAdapter):
        async def submit(self, request: TaskRequest):  # type: ignore[override]
            yield TokenEvent.started()
            yield TokenEvent.token("a", 0)

    h = host()
    h.bind("p0", "r0", Broken())
    events = await collect(h.submit("p0", req()))
    assert events[-1].data["code"] == "INTERNAL"
    assert "sk-secret-value-123456" not in events[-1].data["message"]
    h.bind("p1", "r0", NoTerminal())
    events = await collect(h.submit("p1", req("t2")))
    assert check_stream(events) == []
    assert events[-1].data["code"] == "INTERNAL"


async def test_narration_is_short_and_covers_the_lifecycle() -> None:
    h = host()
    h.bind("p0", "r0", FakeAdapter())
    with NarrationCapture.install() as cap:
        await collect(h.submit("p0", req()))
    actions = cap.actions()
    for a in ("submit", "stream_start", "stream_end"):
        assert a in actions
    for rec in cap.records:
        assert rec.actor == "adapter-host"
        assert 0 < len(rec.human) <= 100
    end = cap.find("stream_end")[0].fields
    for key in (
        "job_id",
        "session_id",
        "engine",
        "engine_version",
        "pool_id",
        "replica_id",
        "tokens_out",
    ):
        assert key in end
    text = h.metrics.render().decode()
    assert "tasks_started_total" in text and "latency_first_token_ms_bucket" in text


def test_success_of_a_call_admitted_before_opening_does_not_close() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=1, open_s=5), clock=clock)
    b.record_failure()
    assert b.state is BreakerState.OPEN
    b.record_success()  # a straggler that was let through before the breaker opened
    assert b.state is BreakerState.OPEN
    clock.t += 5
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED


def test_identity_fingerprint_survives_narration() -> None:
    from llorch_conformance.adapters.host import narrate

    with NarrationCapture.install() as cap:
        narrate(
            "orchestrator",
            "admission",
            "s",
            "Accepts a task",
            identity="token:9f86d0",
            note="Bearer abcdefgh12345678",
        )
    rec = cap.records[0]
    assert rec.fields["identity"] == "token:9f86d0"
    assert "abcdefgh12345678" not in rec.fields["note"]


async def test_correlation_id_reaches_the_engine_through_a_real_adapter() -> None:
    from llorch_conformance.adapters.llamacpp import LlamaCppAdapter
    from llorch_conformance.mock_engines import run_mock_engine

    async with run_mock_engine("llamacpp") as eng:
        async with LlamaCppAdapter(eng.base_url) as ad:
            h = host()
            h.bind("p0", "r0", ad)
            events = await collect(h.submit("p0", req(engine="llamacpp"), correlation_id="cid-42"))
        assert check_stream(events) == []
        entry = eng.journal.find(path="/completion")[-1]
        assert ("x-correlation-id", "cid-42") in [(k.lower(), v) for k, v in entry.headers]


async def test_half_open_replica_gets_the_trial_even_with_fewer_slots() -> None:
    clock = Clock()
    h = host(clock=clock, breaker=BreakerConfig(failure_threshold=1, open_s=5))
    small = FakeAdapter("small", slots=1, default=fail(503))
    big = FakeAdapter("big", slots=8)
    h.bind("p0", "small", small)
    h.bind("p0", "big", big)
    h.breaker("p0", "small").record_failure()  # open
    clock.t += 5  # half-open now
    small.default = ok()
    await collect(h.submit("p0", req()))
    assert len(small.submits) == 1  # the trial went to the recovering replica
    assert h.breaker("p0", "small").state is BreakerState.CLOSED


def test_a_trial_without_verdict_gives_its_slot_back() -> None:
    clock = Clock()
    b = CircuitBreaker(BreakerConfig(failure_threshold=1, open_s=1), clock=clock)
    b.record_failure()
    clock.t += 1
    assert b.allow() and not b.would_allow()
    b.release_trial()  # e.g. the trial task was cancelled before any token
    assert b.would_allow() and b.state is BreakerState.HALF_OPEN
