"""The mock queen and the heartbeat sender, over real sockets with a 50 ms interval."""

from __future__ import annotations

import itertools
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

from llorch_conformance.adapters.rbee_worker import (
    HeartbeatAttempt,
    HeartbeatSender,
    WorkerInfo,
    WorkerStatus,
    format_rfc3339,
)
from llorch_conformance.mock_engines.rbee import MockQueen, QueenConfig, run_mock_queen

from .conftest import INTERVAL_S, TIMEOUT_S, WAIT_S

INFO = WorkerInfo("w1", "m", "CPU-0", 9301, WorkerStatus.READY, "llm-worker-rbee", "0.1.0")


def beat(
    queen: MockQueen, wid: str, status: str = "ready", age_s: float = 0.0, **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {
        "worker": {**INFO.to_dict(), "id": wid, "status": status},
        "timestamp": format_rfc3339(datetime.now(UTC) - timedelta(seconds=age_s)),
    }
    body.update(extra)
    return httpx.post(queen.url + "/v1/worker-heartbeat", json=body, timeout=5.0)


def test_ack_and_registry(queen: MockQueen) -> None:
    r = beat(queen, "w1")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and "message" in r.json()
    beat(queen, "w1", "busy")
    (row,) = queen.state.workers()
    assert row["id"] == "w1" and row["beats"] == 2 and row["statuses"] == ["ready", "busy"]
    assert row["online"] and row["available"]
    listed = httpx.get(queen.url + "/v1/workers", timeout=5.0).json()["workers"]
    assert [w["id"] for w in listed] == ["w1"]


def test_invalid_heartbeat_is_an_error_ack_and_journalled(queen: MockQueen) -> None:
    r = httpx.post(queen.url + "/v1/worker-heartbeat", json={"worker": INFO.to_dict()}, timeout=5.0)
    assert r.status_code == 400
    assert r.json()["status"] == "error" and "timestamp" in r.json()["message"]
    assert queen.state.workers() == []
    (entry,) = queen.state.journal
    assert not entry.valid and entry.worker_id == "w1"


@pytest.mark.parametrize(("age", "online"), [(0, True), (89.2, True), (90.0, False), (91.0, False)])
def test_contract_default_recency(age: float, online: bool) -> None:
    with run_mock_queen() as q:  # 30 s / 90 s, whole seconds
        beat(q, "w", age_s=age)
        assert q.state.is_online("w") is online
        assert q.state.is_available("w") is online


def test_availability_is_ready_or_busy() -> None:
    with run_mock_queen() as q:  # contract timing: the rule must not depend on test speed
        for status in ("starting", "ready", "busy", "stopping", "stopped"):
            beat(q, f"w-{status}", status)
        assert sorted(w["id"] for w in q.state.workers() if w["available"]) == ["w-busy", "w-ready"]
        assert q.state.count_online() == 5 and q.state.count_available() == 2


def test_silent_worker_is_marked_stale_then_recovers(queen: MockQueen) -> None:
    beat(queen, "w1")
    ev = queen.state.wait_for(lambda s: [e for e in s.events if e.kind == "stale"], WAIT_S)
    assert ev[0].worker_id == "w1"
    assert not queen.state.is_online("w1")
    before = datetime.now(UTC)
    beat(queen, "w1")
    # judged at an instant before the new beat's own timestamp: online only through that beat
    # (judged "now", a loaded machine could take the whole 0.3 s timeout to get here)
    assert queen.state.is_online("w1", at=before)
    assert [e.kind for e in queen.state.events][-2:] == ["recovered", "heartbeat"]


def test_queen_down_refuses_then_serves_on_the_same_port(queen: MockQueen) -> None:
    port = queen.port
    queen.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(queen.url + "/health", timeout=2.0)
    queen.start()
    assert queen.port == port
    assert httpx.get(queen.url + "/health", timeout=5.0).text == "ok"


@pytest.mark.anyio
async def test_sender_beats_every_interval(queen: MockQueen) -> None:
    sender = HeartbeatSender(queen.url, lambda: INFO, interval_s=INTERVAL_S, seed=1)
    with anyio.fail_after(WAIT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender.run)
            await anyio.to_thread.run_sync(
                lambda: queen.state.wait_for(lambda s: len(s.heartbeats("w1")) >= 4, WAIT_S)
            )
            tg.cancel_scope.cancel()
        await sender.aclose()
    beats = queen.state.heartbeats("w1")
    gaps = [b.t_received - a.t_received for a, b in itertools.pairwise(beats)]
    # never faster than the interval (a lower bound: load only delays); the pace itself is the
    # sender's plan, not how promptly a loaded machine kept it (an upper bound here was a flake)
    assert all(g >= INTERVAL_S * 0.9 for g in gaps), gaps
    assert sender.stats.attempts and all(
        a.ok and a.next_delay_s == INTERVAL_S for a in sender.stats.attempts
    )
    assert sender.stats.failures == 0


@pytest.mark.anyio
async def test_sender_backs_off_while_the_queen_is_down_and_recovers(queen: MockQueen) -> None:
    queen.stop()
    six_failures = anyio.Event()
    first_ok = anyio.Event()

    def seen(a: HeartbeatAttempt) -> None:
        if a.ok:
            first_ok.set()
        elif sender.stats.failures >= 6:
            six_failures.set()

    sender = HeartbeatSender(
        queen.url, lambda: INFO, interval_s=INTERVAL_S, seed=3, on_attempt=seen
    )
    with anyio.fail_after(WAIT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender.run)
            await six_failures.wait()
            fails = sender.attempts
            assert all(not a.ok and a.detail == "connect failed" for a in fails)
            for n, a in enumerate(fails, start=1):
                bound = min(sender.backoff.delay_bound_ms(n) / 1000.0, INTERVAL_S)
                assert 0 <= a.next_delay_s <= bound
            assert len({a.next_delay_s for a in fails}) > 1  # jittered
            await anyio.to_thread.run_sync(queen.start)
            await first_ok.wait()
            tg.cancel_scope.cancel()
        await sender.aclose()
    assert sender.stats.consecutive_failures == 0
    assert queen.state.is_online("w1")


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["http.503", "http.500", "ack.error"])
async def test_queen_errors_count_as_failures(queen: MockQueen, fault: str) -> None:
    queen.set_fault(fault)
    sender = HeartbeatSender(queen.url, lambda: INFO, interval_s=INTERVAL_S, seed=1)
    with anyio.fail_after(WAIT_S):
        with pytest.raises((ValueError,)):
            await sender.send_once()
        await sender.aclose()


