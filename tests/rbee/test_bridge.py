"""The worker bridge over MockAdapter and over a real adapter against its mock engine."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest

from llorch_conformance.adapters import create_adapter
from llorch_conformance.adapters.http_util import SSEDecoder
from llorch_conformance.adapters.mock import MockAdapter
from llorch_conformance.adapters.rbee_worker import WorkerServer, run_worker_bridge
from llorch_conformance.conformance.rbee import parse_worker_sse
from llorch_conformance.mock_engines.rbee import MockQueen

from .conftest import bridge_config, wait_until


def stream_infer(
    w: WorkerServer, prompt: str, max_tokens: int
) -> AbstractContextManager[httpx.Response]:
    """``POST /v1/infer`` with ``stream: true``: a context manager over the streamed response."""
    return httpx.stream(
        "POST",
        w.base_url + "/v1/infer",
        json={"prompt": prompt, "max_tokens": max_tokens, "stream": True},
        timeout=10.0,
    )


def infer(w: WorkerServer, body: Any, **kw: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(
            w.base_url + "/v1/infer",
            content=body,
            headers={"content-type": "application/json"},
            timeout=10.0,
            **kw,
        )
    return httpx.post(w.base_url + "/v1/infer", json=body, timeout=10.0, **kw)


def test_health_info_and_inference(worker: WorkerServer) -> None:
    h = httpx.get(worker.base_url + "/health", timeout=5.0)
    assert (h.status_code, h.text) == (200, "ok") and h.headers["content-type"].startswith(
        "text/plain"
    )
    info = httpx.get(worker.base_url + "/info", timeout=5.0).json()
    assert (
        info["port"] == worker.port
        and info["status"] == "ready"
        and info["implementation"] == "mock-adapter"
    )
    r = infer(worker, {"prompt": "hello", "max_tokens": 6})
    assert r.status_code == 200
    body = r.json()
    assert (
        set(body) == {"text", "tokens_generated", "duration_ms"} and body["tokens_generated"] <= 6
    )
    with stream_infer(worker, "hello", 6) as s:
        raw = s.read()
    tokens, problems = parse_worker_sse(raw)
    assert problems == []
    assert "".join(tokens) == body["text"]  # the same plan, streamed or not
    assert raw.endswith(b"data: [DONE]\n\n") and b"event:" not in raw


@pytest.mark.parametrize(
    "body",
    [
        b'{"max_tokens": 2}',
        b'{"prompt": 3}',
        b'{"prompt": "x", "max_tokens": 5000}',
        b'{"prompt": "x", "temperature": 9}',
        b"{",
        b'"x"',
    ],
)
def test_bad_input_is_400_with_error(worker: WorkerServer, body: bytes) -> None:
    r = infer(worker, body)
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str)


def test_oversized_body_is_refused(worker: WorkerServer) -> None:
    r = infer(worker, b'{"prompt": "' + b"x" * (2 << 20) + b'"}')
    assert r.status_code == 400 and "exceeds" in r.json()["error"]
    assert httpx.get(worker.base_url + "/health", timeout=5.0).text == "ok"


def test_starting_until_the_adapter_is_ready(queen: MockQueen) -> None:
    adapter = MockAdapter(ready=False)
    with run_worker_bridge(adapter, bridge_config(queen)) as w:
        assert w.bridge.status.value == "starting"
        r = infer(w, {"prompt": "early"})
        assert r.status_code == 503 and "starting" in r.json()["error"]
        queen.state.wait_for(lambda s: s.worker(w.bridge.config.worker_id) is not None, 10)
        adapter.ready = True
        wait_until(lambda: w.bridge.status.value == "ready", what="ready")
        queen.state.wait_for(lambda s: s.is_available(w.bridge.config.worker_id), 10)
    rec = queen.state.worker(w.bridge.config.worker_id)
    assert rec is not None and rec.statuses[0] == "starting" and rec.statuses[-1] == "stopped"


def _hold(w: WorkerServer) -> tuple[httpx.Client, Any, Iterator[bytes]]:
    client = httpx.Client(timeout=10.0)
    cm = client.stream(
        "POST", w.base_url + "/v1/infer", json={"prompt": "hold", "max_tokens": 64, "stream": True}
    )
    resp = cm.__enter__()
    assert resp.status_code == 200
    it = resp.iter_raw()
    next(it)
    return client, cm, it


def test_busy_at_the_slot_limit_and_disconnect_frees_the_slot(queen: MockQueen) -> None:
    adapter = MockAdapter(token_delay_ms=200)
    with run_worker_bridge(adapter, bridge_config(queen, slots=1)) as w:
        wait_until(lambda: w.bridge.status.value == "ready", what="ready")
        client, cm, _it = _hold(w)
        try:
            assert w.bridge.status.value == "busy"
            assert httpx.get(w.base_url + "/info", timeout=5.0).json()["status"] == "busy"
            r = infer(w, {"prompt": "second"})
            assert r.status_code == 503 and r.json()["error"] == "worker is busy"
            assert r.headers.get("retry-after") == "1"
        finally:
            cm.__exit__(None, None, None)
            client.close()
        wait_until(lambda: w.bridge.status.value == "ready", what="slot freed after disconnect")
        wait_until(lambda: adapter.in_flight == 0, what="adapter stream closed")
    states = [s.value for _, s in w.bridge.transitions]
    assert states == ["starting", "ready", "busy", "ready", "stopping", "stopped"]


def test_slots_come_from_the_adapter(queen: MockQueen) -> None:
    with run_worker_bridge(MockAdapter(slots=3), bridge_config(queen)) as w:
        wait_until(
            lambda: w.bridge.status.value == "ready" and w.bridge.slots == 3, what="slots learned"
        )


def test_stop_reports_stopping_refuses_then_final_stopped_beat(queen: MockQueen) -> None:
    adapter = MockAdapter(token_delay_ms=50)
    w = run_worker_bridge(adapter, bridge_config(queen, slots=2)).start()
    wid = w.bridge.config.worker_id
    try:
        wait_until(lambda: w.bridge.status.value == "ready", what="ready")
        w.bridge.request_stop()
        r = infer(w, {"prompt": "late"})
        assert r.status_code == 503 and "stopping" in r.json()["error"]
        queen.state.wait_for(
            lambda s: (x := s.worker(wid)) is not None and x.info.status.value == "stopping", 10
        )
    finally:
        w.stop()
    assert queen.state.heartbeats(wid)[-1].status == "stopped"
    assert not queen.state.is_available(wid)


def test_stop_drains_a_stream_in_flight(queen: MockQueen) -> None:
    adapter = MockAdapter(token_delay_ms=20)
    w = run_worker_bridge(adapter, bridge_config(queen)).start()
    wait_until(lambda: w.bridge.status.value == "ready", what="ready")
    out: dict[str, bytes] = {}

    def reader() -> None:
        with stream_infer(w, "drain me", 20) as r:
            out["raw"] = r.read()

    t = threading.Thread(target=reader)
    t.start()
    wait_until(lambda: w.bridge.in_flight == 1, what="stream in flight")
    w.stop()
    t.join(10.0)
    assert out["raw"].endswith(b"data: [DONE]\n\n")


def test_midstream_error_is_one_error_frame_without_done(queen: MockQueen) -> None:
    adapter = MockAdapter(faults=["midstream.disconnect;after_events=2"])
    with run_worker_bridge(adapter, bridge_config(queen)) as w:
        wait_until(lambda: w.bridge.status.value == "ready", what="ready")
        with stream_infer(w, "x", 8) as r:
            assert r.status_code == 200
            raw = r.read()
    dec = SSEDecoder()
    datas = [e.data for e in dec.feed(raw) + dec.close()]
    assert [json.loads(d).keys() >= {"token"} for d in datas[:-1]] == [True, True]
    assert json.loads(datas[-1]) == {
        "error": json.loads(datas[-1])["error"],
        "code": "WORKER_RESET",
        "retriable": True,
    }
    assert "[DONE]" not in datas


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        ("http.400", 400, None),
        ("http.500", 503, None),
        ("http.401", 500, None),
        ("http.429_retry_after;seconds=2", 503, "2"),
    ],
)
def test_errors_before_the_first_token_are_http_errors(
    queen: MockQueen, fault: str, status: int, retry_after: str | None
) -> None:
    from llorch_conformance.adapters.http_util import RetryPolicy

    adapter = MockAdapter(faults=[fault], retry=RetryPolicy(max_attempts=1, seed=0))
    with run_worker_bridge(adapter, bridge_config(queen)) as w:
        wait_until(lambda: w.bridge.status.value == "ready", what="ready")
        for stream in (False, True):
            r = infer(w, {"prompt": "x", "stream": stream})
            assert r.status_code == status, (fault, stream, r.text)
            assert isinstance(r.json()["error"], str) and r.json()["code"]
            assert r.headers.get("retry-after") == retry_after


def test_temperature_zero_asks_for_strict_determinism(queen: MockQueen) -> None:
    with run_worker_bridge(MockAdapter(), bridge_config(queen)) as w:
        task = w.bridge._task(
            __import__(
                "llorch_conformance.adapters.rbee_worker", fromlist=["InferRequest"]
            ).InferRequest("p", None, 0.0)
        )
        assert task.determinism is not None and task.determinism.value == "strict"
        warm = w.bridge._task(
            __import__(
                "llorch_conformance.adapters.rbee_worker", fromlist=["InferRequest"]
            ).InferRequest("p", 5, 0.7)
        )
        assert warm.extra["temperature"] == 0.7 and warm.max_tokens == 5


def test_bridge_over_llamacpp_against_its_mock_engine(queen: MockQueen) -> None:
    from llorch_conformance.mock_engines import run_mock_engine

    with run_mock_engine("llamacpp", seed=0) as engine:
        adapter = create_adapter("llamacpp", engine.base_url)
        with run_worker_bridge(
            adapter, bridge_config(queen, dialect="llamacpp"), own_adapter=True
        ) as w:
            wait_until(lambda: w.bridge.status.value == "ready", what="ready")
            info = httpx.get(w.base_url + "/info", timeout=5.0).json()
            assert info["implementation"] == "llama-cpp-adapter"
            body = infer(w, {"prompt": "Tell me", "max_tokens": 12}).json()
            with stream_infer(w, "Tell me", 12) as s:
                tokens, problems = parse_worker_sse(s.read())
            assert problems == [] and "".join(tokens) == body["text"]
            assert body["tokens_generated"] == len(tokens) <= 12
            gens = [e for e in engine.journal.entries if e.path == "/completion"]
            assert len(gens) == 2 and json.loads(gens[-1].body)["n_predict"] == 12
            queen.state.wait_for(lambda s: s.is_available(w.bridge.config.worker_id), 10)
