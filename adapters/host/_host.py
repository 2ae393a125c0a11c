"""The adapter host: registry + facade over WorkerAdapters (ORCH-3600..3604, AH-1001..1007, AH-2001..2003).

What the original had was bind/submit/cancel over a HashMap (first replica found, no retries).
This one keeps the same shape and adds what the specs ask for:

* **Registry** keyed by ``(pool_id, replica_id)``: ``bind`` (insert or atomic rebind — callers
  mid-stream keep the adapter they started with), idempotent ``unbind``, ``drain`` (no new work,
  wait for in-flight tasks, then unbind).
* **Facade**: ``submit``, ``cancel``, ``health``, ``props``, ``capabilities`` per pool. ``submit``
  picks a replica that is not draining, whose breaker lets calls through, that reported ready, and
  that has the most free slots (slots from the adapter's capabilities minus tasks in flight);
  ties go round-robin.
* **Retries only before the first token** (ORCH-3602, SSE "no mid-stream retries"): events before
  the first token (``started``, ``metrics``) are held back; if the stream then fails with a
  retriable error, they are dropped and the task is tried again (possibly on another replica)
  with the capped, jittered policy of :mod:`adapters.http_util` — so the caller never sees two
  ``started``. After the first token, errors pass through as the terminal event.
* **Circuit breaker** per replica (:mod:`._breaker`); infrastructure failures feed it.
* **Capability snapshot cache** per pool (ORCH-3603), invalidated on bind/unbind.
* **Correlation id** (AH-1003): given or a new UUIDv4; put in ``TaskRequest.extra`` for adapters
  that forward it as ``X-Correlation-Id``, added to ``started`` and to every log/narration.
* **Cancel** (AH-1004): after ``cancel`` returns no ``token``/``metrics`` event reaches the caller;
  the adapter's own terminal event still ends the stream (exactly one terminal).
* **Narration** at submit, stream start, end, cancel and errors; **metrics** by prometheus_client
  into a per-host registry (names and labels of the metrics contract, reference §4.3).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, nullcontext
from dataclasses import dataclass
from typing import Any

import anyio

from llorch_conformance.adapters.api import (
    Capabilities,
    ErrorCode,
    PlacementMode,
    TaskRequest,
    TokenEvent,
    UpstreamCondition,
    WorkerAdapter,
    WorkerError,
    WorkerErrorKind,
    WorkerHealth,
    WorkerProps,
    error_for_condition,
)
from llorch_conformance.adapters.http_util import RetryPolicy, RetryTimeline, redact, retry_async

from ._breaker import BreakerConfig, BreakerState, CircuitBreaker
from ._metrics import HostMetrics
from ._narration import narrate

__all__ = ["AdapterHost", "PoolPolicy", "ReplicaInfo"]

LOGGER = logging.getLogger("llorch.adapter_host")
ACTOR = "adapter-host"

#: How many recent per-task retry timelines :attr:`AdapterHost.timelines` keeps (oldest go first).
TIMELINES_KEPT = 1024

# Errors that say something about the replica's health (and so feed its breaker).
_INFRA_CODES = frozenset(
    {ErrorCode.POOL_UNAVAILABLE.value, ErrorCode.WORKER_RESET.value, ErrorCode.DECODE_TIMEOUT.value}
)


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """Per-pool overrides (AH-1006): retry policy and a bound on the wait for the first token."""

    retry: RetryPolicy | None = None
    first_token_timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """A read-only view of one registry entry, for status pages and tests."""

    pool_id: str
    replica_id: str
    draining: bool
    in_flight: int
    breaker: BreakerState


@dataclass(slots=True)
class _Replica:
    pool_id: str
    replica_id: str
    adapter: WorkerAdapter
    breaker: CircuitBreaker
    draining: bool = False
    in_flight: int = 0
    slots: int | None = None
    engine: str = "unknown"
    engine_version: str = "unknown"
    described: bool = False
    health: WorkerHealth | None = None
    health_at: float = -1e18
    idle: anyio.Event | None = None  # created by drain(): bind() may run outside a loop


@dataclass(slots=True)
class _Task:
    task_id: str
    pool_id: str
    correlation_id: str
    replica: _Replica | None = None
    cancelled: bool = False
    tokens: int = 0


@dataclass(slots=True)
class _Opened:
    replica: _Replica
    stream: AsyncIterator[TokenEvent]
    held: list[TokenEvent]


class AdapterHost:
    """Registry and facade over worker adapters. Runs on one event loop; not thread-safe."""

    def __init__(
        self,
        *,
        retry_policy: RetryPolicy | None = None,
        breaker: BreakerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = anyio.sleep,
        health_ttl_s: float = 1.0,
        capability_ttl_s: float = 60.0,
        metrics: HostMetrics | None = None,
    ) -> None:
        self._retry = retry_policy or RetryPolicy()
        self._breaker_config = breaker or BreakerConfig()
        self._clock = clock
        self._sleep = sleep
        self._health_ttl = health_ttl_s
        self._cap_ttl = capability_ttl_s
        self.metrics = metrics or HostMetrics()
        self._replicas: dict[tuple[str, str], _Replica] = {}
        self._policies: dict[str, PoolPolicy] = {}
        self._caps: dict[str, tuple[float, Capabilities]] = {}
        self._tasks: dict[str, _Task] = {}
        self._rr = 0
        self.timelines: dict[str, RetryTimeline] = {}

    # ------------------------------------------------------------------ registry (AH-1001)
    def bind(self, pool_id: str, replica_id: str, adapter: WorkerAdapter) -> WorkerAdapter | None:
        """Bind or atomically rebind ``(pool_id, replica_id)``; returns the adapter it replaced.

        In-flight streams keep the adapter they started on; new submits see the new one at once.
        """
        if not pool_id or not replica_id:
            raise ValueError("pool_id and replica_id must be non-empty")
        key = (pool_id, replica_id)
        old = self._replicas.get(key)
        breaker = CircuitBreaker(
            self._breaker_config,
            clock=self._clock,
            on_change=lambda a, b: self._breaker_changed(pool_id, replica_id, a, b),
        )
        self._replicas[key] = _Replica(pool_id, replica_id, adapter, breaker)
        self._caps.pop(pool_id, None)
        narrate(
            ACTOR,
            "rebind" if old else "bind",
            pool_id,
            f"{'Rebinds' if old else 'Binds'} replica {replica_id} in pool {pool_id}",
            pool_id=pool_id,
            replica_id=replica_id,
        )
        return old.adapter if old else None

    def unbind(self, pool_id: str, replica_id: str) -> WorkerAdapter | None:
        """Remove a binding; unbinding something not bound is a no-op (idempotent)."""
        old = self._replicas.pop((pool_id, replica_id), None)
        if old is not None:
            self._caps.pop(pool_id, None)
            narrate(
                ACTOR,
                "unbind",
                pool_id,
                f"Unbinds replica {replica_id} from pool {pool_id}",
                pool_id=pool_id,
                replica_id=replica_id,
            )
        return old.adapter if old else None

    async def drain(self, pool_id: str, replica_id: str, *, deadline_s: float = 30.0) -> bool:
        """Stop routing new work to a replica, wait for its in-flight tasks, then unbind it.

        Returns True when it drained before the deadline, False when the deadline cut it short
        (it is unbound either way; streams in flight keep running on their adapter).
        """
        rep = self._replicas.get((pool_id, replica_id))
        if rep is None:
            return True
        rep.draining = True
        narrate(ACTOR, "drain", pool_id, f"Drains replica {replica_id}", replica_id=replica_id)
        clean = True
        if rep.in_flight:
            idle = rep.idle = anyio.Event()
            with anyio.move_on_after(deadline_s) as scope:
                await idle.wait()
            clean = not scope.cancelled_caught
        if self._replicas.get((pool_id, replica_id)) is rep:
            self.unbind(pool_id, replica_id)
        return clean

    def replicas(self, pool_id: str | None = None) -> list[ReplicaInfo]:
        return [
            ReplicaInfo(r.pool_id, r.replica_id, r.draining, r.in_flight, r.breaker.state)
            for r in self._replicas.values()
            if pool_id is None or r.pool_id == pool_id
        ]

    def pools(self) -> list[str]:
        return sorted({p for p, _ in self._replicas})

    def set_pool_policy(self, pool_id: str, policy: PoolPolicy) -> None:
        self._policies[pool_id] = policy

    def breaker(self, pool_id: str, replica_id: str) -> CircuitBreaker:
        return self._replicas[(pool_id, replica_id)].breaker

    # ------------------------------------------------------------------ facade (AH-1002)
    async def health(self, pool_id: str) -> WorkerHealth:
        """Live if any replica is live; ready if any replica is ready and its breaker allows."""
        reps = self._pool(pool_id)
        if not reps:
            return WorkerHealth(live=False, ready=False)
        live = ready = False
        for rep in reps:
            h = await self._health_of(rep, force=True)
            live = live or h.live
            ready = ready or (h.ready and not rep.draining and rep.breaker.would_allow())
        return WorkerHealth(live=live, ready=ready)

    async def props(self, pool_id: str) -> WorkerProps:
        """Slots summed over the pool's replicas (``None`` when no replica says)."""
        total: int | None = None
        free: int | None = None
        for rep in self._pool(pool_id):
            try:
                p = await rep.adapter.props()
            except Exception:  # an adapter failing props must not break the facade
                continue
            if p.slots_total is not None:
                total = (total or 0) + p.slots_total
            if p.slots_free is not None:
                free = (free or 0) + p.slots_free
        return WorkerProps(slots_total=total, slots_free=free)

    async def capabilities(self, pool_id: str, *, refresh: bool = False) -> Capabilities:
        """Capability snapshot of a pool, cached (ORCH-3603); raises WorkerError when none."""
        cached = self._caps.get(pool_id)
        now = self._clock()
        if cached and not refresh and now - cached[0] < self._cap_ttl:
            return cached[1]
        last: Exception | None = None
        for rep in self._pool(pool_id):
            try:
                caps = await rep.adapter.capabilities()
            except Exception as exc:
                last = exc
                continue
            self._caps[pool_id] = (now, caps)
            return caps
        raise WorkerError(
            WorkerErrorKind.POOL_UNAVAILABLE,
            f"no capabilities for pool {pool_id!r}"
            + (f": {redact(str(last))}" if last else " (nothing bound)"),
            retriable=True,
        )

    async def cancel(self, pool_id: str, task_id: str) -> None:
        """Cancel a task; idempotent, unknown ids are harmless (AH-1004).

        When this returns, no further ``token`` or ``metrics`` event of the task reaches the
        caller of :meth:`submit`.
        """
        task = self._tasks.get(task_id)
        if task is None or task.pool_id != pool_id or task.cancelled:
            return
        task.cancelled = True
        rep = task.replica
        narrate(
            ACTOR,
            "cancel",
            rep.engine if rep else pool_id,
            f"Cancels task {task_id} on request",
            task_id=task_id,
            pool_id=pool_id,
            replica_id=rep.replica_id if rep else None,
            correlation_id=task.correlation_id,
        )
        if rep is not None:
            self.metrics.canceled(rep, "client")
            try:
                await rep.adapter.cancel(task_id)
            except Exception as exc:  # best effort: the host already stopped delivery
                LOGGER.warning(
                    "adapter cancel failed: %s", redact(str(exc)), extra={"task_id": task_id}
                )

    def submit(
        self, pool_id: str, request: TaskRequest, *, correlation_id: str | None = None
    ) -> AsyncIterator[TokenEvent]:
        """Stream a task's events from a replica of ``pool_id`` (or its pinned pool, AH-1007)."""
        return self._submit(pool_id, request, correlation_id or str(uuid.uuid4()))

    # ------------------------------------------------------------------ internals
    def _pool(self, pool_id: str) -> list[_Replica]:
        return [r for (p, _), r in self._replicas.items() if p == pool_id]

    def _breaker_changed(
        self, pool: str, replica: str, old: BreakerState, new: BreakerState
    ) -> None:
        self.metrics.breaker_transition(pool, replica, new.value)
        narrate(
            ACTOR,
            "breaker",
            pool,
            f"Circuit of replica {replica} goes from {old.value} to {new.value}",
            pool_id=pool,
            replica_id=replica,
        )

    async def _health_of(self, rep: _Replica, *, force: bool = False) -> WorkerHealth:
        now = self._clock()
        if not force and rep.health is not None and now - rep.health_at < self._health_ttl:
            return rep.health
        try:
            h = await rep.adapter.health()
        except Exception:
            h = WorkerHealth(live=False, ready=False)
        rep.health, rep.health_at = h, self._clock()
        return h

    async def _describe(self, rep: _Replica) -> None:
        if rep.described:
            return
        rep.described = True
        try:
            caps = await rep.adapter.capabilities()
            rep.engine, rep.engine_version, rep.slots = caps.engine, caps.engine_version, caps.slots
        except Exception:
            try:
                rep.engine_version = await rep.adapter.engine_version()
            except Exception:
                rep.engine_version = "unknown"

    async def _pick(self, pool_id: str) -> _Replica:
        reps = [r for r in self._pool(pool_id) if not r.draining]
        if not reps:
            raise WorkerError(
                WorkerErrorKind.POOL_UNAVAILABLE,
                f"no adapter bound for pool {pool_id!r}",
                retriable=True,
            )
        open_wait: list[int] = []
        ready: list[_Replica] = []
        for rep in reps:
            if not rep.breaker.would_allow():
                open_wait.append(rep.breaker.retry_after_ms())
                continue
            if (await self._health_of(rep)).ready:
                ready.append(rep)
        if not ready:
            if open_wait and len(open_wait) == len(reps):
                raise WorkerError(
                    WorkerErrorKind.POOL_UNAVAILABLE,
                    f"circuit open for every replica of pool {pool_id!r}",
                    retriable=True,
                    retry_after_ms=min(open_wait),
                )
            raise WorkerError(
                WorkerErrorKind.POOL_UNAVAILABLE,
                f"no ready replica in pool {pool_id!r}",
                retriable=True,
            )
        for rep in ready:
            await self._describe(rep)
        self._rr += 1
        order = ready[self._rr % len(ready) :] + ready[: self._rr % len(ready)]
        # A half-open replica gets its trial call first: otherwise a replica with fewer slots
        # than its peers would never be probed and so never recover.
        probing = [r for r in order if r.breaker.state is BreakerState.HALF_OPEN]
        best = probing[0] if probing else max(order, key=lambda r: (r.slots or 1) - r.in_flight)
        if not best.breaker.allow():  # half-open trial already taken by another task
            raise WorkerError(
                WorkerErrorKind.POOL_UNAVAILABLE,
                f"replica {best.replica_id} is being probed after failures",
                retriable=True,
                retry_after_ms=100,
            )
        return best

    async def _open(self, pool_id: str, request: TaskRequest, task: _Task) -> _Opened:
        """One attempt: open a stream and hold events back until the first token or terminal."""
        if task.cancelled:
            raise WorkerError(WorkerErrorKind.INTERNAL, "task cancelled before it started")
        rep = await self._pick(pool_id)
        task.replica = rep
        rep.in_flight += 1
        verdicts = rep.breaker.verdicts
        try:
            return await self._attempt(rep, pool_id, request, task)
        finally:
            if rep.breaker.verdicts == verdicts:  # no success or failure was recorded
                rep.breaker.release_trial()

    async def _attempt(
        self, rep: _Replica, pool_id: str, request: TaskRequest, task: _Task
    ) -> _Opened:
        try:
            stream = rep.adapter.submit(request).__aiter__()
        except WorkerError as err:  # e.g. InvalidTaskRequest raised before anything was sent
            return _Opened(rep, _empty(), [TokenEvent.error(err)])
        except Exception as exc:
            return _Opened(rep, _empty(), [_bug(exc)])
        held: list[TokenEvent] = []
        policy = self._policies.get(pool_id)
        limit = policy.first_token_timeout_s if policy else None
        try:
            with anyio.fail_after(limit) if limit else nullcontext():
                async for ev in stream:
                    held.append(ev)
                    if ev.kind == "token" or ev.kind == "end":
                        rep.breaker.record_success()
                        return _Opened(rep, stream, held)
                    if ev.kind == "error":
                        if ev.data.get("code") in _INFRA_CODES:
                            rep.breaker.record_failure()
                        if ev.data.get("retriable") is True and not task.cancelled:
                            raise WorkerError.from_event_data(ev.data)
                        return _Opened(rep, _empty(), held)
            # The adapter's stream ended with no terminal event: a contract violation.
            held.append(_missing_terminal())
            return _Opened(rep, _empty(), held)
        except TimeoutError:
            rep.breaker.record_failure()
            await _aclose(stream)
            rep.in_flight -= 1
            raise error_for_condition(
                UpstreamCondition.TIMEOUT, f"no first token within {limit} s"
            ) from None
        except WorkerError:
            await _aclose(stream)
            rep.in_flight -= 1
            raise
        except Exception as exc:
            await _aclose(stream)
            return _Opened(rep, _empty(), [*held, _bug(exc)])

    async def _submit(
        self, pool_id: str, request: TaskRequest, cid: str
    ) -> AsyncIterator[TokenEvent]:
        target = pool_id
        pl = request.placement
        if pl is not None and pl.mode is PlacementMode.PIN and pl.pin_pool_id:
            if not self._pool(pl.pin_pool_id):
                yield TokenEvent.error(
                    WorkerError(
                        WorkerErrorKind.ADAPTER,
                        f"pinned pool {pl.pin_pool_id!r} is not bound",
                        code=ErrorCode.INVALID_PARAMS,
                    )
                )
                return
            target = pl.pin_pool_id
        task = _Task(request.task_id, target, cid)
        self._tasks[request.task_id] = task
        request = dataclasses.replace(request, extra={**request.extra, "correlation_id": cid})
        narrate(
            ACTOR,
            "submit",
            target,
            f"Submits task {request.task_id} to pool {target}",
            task_id=request.task_id,
            job_id=request.task_id,
            session_id=request.session_id,
            pool_id=target,
            correlation_id=cid,
        )
        timeline = RetryTimeline()
        self.timelines[request.task_id] = timeline
        while len(self.timelines) > TIMELINES_KEPT:  # evidence of recent tasks, not a leak
            del self.timelines[next(iter(self.timelines))]
        policy = self._policies.get(target)
        retry = policy.retry if policy and policy.retry else self._retry
        opened: _Opened | None = None
        t0 = self._clock()
        try:
            try:
                opened = await retry_async(
                    lambda _attempt: self._open(target, request, task),
                    retry,
                    idempotent=True,
                    timeline=timeline,
                    sleep=self._sleep,
                )
            except WorkerError as err:
                self.metrics.retries(target, len(timeline))
                self._narrate_error(task, err.to_event_data())
                yield TokenEvent.error(err)
                return
            self.metrics.retries(target, len(timeline))
            rep = opened.replica
            self.metrics.started(rep, request)
            first_token_at: float | None = None
            saw_terminal = False
            async with aclosing(self._replica_events(opened, request, cid)) as events:
                async for ev in events:
                    if task.cancelled and not ev.is_terminal:
                        continue
                    if ev.kind == "token" and first_token_at is None:
                        first_token_at = self._clock()
                        self.metrics.first_token(rep, request, (first_token_at - t0) * 1000)
                    yield ev
                    if ev.is_terminal:
                        saw_terminal = True
                        self._finish(task, rep, request, ev, t0, first_token_at)
                        return
            if not saw_terminal:
                ev = _missing_terminal()
                self._finish(task, rep, request, ev, t0, first_token_at)
                yield ev
        finally:
            if opened is not None:
                await _aclose(opened.stream)
                rep_done = opened.replica
                rep_done.in_flight -= 1
                if rep_done.in_flight <= 0:
                    rep_done.in_flight = 0
                    if rep_done.idle is not None:
                        rep_done.idle.set()
            self._tasks.pop(request.task_id, None)

    async def _replica_events(
        self, opened: _Opened, request: TaskRequest, cid: str
    ) -> AsyncGenerator[TokenEvent]:
        """The replica's events as one stream: those held while opening (its ``started``
        carries the facade's correlation id and is narrated), then the rest. An adapter that
        raises mid-stream breaks its contract (failures are events): the stream ends with the
        mapped ADAPTER_BUG error and nothing else is touched."""
        rep = opened.replica
        for ev in opened.held:
            if ev.kind == "started":
                ev = TokenEvent("started", {**ev.data, "correlation_id": cid})
                narrate(
                    ACTOR,
                    "stream_start",
                    rep.engine,
                    f"Starts streaming task {request.task_id} from {rep.replica_id}",
                    task_id=request.task_id,
                    pool_id=rep.pool_id,
                    replica_id=rep.replica_id,
                    engine=rep.engine,
                    engine_version=rep.engine_version,
                    correlation_id=cid,
                )
            yield ev
        try:
            async for ev in opened.stream:
                yield ev
        except Exception as exc:
            yield _bug(exc)

    def _finish(
        self,
        task: _Task,
        rep: _Replica,
        request: TaskRequest,
        ev: TokenEvent,
        t0: float,
        first_token_at: float | None,
    ) -> None:
        if ev.kind == "error":
            self._narrate_error(task, ev.data)
            return
        tokens_out = ev.data.get("tokens_out")
        decode = ev.data.get("decode_time_ms")
        if isinstance(tokens_out, int):
            self.metrics.tokens_out(rep, tokens_out)
        if first_token_at is not None:
            self.metrics.decode(rep, request, (self._clock() - first_token_at) * 1000)
        fields = {
            "job_id": request.task_id,
            "session_id": request.session_id,
            "engine": rep.engine,
            "engine_version": rep.engine_version,
            "pool_id": rep.pool_id,
            "replica_id": rep.replica_id,
            "queue_position": None,
            "predicted_start_ms": None,
            "tokens_in": None,
            "tokens_out": tokens_out,
            "decode_time_ms": decode,
            "correlation_id": task.correlation_id,
        }
        narrate(
            ACTOR,
            "stream_end",
            rep.engine,
            f"Finishes task {request.task_id} with {tokens_out} tokens",
            **fields,
        )
        LOGGER.info("task finished", extra={"fields": fields})

    def _narrate_error(self, task: _Task, data: dict[str, Any]) -> None:
        rep = task.replica
        narrate(
            ACTOR,
            "error",
            rep.engine if rep else task.pool_id,
            f"Task {task.task_id} fails with {data.get('code')}",
            task_id=task.task_id,
            pool_id=task.pool_id,
            replica_id=rep.replica_id if rep else None,
            error_kind=data.get("code"),
            retry_after_ms=data.get("retry_after_ms"),
            correlation_id=task.correlation_id,
        )


async def _empty() -> AsyncIterator[TokenEvent]:
    return
    yield  # pragma: no cover - makes this an async generator


async def _aclose(stream: AsyncIterator[TokenEvent]) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken adapter stream must not mask the real outcome
            LOGGER.debug("adapter stream aclose failed", exc_info=True)


def _bug(exc: BaseException) -> TokenEvent:
    return TokenEvent.error(
        error_for_condition(
            UpstreamCondition.ADAPTER_BUG, redact(f"adapter raised {type(exc).__name__}: {exc}")
        )
    )


def _missing_terminal() -> TokenEvent:
    return TokenEvent.error(
        error_for_condition(
            UpstreamCondition.ADAPTER_BUG, "adapter stream ended without an end or error event"
        )
    )
