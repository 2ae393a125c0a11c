"""MockAdapter: deterministic by seed, same plan as the mock engines, every catalogue fault."""

from __future__ import annotations

import anyio
import pytest

from llorch_conformance.adapters import BUILTIN_ADAPTERS
from llorch_conformance.adapters.api import ErrorCode, WorkerAdapter, check_stream, joined_text
from llorch_conformance.adapters.http_util import HttpClientConfig, RetryPolicy
from llorch_conformance.adapters.mock import MOCK_FAULT_OUTCOMES, MockAdapter
from llorch_conformance.mock_engines import fault_catalogue, make_plan

from .conftest import collect, make_request, terminal

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryPolicy(base_ms=1, cap_ms=2, seed=3)


def _plan(max_tokens: int = 12) -> object:
    return make_plan("Hello there", seed=7, max_tokens=max_tokens, temperature=0.0, top_p=1.0)


async def test_happy_stream_matches_the_engine_plan() -> None:
    adapter = MockAdapter()
    assert isinstance(adapter, WorkerAdapter)
    events = await collect(adapter.submit(make_request()))
    assert check_stream(events) == []
    plan = make_plan("Hello there", seed=7, max_tokens=12, temperature=0.0, top_p=1.0)
    assert joined_text(events) == plan.text
    end = terminal(events)
    assert end.kind == "end"
    assert end.data["stop_reason"] == plan.stop_reason
    assert end.data["tokens_out"] == len(plan.tokens)
    assert end.data["usage"] == {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
    }
    assert events[0].data["engine_version"] == "mock-1.0.0" and events[0].data["seed"] == 7
    assert events[0].data["tokens_in"] == plan.prompt_tokens
    # Deterministic: a second run is identical event for event (timings aside).
    again = await collect(adapter.submit(make_request()))
    assert [e.data for e in again if e.kind == "token"] == [
        e.data for e in events if e.kind == "token"
    ]


async def test_the_registry_builds_a_mock() -> None:
    adapter = BUILTIN_ADAPTERS["mock"]("mock://x", seed=1)
    assert await adapter.engine_version() == "mock-1.0.0"
    assert (await adapter.health()).ready


def test_every_catalogue_fault_has_a_declared_outcome() -> None:
    ids = {spec.id for spec in fault_catalogue()}
    assert ids == set(MOCK_FAULT_OUTCOMES)


# fault -> (terminal kind, code, retriable, tokens delivered: "all", an int, or None = no check)
CASES: dict[str, tuple[str, str | None, bool | None, object]] = {
    "http.400": ("error", "INVALID_PARAMS", False, 0),
    "http.401": ("error", "INTERNAL", False, 0),
    "http.404": ("error", "POOL_UNAVAILABLE", False, 0),
    "http.422": ("error", "INVALID_PARAMS", False, 0),
    "http.500": ("error", "WORKER_RESET", True, 0),
    "http.503": ("error", "POOL_UNAVAILABLE", True, 0),
    "http.429_retry_after;seconds=0": ("error", "POOL_UNAVAILABLE", True, 0),
    "engine.loading": ("error", "POOL_UNAVAILABLE", True, 0),
    "engine.overload": ("error", "POOL_UNAVAILABLE", True, 0),
    "conn.port_closed": ("error", "POOL_UNAVAILABLE", True, 0),
    "conn.accept_then_close": ("error", "WORKER_RESET", True, 0),
    "conn.slow_headers;delay_ms=20": ("end", None, None, "all"),
    "stall.before_first_byte;delay_ms=20": ("end", None, None, "all"),
    "stall.midstream;delay_ms=20": ("end", None, None, "all"),
    "midstream.disconnect": ("error", "WORKER_RESET", True, 2),
    "midstream.disconnect_bytes;after_bytes=1": ("error", "WORKER_RESET", True, 0),
    "midstream.cut_utf8": ("error", "WORKER_RESET", True, None),
    "frame.split_utf8": ("end", None, None, "all"),
    "frame.split_every_byte": ("end", None, None, "all"),
    "frame.malformed_json": ("error", "INTERNAL", False, 1),
    "frame.missing_terminal": ("error", "WORKER_RESET", True, "all"),
    "frame.duplicate_index": ("error", "INTERNAL", False, 1),
    "frame.out_of_order_index": ("error", "INTERNAL", False, 1),
    "stream.error_event": ("error", "WORKER_RESET", True, 1),
    "stream.keepalive_flood": ("end", None, None, "all"),
    "frame.oversized": ("error", "INTERNAL", False, 1),
    "http.wrong_content_type": ("error", "INTERNAL", False, 0),
}


