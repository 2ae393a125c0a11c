"""Orchestrator facade over a real socket: admission, SSE frames, cancel, auth, metrics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llorch_conformance.adapters.api import TokenEvent, check_stream
from llorch_conformance.adapters.http_util import SSEDecoder
from llorch_conformance.adapters.orchestrator import AuthPolicy

from ..host.fakes import FakeAdapter, fail, ok
from ._env import FacadeServer, task

TOKEN = "s3cr3t-token-value-0123456789"


class Env(FacadeServer):
    def events(self, task_id: str, **kw: Any) -> list[TokenEvent]:
        with self.client.stream("GET", f"/v1/tasks/{task_id}/stream", **kw) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-cache"
            assert r.headers["x-correlation-id"]
            dec = SSEDecoder()
            out = [
                TokenEvent(e.event, json.loads(e.data)) for c in r.iter_raw() for e in dec.feed(c)
            ]
        return out


@pytest.fixture
def env() -> Iterator[Env]:
    with Env(FakeAdapter(default=ok(3))) as e:
        yield e


def test_enqueue_then_stream(env: Env) -> None:
    r = env.client.post("/v1/tasks", json=task(), headers={"X-Correlation-Id": "corr-1"})
    assert r.status_code == 202
    assert r.headers["x-correlation-id"] == "corr-1"
    body = r.json()
    assert body["task_id"] == "t-0" and body["queue_position"] == 0
    assert body["predicted_start_ms"] == 0 and body["streams"]["sse"] == "/v1/tasks/t-0/stream"
    events = env.events("t-0")
    assert check_stream(events) == []
    started = events[0].data
    assert started["queue_position"] == 0 and started["predicted_start_ms"] == 0
    assert started["correlation_id"] == "corr-1"


def test_sse_bytes_are_event_and_compact_json(env: Env) -> None:
    env.client.post("/v1/tasks", json=task())
    raw = env.client.get("/v1/tasks/t-0/stream").content
    assert b'event: token\ndata: {"t":"a","i":0}\n\n' in raw
    assert raw.endswith(b"\n\n") and raw.count(b"event: end\n") == 1


@pytest.mark.parametrize(
    ("over", "status", "code"),
    [
        ({"ctx": -1}, 400, "INVALID_PARAMS"),
        ({"deadline_ms": 0}, 400, "DEADLINE_UNMET"),
        ({"engine": "nope"}, 400, "INVALID_PARAMS"),
        ({"placement": {"mode": "pin", "pin_pool_id": "elsewhere"}}, 503, "POOL_UNAVAILABLE"),
    ],
    ids=["bad-ctx", "deadline", "bad-engine", "unknown-pool"],
)
def test_admission_errors_use_the_envelope(
    env: Env, over: dict[str, Any], status: int, code: str
) -> None:
    r = env.client.post("/v1/tasks", json=task(**over))
    assert r.status_code == status
    assert r.json()["code"] == code
    assert r.headers["x-correlation-id"]


def test_malformed_json_is_400(env: Env) -> None:
    r = env.client.post("/v1/tasks", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_PARAMS"


def test_full_queue_is_429_with_backoff_headers() -> None:
    with Env(FakeAdapter(), admission_capacity=2, retry_after_ms=2000) as e:
        assert e.client.post("/v1/tasks", json=task("a")).status_code == 202
        r = e.client.post("/v1/tasks", json=task("b"))
        assert r.json()["queue_position"] == 1 and r.json()["predicted_start_ms"] == 100
        r = e.client.post("/v1/tasks", json=task("c"))
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2" and r.headers["x-backoff-ms"] == "2000"
        body = r.json()
        assert body["code"] == "ADMISSION_REJECT" and body["policy_label"] == "reject"
        assert body["retriable"] is True and body["retry_after_ms"] == 2000
        metrics = e.client.get("/metrics").text
        assert 'tasks_rejected_total{engine="mock",reason="ADMISSION_REJECT"} 1.0' in metrics


def test_midstream_error_is_terminal_error_frame() -> None:
    mid = [TokenEvent.started(), TokenEvent.token("x", 0), *fail(500, started=False)]
    with Env(FakeAdapter(scripts=[mid])) as e:
        e.client.post("/v1/tasks", json=task())
        events = e.events("t-0")
        assert check_stream(events) == []
        assert events[-1].kind == "error"
        assert events[-1].data["code"] == "WORKER_RESET" and events[-1].data["retriable"] is True


def test_cancel_before_stream_gives_started_then_end() -> None:
    with Env(FakeAdapter()) as e:
        e.client.post("/v1/tasks", json=task())
        r = e.client.post("/v1/tasks/t-0/cancel")
        assert r.status_code == 204 and r.headers["x-correlation-id"]
        assert e.client.post("/v1/tasks/unknown/cancel").status_code == 204
        events = e.events("t-0")
        assert [ev.kind for ev in events] == ["started", "end"]
        assert events[-1].data["stop_reason"] == "cancelled"


def test_cancel_during_stream_stops_tokens() -> None:
    fake = FakeAdapter(default=ok(50), thread_gate=threading.Event())
    with Env(fake) as e:
        e.client.post("/v1/tasks", json=task())
        got: list[TokenEvent] = []
        with e.client.stream("GET", "/v1/tasks/t-0/stream") as r:
            dec = SSEDecoder()
            for chunk in r.iter_raw():
                for ev in dec.feed(chunk):
                    got.append(TokenEvent(ev.event, json.loads(ev.data)))
                    if ev.event == "token":
                        # the adapter is paused after its first token: cancel, then let it go on
                        assert e.client.post("/v1/tasks/t-0/cancel").status_code == 204
                        assert fake.thread_gate is not None
                        fake.thread_gate.set()
        assert [g.kind for g in got].count("token") == 1  # nothing after the cancel
        assert check_stream(got) == [] and got[-1].kind == "end"
        assert fake.cancels == ["t-0"]


def test_client_disconnect_cancels_the_task() -> None:
    gate = threading.Event()
    fake = FakeAdapter(default=ok(5), thread_gate=gate)
    with Env(fake) as e:
        e.client.post("/v1/tasks", json=task())
        with e.client.stream("GET", "/v1/tasks/t-0/stream") as r:
            for chunk in r.iter_raw():
                if b"event: token" in chunk:
                    break  # hang up while the adapter is paused mid-stream
        # the disconnect reaches the facade asynchronously: wait (bounded) for its cancel
        done = threading.Event()
        for _ in range(200):
            if fake.cancels:
                break
            done.wait(0.02)
        gate.set()
        assert fake.cancels == ["t-0"]


def test_capabilities_and_pool_health(env: Env) -> None:
    caps = env.client.get("/v1/capabilities").json()
    assert caps["api_version"] == "1.0.0"
    (eng,) = caps["engines"]
    assert eng["engine"] == "fake" and eng["ctx_max"] == 4096 and eng["pool_id"] == "default"
    h = env.client.get("/v1/pools/default/health").json()
    assert h["live"] is True and h["ready"] is True and h["draining"] is False
    assert "queue_depth" in h["metrics"]
    assert env.client.get("/v1/pools/zzz/health").status_code == 404


def test_metrics_exposition(env: Env) -> None:
    env.client.post("/v1/tasks", json=task())
    env.events("t-0")
    r = env.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in (
        "tasks_enqueued_total",
        "tasks_started_total",
        "latency_first_token_ms",
        "queue_depth",
    ):
        assert f"# TYPE {name}" in r.text


def test_bearer_auth() -> None:
    with Env(FakeAdapter(), auth=AuthPolicy(token=TOKEN)) as e:
        r = e.client.post("/v1/tasks", json=task())
        assert r.status_code == 401 and r.json() == {"code": 40101, "message": "MISSING_TOKEN"}
        assert r.headers["x-correlation-id"]
        r = e.client.post(
            "/v1/tasks", json=task(), headers={"Authorization": "Bearer wrong-token-xxxxxxxx"}
        )
        assert r.status_code == 401 and r.json()["code"] == 40102
        r = e.client.post("/v1/tasks", json=task(), headers={"Authorization": "bearer " + TOKEN})
        assert r.status_code == 401  # the prefix is case-sensitive
        r = e.client.post("/v1/tasks", json=task(), headers={"Authorization": "Bearer " + TOKEN})
        assert r.status_code == 202
        # /metrics names engines, pools and replicas: it needs the token (issue 16 item 7)
        assert e.client.get("/metrics").status_code == 401
        auth = {"Authorization": "Bearer " + TOKEN}
        assert e.client.get("/metrics", headers=auth).status_code == 200
        assert e.client.get("/health").status_code == 200  # exempt: no data


def test_optional_auth_lets_loopback_in() -> None:
    with Env(FakeAdapter(), auth=AuthPolicy(token=TOKEN, optional=True)) as e:
        assert e.client.post("/v1/tasks", json=task()).status_code == 202


def test_metrics_frames_carry_planning_fields(env: Env) -> None:
    env.client.post("/v1/tasks", json=task(kv_hint="reuse"))
    events = env.events("t-0")
    metrics = [e for e in events if e.kind == "metrics"]
    assert metrics, "a successful stream carries at least one metrics frame"
    m = metrics[-1].data
    assert 0.0 <= m["on_time_probability"] <= 1.0
    assert isinstance(m["queue_depth"], int) and m["kv_warmth"] is True
    assert check_stream(events) == []


def test_worker_registration_requires_the_token() -> None:
    with Env(FakeAdapter(), auth=AuthPolicy(token=TOKEN, optional=True)) as e:
        body = {"engine": "mock", "pool_id": "p2", "replica_id": "r9"}
        r = e.client.post("/v1/workers/register", json=body)
        assert r.status_code == 401 and r.json()["code"] == 40101  # loopback trust is not enough
        r = e.client.post(
            "/v1/workers/register",
            json=body,
            headers={"Authorization": "Bearer wrong-wrong-wrong-1"},
        )
        assert r.status_code == 401 and r.json()["code"] == 40102
        auth = {"Authorization": "Bearer " + TOKEN}
        r = e.client.post("/v1/workers/register", json={"engine": 5}, headers=auth)
        assert r.status_code == 400 and r.json()["field"] == "engine"
        r = e.client.post(
            "/v1/workers/register", json={"engine": "ollama", "url": "http://x"}, headers=auth
        )
        assert r.status_code == 400 and "unknown adapter" in r.json()["message"]
        r = e.client.post("/v1/workers/register", json=body, headers=auth)
        assert r.status_code == 200
        assert r.json() == {
            "ok": True,
            "identity": r.json()["identity"],
            "pool_id": "p2",
            "replica_id": "r9",
        }
        assert r.json()["identity"].startswith("token:") and TOKEN not in r.text
        # the new pool now takes tasks
        assert (
            e.client.post(
                "/v1/tasks", json=task(placement={"mode": "pin", "pin_pool_id": "p2"}), headers=auth
            ).status_code
            == 202
        )
        assert check_stream(e.events("t-0", headers=auth)) == []


def test_worker_registration_is_refused_without_a_configured_token(env: Env) -> None:
    r = env.client.post("/v1/workers/register", json={"engine": "mock"})
    assert r.status_code == 401 and r.json()["message"] == "MISSING_TOKEN"


def test_unopened_task_frees_its_slot_after_its_deadline() -> None:
    with Env(FakeAdapter(), admission_capacity=1) as e:
        # 1 s: long enough that a loaded machine still sends "b" while "a" holds the slot (at
        # 150 ms the slot could already be free, and "b" got 202 instead of 429)
        assert e.client.post("/v1/tasks", json=task("a", deadline_ms=1000)).status_code == 202
        assert e.client.post("/v1/tasks", json=task("b")).status_code == 429
        done = threading.Event()
        give_up = time.monotonic() + 30  # bounded wait for the expiry
        while (r := e.client.post("/v1/tasks", json=task("b"))).status_code != 202:
            assert time.monotonic() < give_up, r.status_code
            done.wait(0.02)
        assert e.client.get("/v1/tasks/a/stream").status_code == 404
