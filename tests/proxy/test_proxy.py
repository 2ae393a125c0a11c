"""The fault proxy in front of a mock engine: pass-through, every fault, controls, hostile input.

The mock engine stands in for the live engine here (fast, always available); the ``real``-marked
tests in ``test_proxy_real.py`` put the proxy in front of a real llama-server. Every wait is
bounded; no test asserts a speed (a stall's delay is a lower bound the proxy itself sleeps).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llorch_conformance.adapters.api import ConfigError
from llorch_conformance.mock_engines import MockEngine, load_profile, run_mock_engine
from llorch_conformance.mock_engines._proxy import (
    FaultProxy,
    ObservedGeneration,
    classify_event,
    run_fault_proxy,
)

TIMEOUT = httpx.Timeout(10.0)
# how long a wait for an event may take on a loaded 2-core CI machine before it counts as lost
LOADED_DEADLINE_S = 30.0
BODY = {"prompt": "Hello there", "n_predict": 8, "stream": True}


@pytest.fixture
def engine() -> Iterator[MockEngine]:
    with run_mock_engine("llamacpp", seed=3) as eng:
        yield eng


@pytest.fixture
def proxy(engine: MockEngine) -> Iterator[FaultProxy]:
    with run_fault_proxy("llamacpp", engine.base_url) as px:
        yield px


def stream(px: FaultProxy, fault: str | None = None, body: Any = None) -> tuple[int, Any, bytes]:
    """(status, headers, raw body) of one streamed completion; raises on a cut connection."""
    hs = {"x-mock-fault": fault} if fault else {}
    with (
        httpx.Client(timeout=TIMEOUT) as c,
        c.stream("POST", px.base_url + "/completion", json=body or BODY, headers=hs) as r,
    ):
        return r.status_code, r.headers, b"".join(r.iter_raw())


def cut_stream(px: FaultProxy, fault: str, body: Any) -> bytes:
    """The bytes a streamed completion delivered before ``fault`` cut the connection (the
    cut itself is asserted: the client sees the connection drop)."""
    got = bytearray()
    with (
        httpx.Client(timeout=TIMEOUT) as c,
        c.stream(
            "POST", px.base_url + "/completion", json=body, headers={"x-mock-fault": fault}
        ) as r,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        for piece in r.iter_raw():
            got += piece
    return bytes(got)


def events(body: bytes) -> list[bytes]:
    return [e + b"\n\n" for e in body.split(b"\n\n") if e]


def payloads(body: bytes) -> list[dict[str, Any]]:
    out = []
    for e in events(body):
        if e.startswith(b"data: "):
            out.append(json.loads(e[6:]))
    return out


def engine_frames(engine: MockEngine) -> list[bytes]:
    entries = [e for e in engine.journal.entries if e.generation]
    assert entries, "the engine saw no generation"
    return list(entries[-1].frames)


# -- pass-through ----------------------------------------------------------------------------------
def test_passthrough_is_byte_identical_and_journaled(engine: MockEngine, proxy: FaultProxy) -> None:
    status, headers, body = stream(proxy, body={**BODY, "seed": 5, "stop": ["zz"]})
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert body == b"".join(engine_frames(engine))
    entry = proxy.journal.last()
    assert entry is not None and entry.generation and entry.completed and not entry.aborted
    assert entry.frames == engine_frames(engine)
    assert entry.t_first_byte is not None and entry.t_last_byte is not None
    plan = entry.plan
    assert isinstance(plan, ObservedGeneration) and plan.complete
    assert plan.t_engine_head is not None and plan.t_engine_done is not None
    assert entry.t_received <= plan.t_engine_head <= plan.t_engine_done <= entry.t_last_byte
    mock_plan = [e for e in engine.journal.entries if e.generation][-1].plan
    assert plan.tokens == list(mock_plan.tokens)
    assert plan.stop_reason == mock_plan.stop_reason
    # what the adapter forwarded, as the engine's dialect parses it (the oracle's forward check)
    assert plan.max_tokens == 8 and str(plan.prompt) == str(mock_plan.prompt)
    assert plan.seed == mock_plan.seed == 5 and tuple(plan.stop) == tuple(mock_plan.stop) == ("zz",)
    with pytest.raises(AttributeError):
        _ = plan.prompt_tokens  # the dialect's tokenizer is not the engine's


def test_non_streamed_and_plain_routes_pass_through(engine: MockEngine, proxy: FaultProxy) -> None:
    with httpx.Client(timeout=TIMEOUT) as c:
        direct = c.get(engine.base_url + "/props")
        via = c.get(proxy.base_url + "/props")
        assert via.status_code == direct.status_code == 200
        assert via.json().keys() == direct.json().keys()
        assert via.headers.get("content-length") == str(len(via.content))
        r = c.post(proxy.base_url + "/completion", json={**BODY, "stream": False})
        assert r.status_code == 200 and isinstance(r.json()["content"], str)
        plan = proxy.journal.last().plan  # type: ignore[union-attr]
        assert plan.tokens == [r.json()["content"]] and plan.stop_reason == "length"
        missing = c.get(proxy.base_url + "/no/such/route")
        assert missing.status_code == 404  # the engine's own 404, passed through
    assert proxy.engine_version == engine.engine_version
    assert proxy.model == engine.model
    n_ctx = direct.json()["default_generation_settings"]["n_ctx"]
    assert proxy.ctx_size == n_ctx


def test_engine_errors_pass_through_untouched(engine: MockEngine, proxy: FaultProxy) -> None:
    with httpx.Client(timeout=TIMEOUT) as c:
        r = c.post(proxy.base_url + "/completion", content=b"{not json", headers={"x-a": "1"})
    assert r.status_code == 400
    assert r.content == engine.journal.last().frames[-1]  # type: ignore[union-attr]


def test_control_header_is_not_forwarded_and_hop_headers_are_dropped(
    engine: MockEngine, proxy: FaultProxy
) -> None:
    stream(proxy, "frame.split_every_byte")
    seen = engine.journal.last()
    assert seen is not None
    assert seen.header("x-mock-fault") is None
    assert seen.header("host") == engine.base_url.split("//", 1)[1]


def test_connections_to_the_engine_are_reused(engine: MockEngine, proxy: FaultProxy) -> None:
    for _ in range(4):
        stream(proxy)
    assert proxy.upstream_connections <= 2
    assert len(engine.journal.find(path="/completion")) == 4


# -- write faults ----------------------------------------------------------------------------------
def test_split_every_byte_keeps_the_bytes(engine: MockEngine, proxy: FaultProxy) -> None:
    _, _, body = stream(proxy, "frame.split_every_byte")
    assert body == b"".join(engine_frames(engine))
    assert proxy.journal.last().n_writes == len(body)  # type: ignore[union-attr]


def test_split_utf8_cuts_inside_characters(engine: MockEngine, proxy: FaultProxy) -> None:
    body = {**BODY, "prompt": "Ünïcödé ✓ 東京", "n_predict": 24}
    _, _, raw = stream(proxy, "frame.split_utf8", body)
    assert raw == b"".join(engine_frames(engine))
    leads = sum(1 for b in raw if b >= 0xC0)
    entry = proxy.journal.last()
    assert entry is not None
    if leads:
        assert entry.n_writes > leads
    else:
        assert entry.fault_note is None or "multi-byte" in entry.fault_note


def test_stall_before_first_byte_delays_the_body(proxy: FaultProxy) -> None:
    stream(proxy, "stall.before_first_byte;delay_ms=300")
    e = proxy.journal.last()
    assert e is not None and e.t_first_byte is not None
    assert e.t_first_byte - e.t_received >= 0.3


def test_stall_midstream_pauses_after_the_events(proxy: FaultProxy) -> None:
    status, _, body = stream(proxy, "stall.midstream;after_events=2;delay_ms=300")
    assert status == 200 and b'"stop":true' in body
    e = proxy.journal.last()
    assert e is not None and e.completed and e.t_last_byte is not None
    assert e.t_last_byte - e.t_received >= 0.3


def test_slow_headers(proxy: FaultProxy) -> None:
    with httpx.Client(timeout=TIMEOUT) as c:
        r = c.get(
            proxy.base_url + "/health", headers={"x-mock-fault": "conn.slow_headers;delay_ms=200"}
        )
    assert r.status_code == 200
    e = proxy.journal.last()
    assert e is not None and e.t_first_byte is not None and e.t_first_byte - e.t_received >= 0.2


# -- cuts and cancels --------------------------------------------------------------------------------
def test_disconnect_after_events_cuts_and_closes_the_engine_side(
    engine: MockEngine, proxy: FaultProxy
) -> None:
    body = {**BODY, "n_predict": 400}
    with pytest.raises(httpx.RemoteProtocolError):
        stream(proxy, "midstream.disconnect;after_events=3", body)
    e = proxy.journal.last()
    assert e is not None and e.aborted and not e.completed
    assert len(e.frames) == 3
    # the engine's connection was closed too: it saw its client go (a real engine stops)
    engine.journal.wait_for_sync(
        lambda j: j.last() is not None and (j.last().disconnected or j.last().completed), 5.0
    )


def test_a_short_stream_still_gets_its_midstream_fault(proxy: FaultProxy) -> None:
    """The engine finishing before after_events: the cut lands before its finishing frame."""
    body = {**BODY, "n_predict": 2}
    got = cut_stream(proxy, "midstream.disconnect;after_events=10", body)
    assert b'"stop":true' not in got and len(payloads(got)) == 2
    e = proxy.journal.last()
    assert e is not None and e.aborted and "before its finishing frame" in (e.fault_note or "")
    status, _, raw = stream(proxy, "stall.midstream;after_events=10;delay_ms=200", body)
    e = proxy.journal.last()
    assert status == 200 and b'"stop":true' in raw and e is not None and e.t_last_byte is not None
    assert e.t_last_byte - e.t_received >= 0.2


def test_disconnect_bytes(proxy: FaultProxy) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        stream(proxy, "midstream.disconnect_bytes;after_bytes=50")
    assert proxy.journal.last().aborted  # type: ignore[union-attr]


def test_cut_utf8_cuts_after_a_lead_byte(proxy: FaultProxy) -> None:
    body = {**BODY, "prompt": "Ünïcödé ✓ 東京", "n_predict": 24}
    got = cut_stream(proxy, "midstream.cut_utf8", body)
    e = proxy.journal.last()
    assert e is not None and e.aborted
    if e.fault_note is None:
        assert got and got[-1] >= 0xC0  # the last byte is a lead byte: a character cut in two


def test_client_disconnect_is_journaled_and_propagated(engine: MockEngine) -> None:
    with (
        run_mock_engine("llamacpp", seed=3, profile=load_profile("fast", itl_ms=20.0)) as slow,
        run_fault_proxy("llamacpp", slow.base_url) as px,
    ):
        with (
            httpx.Client(timeout=TIMEOUT) as c,
            # 2000 tokens x 20 ms = 40 s: the stream cannot end on its own before the waits below
            # give up, however late a loaded machine notices the disconnect
            c.stream("POST", px.base_url + "/completion", json={**BODY, "n_predict": 2000}) as r,
        ):
            it = r.iter_raw()
            next(it)
        px.journal.wait_for_sync(lambda j: j.last() and j.last().disconnected, LOADED_DEADLINE_S)
        assert px.journal.counters()["cancels"] == 1
        slow.journal.wait_for_sync(lambda j: j.last() and j.last().disconnected, LOADED_DEADLINE_S)


def test_accept_then_close(proxy: FaultProxy) -> None:
    proxy.set_faults(["conn.accept_then_close;first=1"])
    with httpx.Client(timeout=TIMEOUT) as c:
        with pytest.raises(httpx.TransportError):
            c.get(proxy.base_url + "/health")
        assert c.get(proxy.base_url + "/health").status_code == 200


def test_port_closed_refuses_then_reopens(proxy: FaultProxy) -> None:
    proxy.set_faults(["conn.port_closed"])
    with socket.socket() as s:
        s.settimeout(2.0)
        with pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", proxy.port))
    proxy.set_faults([])
    with httpx.Client(timeout=TIMEOUT) as c:
        assert c.get(proxy.base_url + "/health").status_code == 200


# -- frame faults --------------------------------------------------------------------------------------
def test_malformed_json_corrupts_exactly_one_frame(engine: MockEngine, proxy: FaultProxy) -> None:
    _, _, body = stream(proxy, "frame.malformed_json;after_events=1")
    want = events(b"".join(engine_frames(engine)))
    got = events(body)
    assert len(got) == len(want)
    diff = [i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b]
    assert diff == [1]
    with pytest.raises(ValueError):
        json.loads(got[1][6:])


def test_missing_terminal_drops_the_stop_frame(engine: MockEngine, proxy: FaultProxy) -> None:
    _, _, body = stream(proxy, "frame.missing_terminal")
    objs = payloads(body)
    assert objs and not any(o.get("stop") for o in objs)
    assert len(objs) == len(events(b"".join(engine_frames(engine)))) - 1


def test_duplicate_and_out_of_order_index(proxy: FaultProxy) -> None:
    _, _, body = stream(proxy, "frame.duplicate_index;after_events=2")
    idx = [o["tokens_predicted"] for o in payloads(body) if not o.get("stop")]
    assert idx == [1, 2, 3, 3, 4, 5, 6, 7, 8]
    _, _, body = stream(proxy, "frame.out_of_order_index;after_events=2")
    idx = [o["tokens_predicted"] for o in payloads(body) if not o.get("stop")]
    assert idx == [1, 2, 4, 3, 5, 6, 7, 8]


def test_a_fault_without_room_says_not_applied(proxy: FaultProxy) -> None:
    from llorch_conformance.mock_engines._proxy import NOT_APPLIED

    _, _, body = stream(proxy, "frame.out_of_order_index;after_events=1", {**BODY, "n_predict": 1})
    e = proxy.journal.last()
    assert e is not None and (e.fault_note or "").startswith(NOT_APPLIED)
    assert b'"stop":true' in body


def test_error_event_replaces_the_rest(engine: MockEngine, proxy: FaultProxy) -> None:
    status, _, body = stream(proxy, "stream.error_event;after_events=2;message=boom")
    objs = payloads(body)
    assert status == 200 and len(objs) == 3
    assert objs[-1]["error"]["message"] == "boom"
    assert proxy.journal.last().completed  # type: ignore[union-attr]


def test_keepalive_flood(proxy: FaultProxy) -> None:
    _, _, body = stream(proxy, "stream.keepalive_flood;count=40")
    assert body.count(b":\n\n") - body.count(b'":\n\n') >= 40
    assert len(payloads(body)) == 9


def test_oversized_frame(proxy: FaultProxy) -> None:
    _, _, body = stream(proxy, "frame.oversized;size=200000")
    big = [e for e in events(body) if len(e) >= 190_000]
    assert len(big) == 1
    obj = json.loads(big[0][6:])
    assert set(obj["content"]) == {"x"}


def test_oversized_frame_on_a_short_stream_copies_the_last_token(proxy: FaultProxy) -> None:
    body = {**BODY, "n_predict": 2}
    _, _, raw = stream(proxy, "frame.oversized;size=100000;after_events=5", body)
    evs = events(raw)
    big = [e for e in evs if len(e) >= 90_000]
    assert len(big) == 1 and b'"stop":true' in evs[-1]
    assert evs.index(big[0]) == len(evs) - 2  # right before the engine's finishing frame
    note = proxy.journal.last().fault_note  # type: ignore[union-attr]
    assert note is not None and "copy of the last" in note


def test_wrong_content_type(proxy: FaultProxy) -> None:
    _, headers, body = stream(proxy, "http.wrong_content_type")
    assert headers["content-type"] == "text/plain"
    assert b'"stop":true' in body


# -- statuses before the first byte ----------------------------------------------------------------
@pytest.mark.parametrize("code", [400, 401, 404, 422, 500, 503])
def test_status_faults_never_reach_the_engine(
    engine: MockEngine, proxy: FaultProxy, code: int
) -> None:
    status, _, body = stream(proxy, f"http.{code}")
    assert status == code
    assert json.loads(body)["error"]["code"] == code
    assert not engine.journal.find(path="/completion")


def test_429_with_retry_after(proxy: FaultProxy) -> None:
    with httpx.Client(timeout=TIMEOUT) as c:
        r = c.post(
            proxy.base_url + "/completion",
            json=BODY,
            headers={"x-mock-fault": "http.429_retry_after;seconds=3"},
        )
    assert r.status_code == 429 and r.headers["retry-after"] == "3"


def test_engine_wide_rules_select_first_n(engine: MockEngine, proxy: FaultProxy) -> None:
    proxy.set_faults(["http.503;first=2"])
    codes = [stream(proxy)[0] for _ in range(3)]
    assert codes == [503, 503, 200]
    with httpx.Client(timeout=TIMEOUT) as c:  # engine-wide rules leave non-generation routes alone
        assert c.get(proxy.base_url + "/health").status_code == 200
    proxy.reset()
    assert [stream(proxy)[0] for _ in range(3)] == [503, 503, 200]


def test_loading_and_overload_use_the_engine_envelope(proxy: FaultProxy) -> None:
    proxy.set_faults(["engine.loading"])
    with httpx.Client(timeout=TIMEOUT) as c:
        r = c.get(proxy.base_url + "/health")
        assert r.status_code == 503 and "Loading" in r.text
        proxy.set_faults([])
        r = c.post(
            proxy.base_url + "/completion", json=BODY, headers={"x-mock-fault": "engine.overload"}
        )
        assert r.status_code == 503


def test_control_endpoints(proxy: FaultProxy) -> None:
    with httpx.Client(timeout=TIMEOUT) as c:
        r = c.post(proxy.base_url + "/__mock__/config", json={"faults": ["http.500"]})
        assert r.status_code == 200 and r.json()["faults"] == ["http.500"]
        assert r.json()["proxy"] is True
        assert stream(proxy)[0] == 500
        j = c.get(proxy.base_url + "/__mock__/journal").json()
        assert j["entries"][-1]["fault"] == "http.500"
        assert (
            c.post(proxy.base_url + "/__mock__/config", json={"faults": ["nope"]}).status_code
            == 400
        )


def test_bad_fault_header_is_a_clear_400(proxy: FaultProxy) -> None:
    status, _, body = stream(proxy, "no.such.fault")
    assert status == 400 and b"unknown fault id" in body


# -- hostile input and the one upstream ------------------------------------------------------------
def test_bad_engine_urls_are_config_errors() -> None:
    for url in ("ftp://x", "http://", "http://u:p@host:1", "http://h:1/?q=1", "http://h:99999"):
        with pytest.raises(ConfigError):
            run_fault_proxy("llamacpp", url, probe=False)


def test_unreachable_engine_closes_the_connection() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with run_fault_proxy("llamacpp", f"http://127.0.0.1:{port}", probe=False) as px:
        with httpx.Client(timeout=TIMEOUT) as c, pytest.raises(httpx.TransportError):
            c.post(px.base_url + "/completion", json=BODY)
        e = px.journal.last()
        assert e is not None and e.aborted and "unreachable" in (e.fault_note or "")


def test_absolute_form_request_still_goes_to_the_engine(
    engine: MockEngine, proxy: FaultProxy
) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"GET http://example.invalid/health HTTP/1.1\r\nHost: example.invalid\r\n\r\n")
        data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 ")
    seen = engine.journal.last()
    assert seen is not None and seen.header("host") == engine.base_url.split("//", 1)[1]


def test_oversized_request_body_is_refused(engine: MockEngine) -> None:
    with FaultProxy("llamacpp", engine.base_url, max_body_bytes=1024) as px:
        with httpx.Client(timeout=TIMEOUT) as c:
            r = c.post(px.base_url + "/completion", content=b"x" * 4096)
        assert r.status_code == 413
        assert not engine.journal.find(path="/completion")


class _HostileEngine:
    """A raw TCP "engine" that answers every request with fixed bytes, then closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    conn.sendall(self.answer)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"x-a: " + b"a" * 100_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"f" * 5000 + b"\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort",
        b'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: {"content":"a","stop":false}\n\n'
        + b"data: "
        + b"y" * 100,
    ],
    ids=["not-http", "huge-head", "huge-chunk-line", "bad-chunk-size", "short-body", "cut-sse"],
)
def test_hostile_engine_answers_end_cleanly(answer: bytes) -> None:
    hostile = _HostileEngine(answer)
    try:
        with (
            run_fault_proxy("llamacpp", f"http://127.0.0.1:{hostile.port}", probe=False) as px,
            httpx.Client(timeout=TIMEOUT) as c,
        ):
            try:
                r = c.post(px.base_url + "/completion", json=BODY)
                assert r.status_code in (200,)
            except httpx.TransportError:
                pass
            # the request is finished (no task left hanging on the hostile bytes)
            assert px.journal.wait_for_sync(lambda j: j.last() and j.in_flight == 0, 5.0)
    finally:
        hostile.close()


