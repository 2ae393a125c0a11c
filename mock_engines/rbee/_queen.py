"""The mock queen: the heartbeat route the original never built, and the worker registry behind it.

Wire facts (reference §8.3): ``POST /v1/worker-heartbeat`` takes ``WorkerHeartbeat`` JSON and
answers ``HeartbeatAck{status: "ok"|"error", message}``; the registry is keyed by
``worker.id`` (upsert); a worker is *online* while its last heartbeat is recent —
``whole_age(now - timestamp) < timeout`` with the original's truncation and strict ``<`` — and
*available* when online and ready or busy. Defaults are the original's 30 s interval and 90 s
timeout; both are configurable so tests run in fractions of a second.

Choices where the original is silent or did not exist:

* Age is measured from the heartbeat's own ``timestamp`` (as ``is_recent`` does in the original),
  against the queen's wall clock. ``resolution_s`` is the truncation step: 1 s (the original) by
  default, ``timeout/100`` when the timeout is below 10 s so sub-second test timeouts still work.
* A malformed heartbeat is answered 400 with an ``error`` ack and recorded in the journal (never
  in the registry). Stale workers are *marked* (``online: false``, an event in the journal) by a
  sweeper every ``sweep_interval_s`` rather than dropped, so tests and reports can see them; a
  later heartbeat brings a worker back (``recovered`` event).
* Faults for the harness's self-tests: ``http.503``, ``http.500``, ``ack.error`` (200 with an
  ``error`` ack). "The queen is down" is a
  real closed port: :meth:`MockQueen.stop` then :meth:`MockQueen.start` on the same port.

Observability: every received heartbeat (valid or not) is a :class:`ReceivedHeartbeat` in the
journal; :meth:`QueenState.wait_for` blocks (bounded) until a predicate over the state holds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Self, TypeVar

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from llorch_conformance._serving import StartStop
from llorch_conformance.adapters.rbee_worker import (
    HEARTBEAT_INTERVAL_SECS,
    HEARTBEAT_PATH,
    HEARTBEAT_TIMEOUT_SECS,
    BadInferRequest,
    HeartbeatAck,
    ServedApp,
    WorkerHeartbeat,
    WorkerInfo,
    bind_socket,
    is_recent,
    whole_age,
)

__all__ = [
    "QUEEN_FAULTS",
    "MockQueen",
    "QueenConfig",
    "QueenEvent",
    "QueenState",
    "ReceivedHeartbeat",
    "RegisteredWorker",
    "create_queen_app",
    "run_mock_queen",
]

T = TypeVar("T")

QUEEN_FAULTS: Final[dict[str, str]] = {
    "http.503": "answer every heartbeat 503 with an error ack",
    "http.500": "answer every heartbeat 500 with an error ack",
    "ack.error": 'answer 200 with {"status": "error"}',
}

_MAX_BODY = 1 << 20


@dataclass
class QueenConfig:
    heartbeat_interval_s: float = float(HEARTBEAT_INTERVAL_SECS)
    heartbeat_timeout_s: float = float(HEARTBEAT_TIMEOUT_SECS)
    resolution_s: float | None = None
    sweep_interval_s: float | None = None

    def __post_init__(self) -> None:
        if not (self.heartbeat_interval_s > 0 and self.heartbeat_timeout_s > 0):
            raise ValueError("heartbeat interval and timeout must be positive")
        if self.resolution_s is None:
            t = self.heartbeat_timeout_s
            self.resolution_s = 1.0 if t >= 10 else t / 100.0
        if self.sweep_interval_s is None:
            self.sweep_interval_s = min(60.0, self.heartbeat_timeout_s / 4.0)

    @property
    def resolution(self) -> float:
        return float(self.resolution_s or 1.0)


@dataclass(frozen=True, slots=True)
class ReceivedHeartbeat:
    """One POST the queen received (journal entry)."""

    seq: int
    t_received: float  # time.monotonic()
    received_at: str  # RFC 3339 (queen clock)
    valid: bool
    error: str | None
    worker_id: str | None
    status: str | None
    timestamp: str | None
    body: str  # as received, truncated to 4 KiB

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "t_received": self.t_received,
            "received_at": self.received_at,
            "valid": self.valid,
            "error": self.error,
            "worker_id": self.worker_id,
            "status": self.status,
            "timestamp": self.timestamp,
            "body": self.body,
        }


@dataclass
class RegisteredWorker:
    info: WorkerInfo
    last_timestamp: datetime
    last_received: float  # monotonic
    first_received: float
    beats: int = 1
    statuses: list[str] = field(default_factory=list)  # every status seen, in order (deduped runs)
    marked_stale: bool = False


@dataclass(frozen=True, slots=True)
class QueenEvent:
    t: float  # monotonic
    kind: str  # heartbeat | rejected | stale | recovered
    worker_id: str | None
    detail: str = ""


class QueenState:
    """The registry and journal; thread-safe (server thread writes, test threads read and wait)."""

    def __init__(self, config: QueenConfig) -> None:
        self.config = config
        self._cond = threading.Condition()
        self._workers: dict[str, RegisteredWorker] = {}
        self._journal: list[ReceivedHeartbeat] = []
        self._events: list[QueenEvent] = []
        self.fault: str | None = None

    # -- writes (server loop) ------------------------------------------------------------------
    def receive(self, body: bytes) -> tuple[int, HeartbeatAck]:
        now_m = time.monotonic()
        received_at = datetime.now(UTC)
        text = body[:4096].decode("utf-8", "replace")
        hb: WorkerHeartbeat | None = None
        error: str | None = None
        try:
            hb = WorkerHeartbeat.from_dict(json.loads(body))
        except (ValueError, UnicodeDecodeError) as exc:
            error = str(exc) if isinstance(exc, BadInferRequest) else f"body is not JSON: {exc}"
        with self._cond:
            seq = len(self._journal) + 1
            raw_id, raw_status, raw_ts = _peek(body)
            self._journal.append(
                ReceivedHeartbeat(
                    seq,
                    now_m,
                    received_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    hb is not None,
                    error,
                    hb.worker.id if hb else raw_id,
                    hb.worker.status.value if hb else raw_status,
                    raw_ts,
                    text,
                )
            )
            if hb is None:
                self._events.append(QueenEvent(now_m, "rejected", raw_id, error or ""))
                self._cond.notify_all()
                return 400, HeartbeatAck.error(f"invalid heartbeat: {error}")
            wid = hb.worker.id
            rec = self._workers.get(wid)
            if rec is None:
                rec = RegisteredWorker(hb.worker, hb.timestamp, now_m, now_m)
                self._workers[wid] = rec
            else:
                rec.info = hb.worker
                rec.last_timestamp = hb.timestamp
                rec.last_received = now_m
                rec.beats += 1
            status = hb.worker.status.value
            if not rec.statuses or rec.statuses[-1] != status:
                rec.statuses.append(status)
            if rec.marked_stale:
                rec.marked_stale = False
                self._events.append(QueenEvent(now_m, "recovered", wid))
            self._events.append(QueenEvent(now_m, "heartbeat", wid, status))
            self._cond.notify_all()
        return 200, HeartbeatAck.success(f"heartbeat from {wid} recorded")

    def sweep(self) -> int:
        """Mark workers whose last heartbeat is no longer recent; returns how many were marked."""
        now = datetime.now(UTC)
        marked = 0
        with self._cond:
            for wid, rec in self._workers.items():
                if not rec.marked_stale and not self._recent(rec, now):
                    rec.marked_stale = True
                    marked += 1
                    age = (now - rec.last_timestamp).total_seconds()
                    self._events.append(
                        QueenEvent(time.monotonic(), "stale", wid, f"age {age:.3f} s")
                    )
            if marked:
                self._cond.notify_all()
        return marked

    # -- reads ---------------------------------------------------------------------------------
    def _recent(self, rec: RegisteredWorker, now: datetime) -> bool:
        age = (now - rec.last_timestamp).total_seconds()
        return is_recent(age, self.config.heartbeat_timeout_s, resolution_s=self.config.resolution)

    def is_online(self, worker_id: str, *, at: datetime | None = None) -> bool:
        """Whether the worker is online by the queen's rule, judged now or at the instant ``at``.

        ``at`` pins the queen's clock so a boundary case (89.5 s old at a 90 s timeout) is judged
        at the moment it was staged, not after however long a loaded machine took to get here.
        """
        with self._cond:
            rec = self._workers.get(worker_id)
            return rec is not None and self._recent(rec, at or datetime.now(UTC))

    def is_available(self, worker_id: str) -> bool:
        with self._cond:
            rec = self._workers.get(worker_id)
            return (
                rec is not None
                and self._recent(rec, datetime.now(UTC))
                and rec.info.status.is_available
            )

    def worker(self, worker_id: str) -> RegisteredWorker | None:
        with self._cond:
            return self._workers.get(worker_id)

    def workers(self) -> list[dict[str, Any]]:
        """The registry as JSON-able rows (what ``GET /v1/workers`` answers)."""
        now = datetime.now(UTC)
        with self._cond:
            out = []
            for wid, rec in sorted(self._workers.items()):
                age = (now - rec.last_timestamp).total_seconds()
                online = self._recent(rec, now)
                out.append(
                    {
                        "id": wid,
                        "worker": rec.info.to_dict(),
                        "last_timestamp": rec.last_timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "age_s": round(age, 3),
                        "whole_age_s": whole_age(age, self.config.resolution),
                        "beats": rec.beats,
                        "statuses": list(rec.statuses),
                        "online": online,
                        "available": online and rec.info.status.is_available,
                        "marked_stale": rec.marked_stale,
                    }
                )
            return out

    def count_online(self) -> int:
        return sum(1 for w in self.workers() if w["online"])

    def count_available(self) -> int:
        return sum(1 for w in self.workers() if w["available"])

    @property
    def journal(self) -> list[ReceivedHeartbeat]:
        with self._cond:
            return list(self._journal)

    @property
    def events(self) -> list[QueenEvent]:
        with self._cond:
            return list(self._events)

    def heartbeats(
        self, worker_id: str | None = None, *, valid: bool | None = True
    ) -> list[ReceivedHeartbeat]:
        with self._cond:
            return [
                h
                for h in self._journal
                if (worker_id is None or h.worker_id == worker_id)
                and (valid is None or h.valid is valid)
            ]

    def wait_for(self, predicate: Callable[[QueenState], T], timeout: float) -> T:
        """Block until ``predicate(self)`` is truthy (returned); ``TimeoutError`` after ``timeout``.

        The predicate runs without the lock held (it may call the read methods); the wait wakes on
        every heartbeat, rejection and stale mark, and re-checks at least every 20 ms so purely
        time-based predicates (ages) are seen too.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"queen state did not reach the condition within {timeout:g} s")
            with self._cond:
                self._cond.wait(min(left, 0.02))

    def reset(self) -> None:
        with self._cond:
            self._workers.clear()
            self._journal.clear()
            self._events.clear()
            self.fault = None

    def snapshot(self) -> dict[str, Any]:
        """Evidence: registry, journal and events, JSON-able."""
        return {
            "config": {
                "heartbeat_interval_s": self.config.heartbeat_interval_s,
                "heartbeat_timeout_s": self.config.heartbeat_timeout_s,
                "resolution_s": self.config.resolution,
            },
            "workers": self.workers(),
            "journal": [h.to_dict() for h in self.journal[-50:]],
            "events": [_event(e) for e in self.events[-100:]],
        }