@pytest.mark.anyio
async def test_final_beat_is_bounded_when_the_queen_is_down() -> None:
    # A bound-but-not-listening socket: connection refused, no one else can take the port.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sender = HeartbeatSender(url, lambda: INFO, interval_s=INTERVAL_S, seed=2)
    try:
        with anyio.fail_after(5.0):
            assert await sender.final(WorkerStatus.STOPPED, budget_s=0.3) is False
    finally:
        await sender.aclose()
        sock.close()


def test_queen_config_scales_resolution() -> None:
    assert QueenConfig().resolution == 1.0
    assert QueenConfig(
        heartbeat_interval_s=0.05, heartbeat_timeout_s=TIMEOUT_S
    ).resolution == pytest.approx(0.003)
    with pytest.raises(ValueError):
        QueenConfig(heartbeat_timeout_s=0)


@pytest.mark.anyio
async def test_a_failing_info_source_never_stops_the_loop(queen: MockQueen) -> None:
    calls = {"n": 0}
    recovered = anyio.Event()

    def info() -> WorkerInfo:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise RuntimeError("status source broken")
        return INFO

    def seen(a: HeartbeatAttempt) -> None:
        if a.ok:
            recovered.set()

    sender = HeartbeatSender(queen.url, info, interval_s=INTERVAL_S, seed=5, on_attempt=seen)
    with anyio.fail_after(WAIT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sender.run)
            await recovered.wait()
            tg.cancel_scope.cancel()
        await sender.aclose()
    assert sender.stats.failures == 3
    assert [a.detail for a in sender.attempts[:3]] == ["RuntimeError"] * 3
