"""The five HTTP adapters against their mock engines over real sockets.

Every test is bounded (``anyio.fail_after`` around each stream); waits on the engine go through its
journal, never through fixed sleeps. Expectations per fault come from the mapping table of
DESIGN.md; faults a dialect cannot render are taken from the catalogue's ``applies_to``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from llorch_conformance.adapters.api import TokenEvent, WorkerAdapter, check_stream, joined_text
from llorch_conformance.adapters.http_util import HttpClientConfig
from llorch_conformance.mock_engines import Profile, fault_catalogue, run_mock_engine

from .conftest import LogCapture, collect, make_request, terminal
from .engines import API_KEY, HTTP_DIALECTS, build_adapter, engine_kwargs, expected_plan

pytestmark = pytest.mark.anyio

SLOW = Profile(name="slow-test", itl_ms=20.0)
#: Timeouts for the fault table: a 1.5 s stall exceeds them, a 50 ms one does not.
STALL_HTTP = HttpClientConfig(
    connect_timeout_s=2.0, first_byte_timeout_s=0.3, inter_chunk_timeout_s=0.3, total_timeout_s=5.0
)


@pytest.fixture(params=HTTP_DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(dialect: str) -> Iterator[Any]:
    with run_mock_engine(dialect, seed=0, **engine_kwargs(dialect)) as eng:
        yield eng


@pytest.fixture
def slow_engine(dialect: str) -> Iterator[Any]:
    with run_mock_engine(dialect, seed=0, profile=SLOW, **engine_kwargs(dialect)) as eng:
        yield eng


def _applies(fault_id: str, dialect: str) -> bool:
    spec = next(s for s in fault_catalogue() if s.id == fault_id)
    return not spec.applies_to or dialect in spec.applies_to


def _same_version(reported: str, engine: Any) -> bool:
    """Whether ``reported`` is the version string the adapter should derive for this engine."""
    if engine.dialect == "openai":  # model id @ API version (openai-version header)
        return reported == f"{engine.model}@{engine.engine_version}"
    if engine.dialect == "tgi":  # /info version + short sha
        return (
            reported.startswith(f"{engine.engine_version}+")
            and len(reported) > len(engine.engine_version) + 1
        )
    return reported == engine.engine_version


def _tokens(events: list[TokenEvent]) -> int:
    return sum(1 for e in events if e.kind == "token")


def _generation_entries(journal: Any) -> list[Any]:
    return [e for e in journal.entries if e.generation]


# -- the happy path -------------------------------------------------------------------------


async def test_happy_stream_matches_the_plan(engine: Any, dialect: str, logs: LogCapture) -> None:
    adapter = build_adapter(dialect, engine.base_url, engine.model)
    async with adapter:
        assert isinstance(adapter, WorkerAdapter)
        request = make_request(max_tokens=24)
        events = await collect(adapter.submit(request))
    assert check_stream(events) == [], events
    plan = expected_plan(dialect, request)
    assert joined_text(events) == plan.text
    started, end = events[0], terminal(events)
    assert _same_version(started.data["engine_version"], engine)
    assert started.data["seed"] == 7
    assert end.kind == "end", end
    assert end.data["tokens_out"] == len(plan.tokens) == _tokens(events)
    assert end.data["stop_reason"] == plan.stop_reason
    # Triton's vLLM backend counts the EOS step in num_output_tokens, as vLLM itself does.
    eos_step = 1 if dialect == "triton" and plan.stop_reason == "eos" else 0
    assert end.data["usage"]["completion_tokens"] == plan.completion_tokens + eos_step
    assert any(e.kind == "metrics" for e in events)
    if dialect in ("llamacpp", "triton"):  # engines that report prompt tokens in every frame
        assert started.data["tokens_in"] == end.data["usage"]["prompt_tokens"] > 0
    # Contract metrics (private registry per adapter): counted once per stream, not per token.
    exposition = adapter.metrics.exposition().decode()
    n = len(plan.tokens)
    assert f'tokens_out_total{{engine="{dialect}",' in exposition
    assert any(
        line.startswith("tokens_out_total{") and line.endswith(f" {float(n)}")
        for line in exposition.splitlines()
    )
    assert "tasks_started_total{" in exposition and "latency_first_token_ms_bucket{" in exposition
    # Logs: lifecycle lines only (never one per token), with the README_LLM fields.
    actions = logs.actions()
    assert actions.count("submit") == 1 and actions.count("end") == 1
    assert len(logs.records) < 8
    end_record = next(r for r in logs.records if r.llorch["action"] == "end")  # type: ignore[attr-defined]
    assert end_record.llorch["tokens_out"] == len(plan.tokens)  # type: ignore[attr-defined]
    assert end_record.llorch["engine_version"] == started.data["engine_version"]  # type: ignore[attr-defined]


async def test_control_calls(engine: Any, dialect: str) -> None:
    async with build_adapter(dialect, engine.base_url, engine.model) as adapter:
        with anyio.fail_after(10):
            health = await adapter.health()
            props = await adapter.props()
            caps = await adapter.capabilities()
            version = await adapter.engine_version()
    assert health.live and health.ready
    assert _same_version(version, engine) and version == caps.engine_version
    assert caps.engine == dialect
    if dialect in ("llamacpp", "tgi"):
        assert props.slots_total is not None and props.slots_total > 0
    if dialect in ("llamacpp", "vllm", "tgi"):
        assert caps.ctx_max is not None and caps.ctx_max > 0


async def test_first_token_arrives_while_the_engine_is_still_sending(
    slow_engine: Any, dialect: str
) -> None:
    async with build_adapter(dialect, slow_engine.base_url, slow_engine.model) as adapter:
        with anyio.fail_after(10):
            async for ev in adapter.submit(make_request(max_tokens=40)):
                if ev.kind == "token":
                    entry = _generation_entries(slow_engine.journal)[-1]
                    assert entry.t_last_byte is None or not entry.completed
                    break


async def test_multibyte_characters_split_across_writes_come_out_whole(
    engine: Any, dialect: str
) -> None:
    async with build_adapter(dialect, engine.base_url, engine.model) as adapter:
        request = make_request(max_tokens=24, prompt="unicode please")
        plan = expected_plan(dialect, request)
        assert any(len(t.encode()) > len(t) for t in plan.tokens), "plan has no multi-byte token"
        for fault in ("frame.split_utf8", "frame.split_every_byte"):
            if not _applies(fault, dialect):
                continue
            engine.set_faults([fault])
            events = await collect(adapter.submit(request))
            assert check_stream(events) == [], fault
            assert joined_text(events) == plan.text, fault
            assert "\ufffd" not in joined_text(events)


# -- faults ---------------------------------------------------------------------------------

# fault -> (terminal kind, code, retriable)
FAULTS: dict[str, tuple[str, str | None, bool | None]] = {
    "http.400": ("error", "INVALID_PARAMS", False),
    "http.401": ("error", "INTERNAL", False),
    "http.404": ("error", "POOL_UNAVAILABLE", False),
    "http.422": ("error", "INVALID_PARAMS", False),
    "http.500": ("error", "WORKER_RESET", True),
    "http.503": ("error", "POOL_UNAVAILABLE", True),
    "http.429_retry_after;seconds=0": ("error", "POOL_UNAVAILABLE", True),
    "engine.overload": ("error", "POOL_UNAVAILABLE", True),
    "conn.accept_then_close": ("error", "WORKER_RESET", True),
    "conn.slow_headers;delay_ms=1500": ("error", "DECODE_TIMEOUT", True),
    "stall.before_first_byte;delay_ms=1500": ("error", "DECODE_TIMEOUT", True),
    "stall.midstream;delay_ms=1500": ("error", "DECODE_TIMEOUT", True),
    "stall.midstream;delay_ms=50": ("end", None, None),
    "midstream.disconnect": ("error", "WORKER_RESET", True),
    "midstream.disconnect_bytes;after_bytes=200": ("error", "WORKER_RESET", True),
    "midstream.cut_utf8": ("error", "WORKER_RESET", True),
    "frame.malformed_json": ("error", "INTERNAL", False),
    "frame.missing_terminal": ("error", "WORKER_RESET", True),
    "frame.duplicate_index": ("error", "INTERNAL", False),
    "frame.out_of_order_index": ("error", "INTERNAL", False),
    "stream.error_event": ("error", None, None),
    "stream.keepalive_flood": ("end", None, None),
    "frame.oversized;size=2000000": ("error", "INTERNAL", False),
    "http.wrong_content_type": ("error", "INTERNAL", False),
}


PRE_STREAM = frozenset(
    {
        "http.400",
        "http.401",
        "http.404",
        "http.422",
        "http.500",
        "http.503",
        "http.429_retry_after",
        "engine.overload",
        "conn.accept_then_close",
        "conn.slow_headers",
        "stall.before_first_byte",
        "http.wrong_content_type",
    }
)


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_fault_maps_to_its_terminal_event(engine: Any, dialect: str, fault: str) -> None:
    fault_id = fault.split(";")[0]
    if not _applies(fault_id, dialect):
        pytest.skip(f"{fault_id} does not apply to {dialect} (catalogue applies_to)")
    kind, code, retriable = FAULTS[fault]
    async with build_adapter(dialect, engine.base_url, engine.model, http=STALL_HTTP) as adapter:
        if not fault_id.startswith("conn."):
            # Warm the version cache so that the fault hits the stream request. Connection
            # faults act on new connections, which a warm keep-alive connection would avoid.
            await adapter.engine_version()
        engine.set_faults([fault])
        with anyio.fail_after(15):
            events = await collect(
                adapter.submit(make_request(max_tokens=60, prompt="unicode please"))
            )
        assert check_stream(events) == [], events
        last = terminal(events)
        assert last.kind == kind, events
        if code is not None:
            assert last.data["code"] == code, last
            assert last.data["retriable"] is retriable
        if fault.startswith("http.429"):
            assert last.data["retry_after_ms"] == 0
        if fault_id in PRE_STREAM:
            # Refused before any good frame (TGI's in-band overload event included): no started.
            assert [e.kind for e in events] == ["error"], events
        if last.kind == "error" and _generation_entries(engine.journal):
            # Upstream closed on error: the engine saw the end of the connection.
            await engine.journal.wait_for(
                lambda j: all(
                    e.completed or e.disconnected or e.aborted or e.status is not None
                    for e in _generation_entries(j)
                ),
                timeout=5,
            )
        assert adapter.in_flight == 0


async def test_stream_error_event_uses_the_engine_error_type(engine: Any, dialect: str) -> None:
    async with build_adapter(dialect, engine.base_url, engine.model) as adapter:
        await adapter.engine_version()
        engine.set_faults(["stream.error_event"])
        events = await collect(adapter.submit(make_request(max_tokens=30)))
    last = terminal(events)
    assert last.kind == "error"
    assert last.data["code"] in ("WORKER_RESET", "POOL_UNAVAILABLE", "INVALID_PARAMS", "INTERNAL")
    assert check_stream(events) == []


async def test_transient_errors_are_retried_before_the_first_byte(
    engine: Any, dialect: str, logs: LogCapture
) -> None:
    async with build_adapter(dialect, engine.base_url, engine.model) as adapter:
        await adapter.engine_version()
        engine.set_faults(["http.503;first=2"])
        request = make_request(max_tokens=10)
        events = await collect(adapter.submit(request))
        assert terminal(events).kind == "end"
        timeline = adapter.retry_timeline(request.task_id)
        assert [r.status for r in timeline] == [503, 503]
        assert len(_generation_entries(engine.journal)) == 3
    retry_logs = [r for r in logs.records if r.llorch["action"] == "retry"]  # type: ignore[attr-defined]
    assert len(retry_logs) == 1 and len(retry_logs[0].llorch["retries"]) == 2  # type: ignore[attr-defined]


async def test_permanent_errors_are_not_retried(engine: Any, dialect: str) -> None:
    async with build_adapter(dialect, engine.base_url, engine.model) as adapter:
        await adapter.engine_version()
        engine.set_faults(["http.400"])
        events = await collect(adapter.submit(make_request(max_tokens=10)))
        assert terminal(events).data["code"] == "INVALID_PARAMS"
        assert len(_generation_entries(engine.journal)) == 1
        assert len(adapter.last_retry_timeline) == 0


async def test_no_retry_after_the_first_byte(engine: Any, dialect: str) -> None:
    async with build_adapter(dialect, engine.base_url, engine.model) as adapter:
        await adapter.engine_version()
        engine.set_faults(["midstream.disconnect;first=1"])
        events = await collect(adapter.submit(make_request(max_tokens=30)))
        assert terminal(events).data["code"] == "WORKER_RESET"
        assert len(_generation_entries(engine.journal)) == 1


async def test_connection_refused_is_pool_unavailable(dialect: str) -> None:
    with run_mock_engine(dialect, **engine_kwargs(dialect)) as eng:
        base_url, model = eng.base_url, eng.model
    # The engine is stopped: nothing listens on its port any more.
    async with build_adapter(dialect, base_url, model) as adapter:
        with anyio.fail_after(10):
            health = await adapter.health()
            events = await collect(adapter.submit(make_request()))
    assert not health.live and not health.ready
    assert check_stream(events) == []
    last = terminal(events)
    assert (last.data["code"], last.data["retriable"]) == ("POOL_UNAVAILABLE", True)
    assert len(adapter.last_retry_timeline) == 3  # 4 attempts in all


async def test_health_while_loading(engine: Any, dialect: str) -> None:
    engine.set_faults(["engine.loading"])
    async with build_adapter(dialect, engine.base_url, engine.model) as adapter:
        with anyio.fail_after(10):
            health = await adapter.health()
            events = await collect(adapter.submit(make_request()))
    assert not health.ready
    # llama.cpp answers 503 "Loading model" while it loads; the others do not listen yet.
    assert health.live is (dialect == "llamacpp")
    last = terminal(events)
    assert (last.data["code"], last.data["retriable"]) == ("POOL_UNAVAILABLE", True)


# -- cancel and deadline --------------------------------------------------------------------


async def test_cancel_closes_upstream_and_stops_tokens(slow_engine: Any, dialect: str) -> None:
    async with build_adapter(dialect, slow_engine.base_url, slow_engine.model) as adapter:
        request = make_request(max_tokens=200, task_id="to-cancel")
        events: list[TokenEvent] = []
        cancel_returned: float | None = None
        after_cancel: list[TokenEvent] = []
        with anyio.fail_after(10):
            async for ev in adapter.submit(request):
                if cancel_returned is not None:
                    after_cancel.append(ev)
                events.append(ev)
                if ev.kind == "token" and ev.data["i"] == 1 and cancel_returned is None:
                    await adapter.cancel("to-cancel")
                    cancel_returned = time.monotonic()
                    await adapter.cancel("to-cancel")  # idempotent
                    await adapter.cancel("unknown-task")  # harmless
        entry = await slow_engine.journal.wait_for(
            lambda j: next((e for e in _generation_entries(j) if e.disconnected), None), timeout=5
        )
    assert cancel_returned is not None
    assert entry.t_disconnected - cancel_returned < 0.1
    assert [e.kind for e in after_cancel] == ["end"]
    assert after_cancel[0].data["stop_reason"] == "cancelled"
    assert after_cancel[0].data["tokens_out"] == 2
    assert check_stream(events) == []
    assert adapter.in_flight == 0


async def test_cancel_from_another_task_interrupts_a_read(slow_engine: Any, dialect: str) -> None:
    async with build_adapter(dialect, slow_engine.base_url, slow_engine.model) as adapter:
        await adapter.engine_version()
        slow_engine.set_faults(["stall.midstream;after_events=2;delay_ms=1500"])
        events: list[TokenEvent] = []
        got_token = anyio.Event()

        async def consume() -> None:
            async for ev in adapter.submit(make_request(max_tokens=50, task_id="bg")):
                events.append(ev)
                if ev.kind == "token":
                    got_token.set()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await got_token.wait()
                t0 = time.monotonic()
                await adapter.cancel("bg")
                cancel_took = time.monotonic() - t0
            await slow_engine.journal.wait_for(
                lambda j: any(e.disconnected for e in _generation_entries(j)), timeout=5
            )
    assert cancel_took < 0.5
    assert terminal(events).data["stop_reason"] == "cancelled"
    assert check_stream(events) == []


async def test_aclose_cancels_what_is_in_flight(slow_engine: Any, dialect: str) -> None:
    adapter = build_adapter(dialect, slow_engine.base_url, slow_engine.model)
    stream = adapter.submit(make_request(max_tokens=200, task_id="abandoned"))
    with anyio.fail_after(10):
        async for ev in stream:
            if ev.kind == "token":
                break
        assert adapter.in_flight == 1
        await adapter.aclose()
        await slow_engine.journal.wait_for(
            lambda j: any(e.disconnected for e in _generation_entries(j)), timeout=5
        )
        rest = [ev async for ev in stream]
    assert [e.kind for e in rest] == ["end"] and rest[0].data["stop_reason"] == "cancelled"
    assert adapter.in_flight == 0


async def test_deadline_is_honoured_and_upstream_closed(dialect: str) -> None:
    # 50 ms per token and at least 4 tokens in every plan: the engine cannot finish in 60 ms.
    profile = Profile(name="slower-test", itl_ms=50.0)
    with run_mock_engine(dialect, profile=profile, **engine_kwargs(dialect)) as eng:
        async with build_adapter(dialect, eng.base_url, eng.model) as adapter:
            await adapter.engine_version()
            t0 = time.monotonic()
            events = await collect(adapter.submit(make_request(max_tokens=400, deadline_ms=60)))
            took = time.monotonic() - t0
            await eng.journal.wait_for(
                lambda j: any(e.disconnected for e in _generation_entries(j)), timeout=5
            )
    last = terminal(events)
    assert (last.data["code"], last.data["retriable"]) == ("DEADLINE_UNMET", False)
    assert took < 1.0
    assert check_stream(events) == []


async def test_invalid_request_raises_before_sending(engine: Any, dialect: str) -> None:
    from llorch_conformance.adapters.api import InvalidTaskRequest

    async with build_adapter(dialect, engine.base_url, engine.model) as adapter:
        with pytest.raises(InvalidTaskRequest):
            adapter.submit(make_request(workload="embedding"))
        with pytest.raises(InvalidTaskRequest):
            adapter.submit(make_request(max_tokens=9000, ctx=4096))
    assert _generation_entries(engine.journal) == []


# -- secrets --------------------------------------------------------------------------------


async def test_no_secret_in_logs_or_events(logs: LogCapture) -> None:
    with run_mock_engine("openai", api_key=API_KEY) as eng:
        async with build_adapter("openai", eng.base_url, eng.model) as adapter:
            ok = await collect(adapter.submit(make_request(task_id="ok")))
            eng.set_faults(["http.401"])
            failed = await collect(adapter.submit(make_request(task_id="bad")))
            # An engine that echoes the key inside an in-stream error message.
            eng.set_faults([f"stream.error_event;message=leaked {API_KEY}"])
            echoed = await collect(adapter.submit(make_request(task_id="echo")))
        async with build_adapter(
            "openai", eng.base_url, eng.model, api_key="sk-wrong-key-0123456789"
        ) as wrong:
            eng.set_faults([])
            refused = await collect(wrong.submit(make_request(task_id="wrong")))
        sent_headers = [v for e in eng.journal.entries for _k, v in e.headers]
    assert terminal(ok).kind == "end"
    assert terminal(failed).data["code"] == "INTERNAL"
    assert terminal(refused).data["code"] == "INTERNAL"
    assert terminal(echoed).kind == "error" and "****" in terminal(echoed).data["message"]
    text = logs.text() + repr(ok + failed + refused + echoed)
    assert API_KEY not in text and "sk-wrong-key-0123456789" not in text
    assert not any(API_KEY in v for v in sent_headers)  # the mock journals headers redacted
    sent = eng.journal.entries[-1].header("authorization")
    assert sent is not None and "sk-wrong-key" not in sent


async def test_per_request_fault_header_from_extra_headers(engine: Any, dialect: str) -> None:
    """Faults chosen per request: the adapter sends its configured extra headers unchanged.

    The header reaches every request of the adapter, control GETs included (the version lookup
    may then fail and ``started`` says ``unknown``), so the fault chosen does not close
    connections: a closing one would race the keep-alive pool.
    """
    header = "frame.malformed_json;after_events=2"
    async with build_adapter(
        dialect, engine.base_url, engine.model, extra_headers={"X-Mock-Fault": header}
    ) as adapter:
        events = await collect(adapter.submit(make_request(max_tokens=40)))
    last = terminal(events)
    assert (last.data["code"], last.data["retriable"]) == ("INTERNAL", False)
    assert check_stream(events) == []
    entry = _generation_entries(engine.journal)[-1]
    assert entry.header("x-mock-fault") == header
    assert entry.fault is not None and entry.fault.startswith("frame.malformed_json")