def _event(e: QueenEvent) -> dict[str, Any]:
    return {"t": e.t, "kind": e.kind, "worker_id": e.worker_id, "detail": e.detail}


def _peek(body: bytes) -> tuple[str | None, str | None, str | None]:
    """Best-effort id/status/timestamp of a (possibly invalid) heartbeat, for the journal."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None, None
    if not isinstance(raw, dict):
        return None, None, None
    w = raw.get("worker")
    wid = w.get("id") if isinstance(w, dict) else None
    st = w.get("status") if isinstance(w, dict) else None
    ts = raw.get("timestamp")
    return (
        wid if isinstance(wid, str) else None,
        st if isinstance(st, str) else None,
        ts if isinstance(ts, str) else None,
    )


def create_queen_app(state: QueenState) -> Starlette:
    """The queen's ASGI app over ``state`` (routes in the module docstring)."""

    async def heartbeat(request: Request) -> Response:
        fault = state.fault
        body = await request.body()
        if len(body) > _MAX_BODY:
            return JSONResponse(
                HeartbeatAck.error("heartbeat too large").to_dict(), status_code=400
            )
        code, ack = state.receive(body)
        if fault in ("http.503", "http.500"):
            return JSONResponse(
                HeartbeatAck.error(f"queen fault {fault}").to_dict(), status_code=int(fault[5:])
            )
        if fault == "ack.error":
            return JSONResponse(HeartbeatAck.error("queen fault ack.error").to_dict())
        return JSONResponse(ack.to_dict(), status_code=code)

    async def workers(request: Request) -> Response:
        return JSONResponse({"workers": state.workers()})

    async def journal(request: Request) -> Response:
        return JSONResponse({"heartbeats": [h.to_dict() for h in state.journal]})

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:

            async def sweeper() -> None:
                while True:
                    await anyio.sleep(float(state.config.sweep_interval_s or 1.0))
                    state.sweep()

            tg.start_soon(sweeper)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    return Starlette(
        routes=[
            Route(HEARTBEAT_PATH, heartbeat, methods=["POST"]),
            Route("/v1/workers", workers, methods=["GET"]),
            Route("/__mock__/heartbeats", journal, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


class MockQueen(StartStop):
    """Handle on a running mock queen: ``url``, ``state``, faults, stop/start on the same port."""

    def __init__(
        self, config: QueenConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or QueenConfig()
        self.state = QueenState(self.config)
        self.app = create_queen_app(self.state)
        self.host = host
        self._sock = bind_socket(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._served: ServedApp | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._served is not None and self._served.running

    def set_fault(self, fault: str | None) -> None:
        if fault is not None and fault not in QUEEN_FAULTS:
            raise ValueError(f"unknown queen fault {fault!r} (known: {', '.join(QUEEN_FAULTS)})")
        self.state.fault = fault

    def start(self) -> Self:
        """Start serving; after :meth:`stop` this re-binds the same port (connections were refused)."""
        if self.running:
            return self
        if self._sock is None or self._sock.fileno() == -1:
            self._sock = bind_socket(self.host, self.port)
        self._served = ServedApp(self.app, host=self.host, sock=self._sock, graceful_s=1.0)
        self._served.start()
        return self

    def stop(self) -> None:
        """Stop serving: the port is closed (connection refused) until :meth:`start`."""
        if self._served is not None:
            self._served.stop()
            self._served = None
        self._sock.close()


def run_mock_queen(
    config: QueenConfig | None = None,
    *,
    interval_s: float | None = None,
    timeout_s: float | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> MockQueen:
    """A mock queen to use as ``with run_mock_queen(interval_s=0.05, timeout_s=0.2) as q:``."""
    if config is None:
        config = QueenConfig(
            heartbeat_interval_s=interval_s
            if interval_s is not None
            else float(HEARTBEAT_INTERVAL_SECS),
            heartbeat_timeout_s=timeout_s
            if timeout_s is not None
            else float(HEARTBEAT_TIMEOUT_SECS),
        )
    return MockQueen(config, host=host, port=port)