@pytest.mark.parametrize("fault", sorted(CASES))
async def test_each_fault_maps_to_its_outcome(fault: str) -> None:
    kind, code, retriable, tokens = CASES[fault]
    adapter = MockAdapter(faults=[fault], retry=FAST_RETRY)
    events = await collect(adapter.submit(make_request(max_tokens=12)))
    assert check_stream(events) == []
    last = terminal(events)
    assert last.kind == kind, events
    if code is not None:
        assert last.data["code"] == code
        assert last.data["retriable"] is retriable
    n_tokens = sum(1 for e in events if e.kind == "token")
    plan = make_plan("Hello there", seed=7, max_tokens=12, temperature=0.0, top_p=1.0)
    if tokens == "all":
        assert n_tokens == len(plan.tokens)
    elif isinstance(tokens, int):
        assert n_tokens == min(tokens, len(plan.tokens))


async def test_retry_after_is_reported_and_retries_are_recorded() -> None:
    adapter = MockAdapter(faults=["http.429_retry_after;seconds=0"], retry=FAST_RETRY)
    events = await collect(adapter.submit(make_request()))
    assert events[-1].data["retry_after_ms"] == 0
    assert len(adapter.last_retry_timeline) == FAST_RETRY.max_attempts - 1


async def test_a_transient_fault_is_retried_before_the_first_byte() -> None:
    adapter = MockAdapter(faults=["http.503;first=2"], retry=FAST_RETRY)
    events = await collect(adapter.submit(make_request()))
    assert terminal(events).kind == "end"
    assert [r.code for r in adapter.last_retry_timeline] == ["POOL_UNAVAILABLE"] * 2


async def test_non_transient_pre_stream_faults_are_not_retried() -> None:
    adapter = MockAdapter(faults=["http.500;first=1"], retry=FAST_RETRY)
    events = await collect(adapter.submit(make_request()))
    assert terminal(events).data["code"] == ErrorCode.WORKER_RESET.value
    assert len(adapter.last_retry_timeline) == 0


async def test_per_request_fault_wins_over_engine_faults() -> None:
    adapter = MockAdapter(faults=["http.400"], retry=FAST_RETRY)
    events = await collect(
        adapter.submit(make_request(extra={"fault": "midstream.disconnect;after_events=3"}))
    )
    assert terminal(events).data["code"] == "WORKER_RESET"
    assert sum(1 for e in events if e.kind == "token") == 3


async def test_stalls_longer_than_the_timeouts_are_decode_timeouts() -> None:
    http = HttpClientConfig(first_byte_timeout_s=0.05, inter_chunk_timeout_s=0.05)
    for fault in (
        "stall.midstream;delay_ms=5000",
        "stall.before_first_byte;delay_ms=5000",
        "conn.slow_headers;delay_ms=5000",
    ):
        adapter = MockAdapter(faults=[fault], http=http)
        with anyio.fail_after(5):
            events = await collect(adapter.submit(make_request()))
        assert terminal(events).data["code"] == "DECODE_TIMEOUT", fault
        assert check_stream(events) == []
        if fault.startswith(("conn.", "stall.before")):  # as the HTTP adapters: no good frame
            assert [e.kind for e in events] == ["error"], fault


async def test_deadline_is_honoured() -> None:
    adapter = MockAdapter(token_delay_ms=30)
    events = await collect(adapter.submit(make_request(max_tokens=200, ctx=4096, deadline_ms=100)))
    last = terminal(events)
    assert last.data["code"] == "DEADLINE_UNMET" and last.data["retriable"] is False
    assert check_stream(events) == []


async def test_cancel_stops_tokens_and_ends_the_stream() -> None:
    adapter = MockAdapter(token_delay_ms=1)
    request = make_request(max_tokens=200, task_id="cancel-me")
    events = []
    with anyio.fail_after(10):
        async for ev in adapter.submit(request):
            events.append(ev)
            if ev.kind == "token" and ev.data["i"] == 1:
                await adapter.cancel("cancel-me")
                await adapter.cancel("cancel-me")  # idempotent
                await adapter.cancel("nobody")  # unknown ids are harmless
    assert check_stream(events) == []
    assert [e.kind for e in events][-1] == "end"
    assert events[-1].data["stop_reason"] == "cancelled"
    assert events[-1].data["tokens_out"] == 2
    assert sum(1 for e in events if e.kind == "token") == 2
    assert adapter.in_flight == 0


async def test_cancel_from_another_task_interrupts_a_slow_stream() -> None:
    adapter = MockAdapter(faults=["stall.midstream;after_events=1;delay_ms=10000"])
    request = make_request(task_id="slow")
    events = []
    first_token = anyio.Event()

    async def consume() -> None:
        async for ev in adapter.submit(request):
            events.append(ev)
            if ev.kind == "token":
                first_token.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await first_token.wait()
            await adapter.cancel("slow")
    assert events[-1].data["stop_reason"] == "cancelled"
    assert check_stream(events) == []


@pytest.mark.anyio
async def test_health_follows_engine_wide_loading_and_port_closed() -> None:
    from llorch_conformance.adapters.mock import MockAdapter

    assert (await MockAdapter(faults=["engine.loading"]).health()).to_dict() == {
        "live": True,
        "ready": False,
    }
    assert (await MockAdapter(faults=["conn.port_closed"]).health()).to_dict() == {
        "live": False,
        "ready": False,
    }
    assert (await MockAdapter().health()).ready is True
