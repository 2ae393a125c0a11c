"""Orchestrator facade: the task HTTP surface over an :class:`AdapterHost` (V1 routes).

Routes (reference §5, V1 layout): ``POST /v1/tasks``, ``GET /v1/tasks/{id}/stream``,
``POST /v1/tasks/{id}/cancel``, ``GET /v1/capabilities``, ``GET /v1/pools/{id}/health``,
``GET /metrics`` (and ``GET /health``). What it decides where the originals were loose:

* **Admission** is a bounded set of unfinished tasks (capacity 8 by default, as the original
  code) with the ``reject`` policy: a full queue answers 429 with ``Retry-After`` (whole
  seconds, at least 1), ``X-Backoff-Ms`` and the envelope ``{code: ADMISSION_REJECT, message,
  engine, retriable: true, retry_after_ms, policy_label: "reject"}``. ``queue_position`` is the
  0-based place among unfinished tasks of the same priority; ``predicted_start_ms`` is
  ``queue_position * 100`` (the original formula).
* **The task runs when its stream is opened** (as in the original): the adapter's events go
  through a bounded channel (SSE-1004, capacity 32): ``token`` and terminal events wait for room,
  ``metrics`` are dropped when the channel is full and counted in
  ``sse_backpressure_drops_total``.
* **SSE frames** are ``event: <kind>`` + ``data: <compact JSON>`` + blank line; ``started``
  carries ``queue_position``, ``predicted_start_ms`` and ``correlation_id``; after ``end`` or
  ``error`` nothing follows (ORCH-3406/3407); the status stays 200 once streaming (ORCH-3408).
  Optional ``: keep-alive`` comments after ``heartbeat_ms`` of silence.
* **Cancel** (``POST …/cancel`` → 204, idempotent, unknown ids too) and client disconnect
  (``cancel_on_disconnect``, default on) both go to :meth:`AdapterHost.cancel`; a task cancelled
  before its stream opened streams ``started`` then ``end`` with ``stop_reason: "cancelled"``.
* Every response carries ``X-Correlation-Id`` (echoed or generated).
* **Auth** per :mod:`._auth`; only ``/health`` and ``/openapi.json`` (no data in either) are
  exempt. ``/metrics`` needs the token when one is configured: its labels name engines, pools and
  replicas, which is inventory an unauthenticated client should not read.
* **Cross-site requests** (issue 16 item 11): a request let in without a token (loopback trust)
  must pass :func:`._auth.check_same_site` (``Host`` a loopback name, the accepted-on address or
  an allowed host; ``Origin`` absent or the facade's own) → else 403 ``FOREIGN_HOST`` /
  ``FOREIGN_ORIGIN``. Every POST with a body must be ``application/json`` (or ``+json``) → else 415:
  a browser sends ``text/plain`` cross-site without a preflight, never ``application/json``.

Limits (hostile inputs, issue 16 items 5-8), all in :class:`FacadeConfig`:

* **Isolation**: an adapter that raises mid-stream ends *that* task with the mapped
  ``ADAPTER_BUG`` error event (:data:`ERROR_MAPPING`); the host maps it, and the producer here is a
  last line that maps anything that still escapes. Background work runs guarded, so nothing can
  take the facade's task group down; ``/health`` answers 503 if it is ever not running.
* **Admission cannot be blocked for good**: ``deadline_ms`` above ``max_deadline_ms`` (default one
  hour) is a 400; an admitted task whose stream is not opened within ``unopened_ttl_ms``
  (default 30 s, or its ``deadline_ms`` if shorter) is dropped; a task cancelled before its stream
  opened leaves the queue at once (its id is remembered, at most ``cancelled_kept`` of them, so
  opening it still streams ``started`` + ``end`` ``cancelled``).
  An opened task lives at most ``deadline_ms`` + ``deadline_grace_ms``: a client that opens its
  stream and never reads stalls the adapter (whose own deadline check then never runs), so the
  facade cancels the task, frees its slot and ends it with ``DEADLINE_UNMET``.
* **Bounded metric labels**: a client-supplied ``engine`` that is not an engine of the contract is
  counted under ``engine="invalid"``; every other label comes from the facade's own tables.
* **Bad input is a 4xx**: bodies over ``max_body_bytes`` (default 1 MiB) → 413; JSON that cannot be
  decoded (including integers over Python's 4300-digit limit and nesting past the recursion limit)
  → 400; wrong types → 400 naming the field. An ``X-Correlation-Id`` that is not printable ASCII
  of at most 128 characters is replaced (it is forwarded to engines), not echoed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from llorch_conformance.adapters.api import (
    Engine,
    InvalidTaskRequest,
    Priority,
    TaskRequest,
    TokenEvent,
    UpstreamCondition,
    WorkerError,
    error_for_condition,
)
from llorch_conformance.adapters.host import AdapterHost, narrate
from llorch_conformance.adapters.http_util import redact

from ._auth import AuthPolicy, check_same_site
from ._openapi import openapi_document

__all__ = ["FacadeConfig", "create_app"]

LOGGER = logging.getLogger("llorch.orchestrator")
ACTOR = "orchestrator"
_ENGINES = frozenset(e.value for e in Engine)
_CID = re.compile(r"[\x21-\x7e]{1,128}")
_JSON_MEDIA = "application/json"
_SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}


@dataclass(frozen=True, slots=True)
class FacadeConfig:
    default_pool: str = "default"
    admission_capacity: int = 8
    retry_after_ms: int = 1000
    channel_capacity: int = 32
    heartbeat_ms: int = 0
    cancel_on_disconnect: bool = True
    auth: AuthPolicy = field(default_factory=AuthPolicy)
    #: Largest ``deadline_ms`` admitted (one hour): a larger one is a 400, not a slot held for ages.
    max_deadline_ms: int = 3_600_000
    #: An admitted task whose stream is not opened within this (or its deadline, if shorter) is
    #: dropped, so clients that enqueue and walk away cannot fill the queue.
    unopened_ttl_ms: int = 30_000
    #: Ids of tasks cancelled before their stream opened, remembered so that opening the stream
    #: still answers ``started`` + ``end`` ``cancelled``; the oldest are forgotten beyond this.
    cancelled_kept: int = 1024
    #: Largest request body read (POST /v1/tasks, /v1/workers/register): beyond it, 413.
    max_body_bytes: int = 1 << 20
    #: An opened task's stream lives at most ``deadline_ms`` plus this; then the facade ends it
    #: with ``DEADLINE_UNMET`` and frees its slot (a client that opens a stream and never reads
    #: stalls the adapter, whose own deadline check then never runs).
    deadline_grace_ms: int = 1000
    #: Extra ``Host`` names (lower-case, no port) trusted for token-less requests.
    allowed_hosts: frozenset[str] = frozenset()
    #: A stream write that cannot go out for this long means the client stopped reading (its
    #: socket buffers are full): the stream ends as on a disconnect (the task is cancelled) and
    #: the connection is closed, instead of being held until the deadline and beyond.
    write_timeout_ms: int = 30_000

    def __post_init__(self) -> None:
        for name in (
            "admission_capacity",
            "channel_capacity",
            "max_deadline_ms",
            "unopened_ttl_ms",
            "cancelled_kept",
            "max_body_bytes",
            "deadline_grace_ms",
            "write_timeout_ms",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


class _SseResponse(StreamingResponse):
    """A task's event stream whose writes have a deadline (``write_timeout_s``).

    A client that stops reading fills its socket buffers and then blocks the write for ever: the
    connection stays open and the task keeps running. A watchdog (one wake-up per quarter of the
    timeout, not a timer per token: the per-token path only stamps the time) ends the stream when
    one write has been pending that long; the event generator is closed, so the task is
    cancelled as on a disconnect, and uvicorn closes the connection of the unfinished response.
    """

    def __init__(
        self,
        content: AsyncGenerator[bytes, None],
        *,
        write_timeout_s: float,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._events = content
        self._write_timeout_s = write_timeout_s
        self._pending_since: float | None = None  # loop time of the write in progress

    async def _watchdog(self, scope: anyio.CancelScope) -> None:
        limit = self._write_timeout_s
        while True:
            await anyio.sleep(limit / 4)
            since = self._pending_since
            if since is not None and anyio.current_time() - since >= limit:
                scope.cancel()
                return

    async def stream_response(self, send: Send) -> None:
        try:  # the loop's clock is what anyio.current_time reads on asyncio, without the lookup
            now: Callable[[], float] = asyncio.get_running_loop().time
        except RuntimeError:  # another anyio backend
            now = anyio.current_time
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watchdog, tg.cancel_scope)
                self._pending_since = now()
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                self._pending_since = None
                async for chunk in self._events:
                    self._pending_since = now()
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    self._pending_since = None
                self._pending_since = now()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()  # done: stop the watchdog
        finally:
            # the generator's own finally cancels the task and frees its slot; a disconnect
            # arrives here as a cancellation, which must not cut that short
            with anyio.CancelScope(shield=True):
                await self._events.aclose()


@dataclass(slots=True)
class _Admitted:
    request: TaskRequest
    pool_id: str
    correlation_id: str
    queue_position: int
    predicted_start_ms: int
    cancelled: bool = False
    opened: bool = False  # the stream route answered (a second open is a 409)
    streaming: bool = False  # the SSE body started: the task now runs
    expiry: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    last_word: TokenEvent | None = None  # a terminal the full channel could not take


class JSONResponse(_StarletteJSON):
    """Starlette's JSON answer, except that text UTF-8 cannot carry is escaped, not a 500.

    JSON may hold lone surrogates (``"\\ud800"``); echoed back (a task id in the 202 body) they
    cannot be encoded as UTF-8, so such a body is written with ASCII escapes instead.
    """

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def _envelope(
    status: int,
    code: str,
    message: str,
    cid: str,
    *,
    engine: str | None = None,
    retriable: bool | None = None,
    retry_after_ms: int | None = None,
    policy_label: str | None = None,
    extra_headers: dict[str, str] | None = None,
    field_name: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    for k, v in (
        ("engine", engine),
        ("retriable", retriable),
        ("retry_after_ms", retry_after_ms),
        ("policy_label", policy_label),
        ("field", field_name),
    ):
        if v is not None:
            body[k] = v
    headers = {"X-Correlation-Id": cid, **(extra_headers or {})}
    return JSONResponse(body, status_code=status, headers=headers)


def _engine_label(raw: Any) -> str:
    """The ``engine`` metric label of a refused request: a contract engine or ``invalid``.

    Client-supplied text never becomes a label value, so refused requests cannot mint series.
    """
    engine = raw.get("engine") if isinstance(raw, dict) else None
    return engine if isinstance(engine, str) and engine in _ENGINES else "invalid"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == _JSON_MEDIA or (media.startswith("application/") and media.endswith("+json"))


class _BadBody(Exception):
    """A request body refused before it became data; carries the answer."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def _json_body(request: Request, cid: str, limit: int) -> Any:
    """The request's JSON body, read to at most ``limit`` bytes; raises :class:`_BadBody`.

    ``json.loads`` raises ``ValueError`` for integers past the 4300-digit limit and
    ``RecursionError`` for nesting past the recursion limit: both are the client's bad input.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BadBody(_envelope(413, "INVALID_PARAMS", f"body over {limit} bytes", cid))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BadBody(_envelope(413, "INVALID_PARAMS", f"body over {limit} bytes", cid))
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except RecursionError:
        raise _BadBody(_envelope(400, "INVALID_PARAMS", "body is nested too deeply", cid)) from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        why = "body is not valid JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise _BadBody(_envelope(400, "INVALID_PARAMS", why[:200], cid)) from None


def _frame(ev: TokenEvent) -> bytes:
    data = json.dumps(ev.data, separators=(",", ":"), ensure_ascii=False)
    try:
        return f"event: {ev.kind}\ndata: {data}\n\n".encode()
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800" from an engine): escape it
        data = json.dumps(ev.data, separators=(",", ":"))
        return f"event: {ev.kind}\ndata: {data}\n\n".encode()


class _Facade:
    def __init__(self, host: AdapterHost, config: FacadeConfig) -> None:
        self.host = host
        self.config = config
        self.tasks: dict[str, _Admitted] = {}
        # Tasks cancelled before their stream opened: out of the queue, id kept (bounded, FIFO).
        self.cancelled: dict[str, _Admitted] = {}
        self.tg: TaskGroup | None = None
        self.alive = False  # the lifespan's task group is running
        reg = host.metrics.registry
        self.enqueued = Counter(
            "tasks_enqueued_total",
            "Tasks admitted",
            ["engine", "engine_version", "pool_id", "replica_id", "priority"],
            registry=reg,
        )
        self.rejected = Counter(
            "tasks_rejected_total", "Tasks refused at admission", ["engine", "reason"], registry=reg
        )
        self.backpressure = Counter(
            "admission_backpressure_events_total",
            "Admission backpressure events",
            ["engine", "policy"],
            registry=reg,
        )
        self.queue_depth = Gauge(
            "queue_depth",
            "Unfinished admitted tasks",
            ["engine", "engine_version", "pool_id", "priority"],
            registry=reg,
        )
        self.sse_drops = Counter(
            "sse_backpressure_drops_total", "metrics frames dropped on a full channel", registry=reg
        )

    # -- helpers -------------------------------------------------------------------------
    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> bool:
        """Start background work under a guard; False when the facade is not running."""
        tg = self.tg
        if tg is None or not self.alive:
            return False
        try:
            tg.start_soon(self._guarded, fn, *args)
        except RuntimeError:  # the task group is closed: say so on /health from now on
            self.alive = False
            return False
        return True

    async def _guarded(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``fn``; an exception ends only that piece of work (logged, never propagated).

        Without this guard one failing child would cancel the lifespan's task group, and every
        later request that needs it would fail while ``/health`` still said ok.
        """
        try:
            await fn(*args)
        except Exception as exc:
            LOGGER.error(
                "facade background task failed: %s",
                redact(f"{type(exc).__name__}: {exc}")[:300],
                extra={"event": "task_failed"},
            )

    def _forget(self, adm: _Admitted) -> None:
        """Take an admitted task out of the queue (its slot and ``queue_depth`` go with it)."""
        adm.expiry.cancel()
        if self.tasks.get(adm.request.task_id) is adm:
            del self.tasks[adm.request.task_id]
        self._depth(adm.pool_id, adm.request.priority)

    def _position(self, priority: Priority) -> int:
        return sum(1 for t in self.tasks.values() if t.request.priority is priority)

    def _depth(self, pool_id: str, priority: Priority) -> None:
        n = sum(
            1
            for t in self.tasks.values()
            if t.pool_id == pool_id and t.request.priority is priority
        )
        self.queue_depth.labels("any", "any", pool_id, priority.value).set(n)

    # -- routes --------------------------------------------------------------------------
    async def enqueue(self, request: Request) -> Response:
        cid = request.state.correlation_id
        try:
            raw = await _json_body(request, cid, self.config.max_body_bytes)
        except _BadBody as bad:
            return bad.response
        deadline = raw.get("deadline_ms") if isinstance(raw, dict) else None
        if isinstance(deadline, int) and not isinstance(deadline, bool) and deadline <= 0:
            return _envelope(400, "DEADLINE_UNMET", "deadline_ms must be > 0", cid)
        try:
            req = TaskRequest.from_dict(raw)
        except InvalidTaskRequest as err:
            self.rejected.labels(_engine_label(raw), "INVALID_PARAMS").inc()
            return _envelope(400, "INVALID_PARAMS", err.message, cid, field_name=err.field)
        engine = req.engine.value
        if req.deadline_ms > self.config.max_deadline_ms:
            self.rejected.labels(engine, "INVALID_PARAMS").inc()
            return _envelope(
                400,
                "INVALID_PARAMS",
                f"deadline_ms must be at most {self.config.max_deadline_ms}",
                cid,
                engine=engine,
                field_name="deadline_ms",
            )
        if req.task_id in self.tasks:
            return _envelope(
                400,
                "INVALID_PARAMS",
                f"task {req.task_id[:200]!r} is already admitted",
                cid,
                engine=engine,
                field_name="task_id",
            )
        pool = self.config.default_pool
        pl = req.placement
        if pl is not None and pl.pin_pool_id:
            pool = pl.pin_pool_id
        if pool not in self.host.pools():
            self.rejected.labels(engine, "POOL_UNAVAILABLE").inc()
            return _envelope(
                503,
                "POOL_UNAVAILABLE",
                f"pool {pool[:200]!r} is not available",
                cid,
                engine=engine,
                retriable=True,
                retry_after_ms=self.config.retry_after_ms,
                policy_label="retry",
            )
        # A cancelled task no longer holds an admission slot, streamed or not.
        if sum(not t.cancelled for t in self.tasks.values()) >= self.config.admission_capacity:
            ms = self.config.retry_after_ms
            self.rejected.labels(engine, "ADMISSION_REJECT").inc()
            self.backpressure.labels(engine, "reject").inc()
            return _envelope(
                429,
                "ADMISSION_REJECT",
                "queue full policies applied",
                cid,
                engine=engine,
                retriable=True,
                retry_after_ms=ms,
                policy_label="reject",
                extra_headers={"Retry-After": str(max(1, ms // 1000)), "X-Backoff-Ms": str(ms)},
            )
        pos = self._position(req.priority)
        adm = _Admitted(req, pool, cid, pos, pos * 100)
        if not self._spawn(self._expire_unopened, adm):
            return _envelope(503, "INTERNAL", "the facade is not running", cid, engine=engine)
        self.cancelled.pop(req.task_id, None)
        self.tasks[req.task_id] = adm
        self.enqueued.labels(engine, "any", pool, "any", req.priority.value).inc()
        self._depth(pool, req.priority)
        narrate(
            ACTOR,
            "admission",
            req.session_id,
            f"Accepts task {req.task_id}; queued at position {pos} (ETA {pos * 100} ms)",
            task_id=req.task_id,
            session_id=req.session_id,
            pool_id=pool,
            queue_position=pos,
            predicted_start_ms=pos * 100,
            correlation_id=cid,
            identity=request.state.identity,
        )
        body = {
            "task_id": req.task_id,
            "queue_position": pos,
            "predicted_start_ms": pos * 100,
            "backoff_ms": 0,
            "streams": {"sse": f"/v1/tasks/{req.task_id}/stream"},
        }
        return JSONResponse(body, status_code=202, headers={"X-Correlation-Id": cid})

    async def _expire_unopened(self, adm: _Admitted) -> None:
        """Free the admission slot of a task whose stream nobody opened in time.

        Without this a client that enqueues and walks away holds a slot forever. The bound is
        the task's own ``deadline_ms`` (it could not be met any more anyway) or
        ``unopened_ttl_ms``, whichever is shorter. The wait is cancelled (``adm.expiry``) as
        soon as the task streams or leaves, so finished tasks leave no sleeper behind.
        """
        wait_ms = min(adm.request.deadline_ms, self.config.unopened_ttl_ms)
        with adm.expiry:
            await anyio.sleep(wait_ms / 1000)
        if adm.expiry.cancelled_caught or adm.expiry.cancel_called:
            return
        if self.tasks.get(adm.request.task_id) is adm and not adm.streaming:
            self._forget(adm)
            narrate(
                ACTOR,
                "expire",
                adm.request.task_id,
                "Drops a task whose stream was not opened in time",
                task_id=adm.request.task_id,
                correlation_id=adm.correlation_id,
            )

    async def stream(self, request: Request) -> Response:
        cid = request.state.correlation_id
        task_id = request.path_params["task_id"]
        adm = self.tasks.get(task_id)
        if adm is None:
            adm = self.cancelled.pop(task_id, None)
        if adm is None:
            return _envelope(404, "INVALID_PARAMS", f"unknown task {task_id[:200]!r}", cid)
        if adm.opened:
            return _envelope(
                409, "INVALID_PARAMS", f"task {task_id[:200]!r} is already streaming", cid
            )
        adm.opened = True
        return _SseResponse(
            self._sse(adm),
            write_timeout_s=self.config.write_timeout_ms / 1000,
            headers={**_SSE_HEADERS, "X-Correlation-Id": adm.correlation_id},
        )

    async def _produce(self, adm: _Admitted, send: MemoryObjectSendStream[TokenEvent]) -> None:
        """Run the task: the host's stream goes to the channel; any failure ends only this task."""
        events = self.host.submit(adm.pool_id, adm.request, correlation_id=adm.correlation_id)
        t0 = anyio.current_time()
        try:
            async with send:
                limit_s = (adm.request.deadline_ms + self.config.deadline_grace_ms) / 1000
                try:
                    with anyio.move_on_after(limit_s) as watchdog:
                        await self._pump(adm, events, send, t0)
                    if watchdog.cancelled_caught:
                        await self._overran(adm, send)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    raise
                except Exception as exc:
                    # Last line of isolation: the host maps adapter exceptions itself, so this
                    # is a bug of the host or the facade; it still ends only this task.
                    ev = TokenEvent.error(
                        error_for_condition(
                            UpstreamCondition.ADAPTER_BUG,
                            redact(f"task failed inside the facade: {type(exc).__name__}: {exc}"),
                        )
                    )
                    with anyio.move_on_after(1.0):
                        await send.send(ev)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the client went away; the consumer already cancelled the task
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()

    async def _overran(self, adm: _Admitted, send: MemoryObjectSendStream[TokenEvent]) -> None:
        """The task outlived ``deadline_ms`` + grace: free its slot, stop it, say so if possible."""
        adm.cancelled = True  # no longer counted at admission, even if its client never reads
        narrate(
            ACTOR,
            "deadline",
            adm.request.task_id,
            "Ends a task that outlived its deadline",
            task_id=adm.request.task_id,
            correlation_id=adm.correlation_id,
        )
        with anyio.CancelScope(shield=True):
            await self.host.cancel(adm.pool_id, adm.request.task_id)
        err = error_for_condition(
            UpstreamCondition.DEADLINE,
            f"task outlived deadline_ms {adm.request.deadline_ms} "
            f"(+{self.config.deadline_grace_ms} ms grace)",
        )
        try:
            send.send_nowait(TokenEvent.error(err))
        except anyio.WouldBlock:  # the client does not read: it gets the error after the backlog
            adm.last_word = TokenEvent.error(err)

    async def _pump(
        self,
        adm: _Admitted,
        events: AsyncIterator[TokenEvent],
        send: MemoryObjectSendStream[TokenEvent],
        t0: float,
    ) -> None:
        """Pull the host stream into the bounded channel (tokens wait; metrics may drop)."""
        tokens = 0
        saw_metrics = False
        async for ev in events:
            if ev.kind == "token":
                tokens += 1
            elif ev.kind == "end" and not saw_metrics:
                # Every successful stream carries the planning fields at least once.
                ev_m = TokenEvent.metrics(**self._planning(adm, t0, tokens, done=True))
                try:
                    send.send_nowait(ev_m)
                except anyio.WouldBlock:
                    self.sse_drops.inc()
            if ev.kind == "started":
                ev = TokenEvent(
                    "started",
                    {
                        **ev.data,
                        "queue_position": adm.queue_position,
                        "predicted_start_ms": adm.predicted_start_ms,
                    },
                )
            if ev.kind == "metrics":
                saw_metrics = True
                ev = TokenEvent(
                    "metrics", {**ev.data, **self._planning(adm, t0, tokens, done=False)}
                )
                try:
                    send.send_nowait(ev)
                except anyio.WouldBlock:
                    self.sse_drops.inc()
                continue
            await send.send(ev)
            if ev.is_terminal:
                return

    def _planning(self, adm: _Admitted, t0: float, tokens: int, *, done: bool) -> dict[str, Any]:
        """Additive planning fields of a ``metrics`` frame (OC-METRICS-7110).

        ``queue_depth``: unfinished admitted tasks of the pool. ``kv_warmth``: the facade has no
        view of engine caches, so it reports the caller's hint (``kv_hint: reuse``) and nothing
        more. ``on_time_probability`` is a documented heuristic, not a model: the decode rate so
        far projects the finish time of the remaining ``max_tokens``; 1.0 when that lands
        within ``deadline_ms``, else the fraction of it that fits (a finished stream: 1.0 or 0.0).
        """
        req = adm.request
        elapsed_ms = (anyio.current_time() - t0) * 1000.0
        deadline = float(req.deadline_ms)
        if done or tokens == 0:
            projected = elapsed_ms
        else:
            projected = elapsed_ms + (req.max_tokens - tokens) * (elapsed_ms / tokens)
        if done:
            p = 1.0 if elapsed_ms <= deadline else 0.0
        else:
            p = 1.0 if projected <= deadline else max(0.0, min(1.0, deadline / projected))
        return {
            "on_time_probability": round(p, 3),
            "queue_depth": sum(1 for t in self.tasks.values() if t.pool_id == adm.pool_id),
            "kv_warmth": req.kv_hint is not None and req.kv_hint.value == "reuse",
        }

    async def _sse(self, adm: _Admitted) -> AsyncGenerator[bytes, None]:
        req = adm.request
        finished = False
        adm.streaming = True
        adm.expiry.cancel()
        try:
            if adm.cancelled:
                yield _frame(
                    TokenEvent.started(
                        queue_position=adm.queue_position,
                        predicted_start_ms=adm.predicted_start_ms,
                        correlation_id=adm.correlation_id,
                    )
                )
                yield _frame(TokenEvent.end(0, 0, stop_reason="cancelled"))
                finished = True
                return
            send, recv = anyio.create_memory_object_stream[TokenEvent](self.config.channel_capacity)
            if not self._spawn(self._produce, adm, send):
                send.close()
                recv.close()
                err = error_for_condition(UpstreamCondition.ADAPTER_BUG, "the facade is stopping")
                yield _frame(TokenEvent.error(err))
                finished = True
                return
            hb = self.config.heartbeat_ms / 1000 if self.config.heartbeat_ms > 0 else None
            async with recv:
                while True:
                    ev: TokenEvent | None = None
                    with anyio.move_on_after(hb):
                        try:
                            ev = await recv.receive()
                        except anyio.EndOfStream:
                            ev = adm.last_word
                            if ev is None:
                                break
                    if ev is None:
                        yield b": keep-alive\n\n"
                        continue
                    yield _frame(ev)
                    if ev.is_terminal:
                        finished = True
                        break
        finally:
            if not finished and self.config.cancel_on_disconnect:
                with anyio.CancelScope(shield=True):
                    narrate(
                        ACTOR,
                        "cancel",
                        req.task_id,
                        "Cancels task because the client went away",
                        task_id=req.task_id,
                        correlation_id=adm.correlation_id,
                    )
                    await self.host.cancel(adm.pool_id, req.task_id)
            self._forget(adm)

    async def cancel(self, request: Request) -> Response:
        cid = request.state.correlation_id
        task_id = request.path_params["task_id"]
        adm = self.tasks.get(task_id)
        if adm is not None and not adm.cancelled:
            adm.cancelled = True
            if not adm.opened:
                # Never opened: leave the queue now (slot, queue_depth and expiry timer go);
                # keep the id, bounded, so that opening it still says it was cancelled.
                self._forget(adm)
                self.cancelled[task_id] = adm
                while len(self.cancelled) > self.config.cancelled_kept:
                    del self.cancelled[next(iter(self.cancelled))]
            narrate(
                ACTOR,
                "cancel",
                task_id,
                "Cancels task at the client's request",
                task_id=task_id,
                correlation_id=cid,
            )
            await self.host.cancel(adm.pool_id, task_id)
        return Response(status_code=204, headers={"X-Correlation-Id": cid})

    async def register_worker(self, request: Request) -> Response:
        """``POST /v1/workers/register`` (AUTH-1003): bind an engine as a replica; token required.

        Unlike the task routes, registration never falls back to loopback trust: without a
        configured token nothing can register, and the caller must present that token.
        Body: ``{engine, url?, pool_id = "default", replica_id = "r0", config?}``.
        """
        cid = request.state.correlation_id
        client = request.client.host if request.client else None
        decision = self.config.auth.decide(request.headers.get("authorization"), client)
        if self.config.auth.token is None or not decision.ok or decision.identity == "localhost":
            code, msg = (
                (decision.code, decision.message)
                if decision.code is not None
                else (40101, "MISSING_TOKEN")
            )
            LOGGER.warning(
                "worker registration refused",
                extra={"identity": decision.identity, "event": "auth_failed"},
            )
            return JSONResponse(
                {"code": code, "message": msg, "hint": "registration needs the API token"},
                status_code=401,
                headers={"X-Correlation-Id": cid, "WWW-Authenticate": "Bearer"},
            )
        try:
            raw = await _json_body(request, cid, self.config.max_body_bytes)
        except _BadBody as bad:
            return bad.response
        if not isinstance(raw, dict):
            return _envelope(400, "INVALID_PARAMS", "body must be a JSON object", cid)
        pool = raw.get("pool_id", "default")
        replica = raw.get("replica_id", "r0")
        engine = raw.get("engine")
        url = raw.get("url", "mock://local" if engine == "mock" else None)
        extra = raw.get("config", {})
        for name, value in (
            ("pool_id", pool),
            ("replica_id", replica),
            ("engine", engine),
            ("url", url),
        ):
            if not isinstance(value, str) or not value:
                return _envelope(
                    400,
                    "INVALID_PARAMS",
                    f"{name} must be a non-empty string",
                    cid,
                    field_name=name,
                )
        if not isinstance(extra, dict):
            return _envelope(
                400, "INVALID_PARAMS", "config must be an object", cid, field_name="config"
            )
        from llorch_conformance.adapters import create_adapter
        from llorch_conformance.adapters.api import HarnessError

        pool, replica, engine, url = str(pool), str(replica), str(engine), str(url)

        try:
            adapter = create_adapter(engine, url, pool_id=pool, replica_id=replica, **extra)
        except (HarnessError, TypeError, ValueError) as exc:
            return _envelope(400, "INVALID_PARAMS", str(exc)[:200], cid, field_name="engine")
        except Exception as exc:  # an adapter refusing odd config values must not be a 500
            msg = redact(f"adapter refused its configuration: {type(exc).__name__}: {exc}")
            return _envelope(400, "INVALID_PARAMS", msg[:200], cid, field_name="config")
        old = self.host.bind(pool, replica, adapter)
        if old is not None:
            close = getattr(old, "aclose", None)
            if close is not None:
                self._spawn(close)  # in-flight streams keep it until they finish
        narrate(
            ACTOR,
            "worker_register",
            pool,
            f"Registers {engine} replica {replica} in pool {pool}",
            pool_id=pool,
            replica_id=replica,
            engine=engine,
            identity=decision.identity,
            correlation_id=cid,
        )
        return JSONResponse(
            {"ok": True, "identity": decision.identity, "pool_id": pool, "replica_id": replica},
            headers={"X-Correlation-Id": cid},
        )

    async def capabilities(self, request: Request) -> Response:
        engines = []
        for pool in self.host.pools():
            try:
                caps = await self.host.capabilities(pool)
            except WorkerError:
                continue
            engines.append({**caps.to_dict(), "concurrency": caps.slots, "pool_id": pool})
        return JSONResponse(
            {"api_version": "1.0.0", "engines": engines},
            headers={"X-Correlation-Id": request.state.correlation_id},
        )

    async def pool_health(self, request: Request) -> Response:
        cid = request.state.correlation_id
        pool = request.path_params["pool_id"]
        if pool not in self.host.pools():
            return _envelope(404, "POOL_UNAVAILABLE", f"unknown pool {pool!r}", cid)
        h = await self.host.health(pool)
        reps = self.host.replicas(pool)
        body = {
            "live": h.live,
            "ready": h.ready,
            "draining": bool(reps) and all(r.draining for r in reps),
            "metrics": {
                "queue_depth": sum(1 for t in self.tasks.values() if t.pool_id == pool),
                "in_flight": sum(r.in_flight for r in reps),
                "breakers": {r.replica_id: r.breaker.value for r in reps},
            },
            "last_error": None,
        }
        return JSONResponse(body, headers={"X-Correlation-Id": cid})

    async def metrics(self, request: Request) -> Response:
        return Response(
            generate_latest(self.host.metrics.registry),
            media_type=CONTENT_TYPE_LATEST,
            headers={"X-Correlation-Id": request.state.correlation_id},
        )

    async def health(self, request: Request) -> Response:
        """200 ``{ok: true}`` while the facade can run tasks; 503 when its task group is gone."""
        cid = request.state.correlation_id
        if not self.alive:
            return JSONResponse(
                {"ok": False, "reason": "the facade's task group is not running"},
                status_code=503,
                headers={"X-Correlation-Id": cid},
            )
        return JSONResponse({"ok": True}, headers={"X-Correlation-Id": cid})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(
            openapi_document(self.config),
            headers={"X-Correlation-Id": request.state.correlation_id},
        )


class _Gate:
    """ASGI middleware: correlation id on every response, auth, cross-site and media-type checks.

    Exempt from auth: ``/health`` and ``/openapi.json``. The cross-site checks apply to every
    request let in without a token (they are what stands in for one); a POST that carries a
    body must be JSON.
    """

    EXEMPT = frozenset({"/health", "/openapi.json"})

    def __init__(self, app: ASGIApp, config: FacadeConfig) -> None:
        self.app = app
        self.policy = config.auth
        self.allowed_hosts = frozenset(h.lower() for h in config.allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-correlation-id")
        # Only a printable-ASCII id of sane length is echoed and forwarded to engines; anything
        # else (latin-1 bytes, 8 KiB) is replaced, so a client cannot push odd headers upstream.
        cid = given if given and _CID.fullmatch(given) else str(uuid.uuid4())
        client = scope.get("client")
        decision = self.policy.decide(headers.get("authorization"), client[0] if client else None)
        state = scope.setdefault("state", {})
        state["correlation_id"] = cid
        state["identity"] = decision.identity
        if scope["path"] not in self.EXEMPT and not decision.ok:
            LOGGER.warning(
                "auth failed",
                extra={
                    "identity": decision.identity,
                    "event": "auth_failed",
                    "path": scope["path"][:200],
                },
            )
            resp = JSONResponse(
                {"code": decision.code, "message": decision.message},
                status_code=401,
                headers={"X-Correlation-Id": cid, "WWW-Authenticate": "Bearer"},
            )
            await resp(scope, receive, send)
            return
        refusal = self._refusal(scope, headers, decision.identity, cid)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def send_with_cid(message: Any) -> None:
            if message["type"] == "http.response.start":
                hs = list(message.get("headers", []))
                if not any(k.lower() == b"x-correlation-id" for k, _ in hs):
                    hs.append((b"x-correlation-id", cid.encode("latin-1")))
                message = {**message, "headers": hs}
            await send(message)

        await self.app(scope, receive, send_with_cid)

    def _refusal(
        self, scope: Scope, headers: dict[str, str], identity: str, cid: str
    ) -> Response | None:
        """403 for a token-less cross-site request, 415 for a POST body that is not JSON."""
        # Checked where loopback trust stands in for a token: a token-less facade, or a
        # loopback client let in without one (``optional``). A caller without the configured
        # token reaches only the exempt routes, which hold no data.
        if self.policy.token is None or identity == "localhost":
            server = scope.get("server")
            why = check_same_site(
                headers.get("host"),
                headers.get("origin"),
                sec_fetch_site=headers.get("sec-fetch-site"),
                server_host=str(server[0]) if server else None,
                allowed_hosts=self.allowed_hosts,
            )
            if why is not None:
                LOGGER.warning(
                    "cross-site request refused",
                    extra={"event": "cross_site", "why": why.message, "path": scope["path"][:200]},
                )
                return JSONResponse(
                    {"code": why.code, "message": why.message},
                    status_code=403,
                    headers={"X-Correlation-Id": cid},
                )
        if scope["method"] == "POST":
            ctype = headers.get("content-type")
            has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            if (ctype is not None and not _is_json(ctype)) or (ctype is None and has_body):
                return _envelope(
                    415,
                    "INVALID_PARAMS",
                    "a POST body must be application/json",
                    cid,
                    extra_headers={"Accept": _JSON_MEDIA},
                )
        return None


def create_app(host: AdapterHost, config: FacadeConfig | None = None) -> ASGIApp:
    """The orchestrator facade as an ASGI app (needs its lifespan: run it under uvicorn)."""
    cfg = config or FacadeConfig()
    facade = _Facade(host, cfg)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            facade.tg = tg
            facade.alive = True
            try:
                yield
            finally:
                facade.alive = False
                tg.cancel_scope.cancel()

    routes = [
        Route("/v1/tasks", facade.enqueue, methods=["POST"]),
        Route("/v1/tasks/{task_id}/stream", facade.stream, methods=["GET"]),
        Route("/v1/tasks/{task_id}/cancel", facade.cancel, methods=["POST"]),
        Route("/v1/workers/register", facade.register_worker, methods=["POST"]),
        Route("/v1/capabilities", facade.capabilities, methods=["GET"]),
        Route("/v1/pools/{pool_id}/health", facade.pool_health, methods=["GET"]),
        Route("/metrics", facade.metrics, methods=["GET"]),
        Route("/health", facade.health, methods=["GET"]),
        Route("/openapi.json", facade.openapi, methods=["GET"]),
    ]

    async def not_routed(request: Request, exc: Exception) -> Response:
        """404/405 as the JSON envelope, like every other refusal of the facade."""
        status = getattr(exc, "status_code", 404)
        cid = request.state.correlation_id
        if status == 405:
            return _envelope(405, "INVALID_PARAMS", "method not allowed on this route", cid)
        return _envelope(404, "INVALID_PARAMS", "no such route", cid)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_routed, 405: not_routed},
    )
    app.state.facade = facade
    return _Gate(app, cfg)