def test_classify_event_shapes() -> None:
    assert classify_event(b": ping\n\n")[0] == 3
    assert classify_event(b"data: [DONE]\n\n")[0] == 2
    k, text, _, path = classify_event(b'data: {"content":"hi","stop":false}\n\n')
    assert (k, text, path) == (0, "hi", ["content"])
    k, _, reason, _ = classify_event(b'data: {"content":"","stop":true,"stop_type":"limit"}\n\n')
    assert (k, reason) == (2, "length")
    k, text, reason, _ = classify_event(
        b'data: {"choices":[{"text":"a","finish_reason":"stop","stop_reason":null}]}\n\n'
    )
    assert (k, text, reason) == (0, "a", "eos")
    k, text, _, _ = classify_event(b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n')
    assert (k, text) == (0, "b")
    k, text, reason, _ = classify_event(
        b'data:{"token":{"text":"c","special":false},"generated_text":"abc",'
        b'"details":{"finish_reason":"eos_token"}}\n\n'
    )
    assert (k, text, reason) == (2, "c", "eos")
    assert classify_event(b'data: {"error":{"message":"x"}}\n\n')[0] == 1
    assert classify_event(b"data: {broken\n\n")[0] == 1


# -- every dialect: the engine's own output is the observed plan ----------------------------------
@pytest.mark.parametrize("dialect", ["llamacpp", "vllm", "tgi", "openai", "triton"])
@pytest.mark.anyio
async def test_adapters_through_the_proxy_see_the_engine_tokens(dialect: str) -> None:
    from tests.adapters.conftest import collect, make_request
    from tests.adapters.engines import build_adapter, engine_kwargs

    async with (
        run_mock_engine(dialect, seed=5, **engine_kwargs(dialect)) as eng,
        run_fault_proxy(dialect, eng.base_url) as px,
    ):
        adapter = build_adapter(dialect, px.base_url, eng.model)
        try:
            evs = await collect(adapter.submit(make_request(engine=dialect, max_tokens=6)))
            tokens = [e.data["t"] for e in evs if e.kind == "token"]
            gen = [e for e in px.journal.entries if e.generation]
            assert gen and isinstance(gen[-1].plan, ObservedGeneration)
            mock_plan = [e for e in eng.journal.entries if e.generation][-1].plan
            assert gen[-1].plan.text == mock_plan.text
            assert gen[-1].plan.stop_reason == mock_plan.stop_reason
            assert "".join(tokens) == mock_plan.text
            assert evs[-1].kind == "end"
            # a fault on the live path: a reset after two events ends WORKER_RESET
            px.set_faults(["midstream.disconnect;after_events=2"])
            evs = await collect(adapter.submit(make_request(engine=dialect, task_id="t-2")))
            assert evs[-1].kind == "error" and evs[-1].data["code"] == "WORKER_RESET"
        finally:
            await adapter.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_event_splitter_reassembles_any_chunking() -> None:
    import random

    from llorch_conformance.mock_engines._proxy import _EventSplitter

    body = b"".join(
        [b": ping\n\n", b'data: {"content":"a\xc3\xa9","stop":false}\n\n'] * 20
        + [b'data: {"x":1}\r\n\r\n', b"data: [DONE]\n\n", b"data: tail-without-end"]
    )
    rng = random.Random(4)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(body)), rng.randint(0, 40)))
        split = _EventSplitter()
        out: list[bytes] = []
        for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True):
            out.extend(split.feed(body[a:b]))
        rest = split.flush()
        assert b"".join(out) + rest == body
        assert rest == b"data: tail-without-end"
        assert len(out) == 42 and all(e.endswith((b"\n\n", b"\r\n\r\n")) for e in out)


def test_journal_frames_are_bounded_per_request(
    engine: MockEngine, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llorch_conformance.mock_engines._proxy as proxy_mod

    monkeypatch.setattr(proxy_mod, "MAX_JOURNAL_BYTES", 2000)
    _, _, body = stream(proxy, body={**BODY, "n_predict": 64})
    e = proxy.journal.last()
    assert e is not None and e.completed
    assert len(body) > 2000 >= sum(len(f) for f in e.frames)
    assert "journal frames truncated" in (e.fault_note or "")
    assert e.plan.complete and e.plan.text == "".join(p["content"] for p in payloads(body))
