"""The in-process, fault-injecting mock adapter (ORCH-3058: it must remain and inject faults).

No network: tokens come from :func:`mock_engines.make_plan`, the same deterministic plan the mock
engines render, so the cross-dialect oracle holds for this adapter too (same prompt, seed and
knobs → the same token texts and stop reason as every HTTP adapter against its mock engine).

Faults use the mock engines' catalogue IDs and ``<id>[;k=v;first=N;rate=P]`` syntax
(:class:`mock_engines.FaultRule`). Each is translated into the *event-level outcome* a correct
HTTP adapter produces for it (DESIGN.md mapping table), so the harness can exercise an
orchestrator's handling without sockets:

============================  ===================================================================
fault                         outcome
============================  ===================================================================
http.400 / http.422           ``error`` INVALID_PARAMS, not retriable, nothing before it
http.401                      ``error`` INTERNAL (auth), not retriable
http.404                      ``error`` POOL_UNAVAILABLE, not retriable
http.500                      ``error`` WORKER_RESET, retriable
http.503, engine.loading,     ``error`` POOL_UNAVAILABLE retriable — after the same pre-first-byte
engine.overload,              retries an HTTP adapter makes (``first=N`` lets a retry succeed);
conn.port_closed              ``http.429_retry_after`` adds ``retry_after_ms`` (param ``seconds``)
http.429_retry_after
conn.accept_then_close        ``error`` WORKER_RESET retriable (no retry: the request may have
                              reached the engine)
conn.slow_headers             ``started`` after ``delay_ms``; DECODE_TIMEOUT when that exceeds the
                              first-byte timeout
stall.before_first_byte       silence before the first token (DECODE_TIMEOUT past the timeout)
stall.midstream               silence after ``after_events`` tokens (DECODE_TIMEOUT past the
                              inter-chunk timeout, else the stream continues)
midstream.disconnect          ``after_events`` tokens then WORKER_RESET
midstream.disconnect_bytes    the tokens that fit in ``after_bytes`` UTF-8 bytes, then WORKER_RESET
midstream.cut_utf8            tokens before the first multi-byte character, then WORKER_RESET
frame.missing_terminal        every token, then WORKER_RESET (EOF before the terminal frame)
frame.malformed_json,         ``after_events`` tokens then ``error`` INTERNAL (protocol
frame.duplicate_index,        violation), not retriable
frame.out_of_order_index,
frame.oversized
stream.error_event            ``after_events`` tokens then ``error`` WORKER_RESET retriable
                              (an engine error without a more specific type)
http.wrong_content_type       ``error`` INTERNAL (protocol violation) before ``started``
frame.split_utf8,             benign: the normal stream
frame.split_every_byte,
stream.keepalive_flood
============================  ===================================================================

Faults are configured engine-wide (constructor ``faults=`` or :meth:`MockAdapter.set_faults`) or
per request (``TaskRequest.extra["fault"]``, a string or list of strings); the per-request one
wins, as the ``X-Mock-Fault`` header does on the mock engines. Cancellation, ``deadline_ms`` and
the terminal-event rules are the same as the HTTP adapters' (``adapters._base``).
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Final

import anyio

from llorch_conformance.mock_engines import FaultRule, fault_outcome

from ._observability import AdapterMetrics, log_event
from .api import (
    Capabilities,
    DeterminismLevel,
    InvalidTaskRequest,
    TaskRequest,
    TokenEvent,
    UpstreamCondition,
    WorkerError,
    WorkerHealth,
    WorkerProps,
    Workload,
    error_for_condition,
)
from .http_util import HttpClientConfig, RetryPolicy, RetryTimeline, retry_async

__all__ = ["MOCK_FAULT_OUTCOMES", "MockAdapter"]

_LOG = logging.getLogger("llorch.adapters.mock")


def _outcomes() -> Mapping[str, str]:
    from llorch_conformance.mock_engines import FAULTS

    return {f.id: f.outcome(FaultRule.parse(f.id)).summary for f in FAULTS}


#: Fault id → one-line outcome (the table above as data, for reports and ``list`` commands),
#: read from the fault objects (``mock_engines.Fault.outcome``).
MOCK_FAULT_OUTCOMES: Final[Mapping[str, str]] = _outcomes()


def _parse_rules(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.append(item if isinstance(item, FaultRule) else FaultRule.parse(str(item)))
    return out


class _Rule:
    """An engine-wide rule with its ``first``/``rate`` counters (seeded, deterministic)."""

    __slots__ = ("applied", "rng", "rule")

    def __init__(self, rule: Any, seed: int, position: int) -> None:
        self.rule = rule
        self.applied = 0
        digest = hashlib.sha256(f"mock-adapter|{seed}|{position}|{rule}".encode()).digest()
        self.rng = random.Random(int.from_bytes(digest[:8], "big"))

    def select(self) -> bool:
        rule = self.rule
        if rule.first is not None and self.applied >= rule.first:
            return False
        if rule.rate is not None and self.rng.random() >= rule.rate:
            return False
        self.applied += 1
        return True


class _NoRetry(Exception):
    """A pre-stream error an HTTP adapter would not retry (it leaves ``retry_async`` at once)."""

    def __init__(self, error: WorkerError) -> None:
        super().__init__(error.message)
        self.error = error


class _MockTask:
    __slots__ = ("cancelled", "scope")

    def __init__(self) -> None:
        self.cancelled = False
        self.scope: anyio.CancelScope | None = None

    def is_cancelled(self) -> bool:
        return self.cancelled


class MockAdapter:
    """Deterministic in-process adapter with fault injection.

    ``base_url`` is accepted (and ignored) so the mock fits the ``(base_url, **config)``
    factory shape of :data:`adapters.BUILTIN_ADAPTERS`.
    """

    engine = "mock"

    def __init__(
        self,
        base_url: str = "mock://local",
        *,
        seed: int = 0,
        faults: Iterable[Any] = (),
        engine_version: str = "mock-1.0.0",
        ctx_max: int = 4096,
        slots: int = 4,
        token_delay_ms: float = 0.0,
        ready: bool = True,
        http: HttpClientConfig | None = None,
        retry: RetryPolicy | None = None,
        pool_id: str = "default",
        replica_id: str = "r0",
        sampler_profile_version: str | None = "v1",
        metrics: AdapterMetrics | None = None,
        logger: logging.Logger | None = None,
        **_ignored: Any,
    ) -> None:
        self.base_url = base_url
        self.seed = seed
        self._engine_version = engine_version
        self.ctx_max = ctx_max
        self.slots = slots
        self.token_delay_s = max(0.0, token_delay_ms) / 1000.0
        self.ready = ready
        self.http_config = http if http is not None else HttpClientConfig()
        self.retry_policy = retry if retry is not None else RetryPolicy()
        self.pool_id = pool_id
        self.replica_id = replica_id
        self.sampler_profile_version = sampler_profile_version
        self.metrics = metrics if metrics is not None else AdapterMetrics()
        self.logger = logger if logger is not None else _LOG
        self._rules: list[_Rule] = []
        self._tasks: dict[str, _MockTask] = {}
        self.last_retry_timeline = RetryTimeline()
        self.set_faults(faults)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # -- configuration --------------------------------------------------------------------
    def set_faults(self, faults: Iterable[Any]) -> None:
        """Replace the engine-wide fault rules (strings or ``FaultRule``; counters restart)."""
        self._rules = [_Rule(r, self.seed, n) for n, r in enumerate(_parse_rules(faults))]

    def _fault_for(self, request: TaskRequest) -> Any | None:
        raw = request.extra.get("fault")
        if raw:
            items = [raw] if isinstance(raw, str) else list(raw)
            rules = _parse_rules(items)
            if rules:
                return rules[0]
        for state in self._rules:
            if state.select():
                return state.rule
        return None

    # -- contract -------------------------------------------------------------------------
    async def health(self) -> WorkerHealth:
        """Ready unless told otherwise, or while an engine-wide ``engine.loading`` /
        ``conn.port_closed`` rule still has work to do (endless, or ``first=N`` not used up):
        an HTTP adapter would see the engine loading (or not listening) then, too."""
        live, ready = True, self.ready
        for state in self._rules:
            rule = state.rule
            outcome = fault_outcome(rule)
            if outcome.ready or rule.rate is not None:
                continue
            if rule.first is None or state.applied < rule.first:
                ready = False
                live = live and outcome.live
        return WorkerHealth(live=live, ready=ready)

    async def props(self) -> WorkerProps:
        return WorkerProps(slots_total=self.slots, slots_free=max(0, self.slots - len(self._tasks)))

    async def capabilities(self) -> Capabilities:
        return Capabilities(
            engine=self.engine,
            engine_version=self._engine_version,
            sampler_profile_version=self.sampler_profile_version,
            ctx_max=self.ctx_max,
            max_tokens_out=self.ctx_max,
            slots=self.slots,
            supported_workloads=("completion",),
            features=("seed", "stop", "faults", "cancel:close"),
        )

    async def engine_version(self) -> str:
        return self._engine_version

    async def aclose(self) -> None:
        for task_id in list(self._tasks):
            await self.cancel(task_id)

    async def __aenter__(self) -> MockAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def cancel(self, task_id: str) -> None:
        task = self._tasks.get(task_id)
        if task is None or task.cancelled:
            return
        task.cancelled = True
        if task.scope is not None:
            task.scope.cancel()
        log_event(
            self.logger,
            logging.INFO,
            "cancel",
            "Cancel requested; mock stream stopped",
            job_id=task_id,
            engine=self.engine,
            engine_version=self._engine_version,
            pool_id=self.pool_id,
            replica_id=self.replica_id,
        )

    def submit(self, request: TaskRequest) -> AsyncIterator[TokenEvent]:
        if request.workload is not Workload.COMPLETION:
            raise InvalidTaskRequest(
                "workload", "the mock adapter streams completions only", str(request.workload)
            )
        if request.max_tokens > request.ctx:
            raise InvalidTaskRequest(
                "max_tokens", f"must not exceed ctx ({request.ctx})", request.max_tokens
            )
        if request.ctx > self.ctx_max:
            raise InvalidTaskRequest(
                "ctx", f"exceeds the engine's context window ({self.ctx_max})", request.ctx
            )
        if request.task_id in self._tasks:
            raise InvalidTaskRequest(
                "task_id", "is already in flight on this adapter", request.task_id
            )
        fault = self._fault_for(request)
        return self._run(request, fault)

    # -- the stream -----------------------------------------------------------------------
    def _plan(self, request: TaskRequest) -> Any:
        from llorch_conformance.mock_engines import make_plan

        strict = request.determinism is DeterminismLevel.STRICT
        stop = request.extra.get("stop") or ()
        prompt = request.prompt if request.prompt is not None else "\n".join(request.inputs or ())
        return make_plan(
            prompt,
            seed=request.seed if request.seed is not None else self.seed,
            max_tokens=request.max_tokens,
            stop=[stop] if isinstance(stop, str) else list(stop),
            temperature=0.0 if strict else None,
            top_p=1.0 if strict else None,
        )

    async def _sleep(self, task: _MockTask, seconds: float, deadline: float) -> bool:
        """Sleep unless cancelled or past the deadline; False when interrupted."""
        if seconds <= 0:
            return not task.is_cancelled() and anyio.current_time() < deadline
        with anyio.CancelScope(deadline=min(deadline, anyio.current_time() + seconds)) as scope:
            task.scope = scope
            try:
                await anyio.sleep_forever()
            finally:
                task.scope = None
        return not task.is_cancelled() and anyio.current_time() < deadline

    def _labels(self, request: TaskRequest) -> dict[str, object]:
        return {
            "engine": self.engine,
            "engine_version": self._engine_version,
            "pool_id": self.pool_id,
            "replica_id": self.replica_id,
            "priority": str(request.priority),
        }

    def _log(
        self, level: int, action: str, human: str, request: TaskRequest, **fields: Any
    ) -> None:
        log_event(
            self.logger,
            level,
            action,
            human,
            job_id=request.task_id,
            session_id=request.session_id,
            engine=self.engine,
            engine_version=self._engine_version,
            pool_id=self.pool_id,
            replica_id=self.replica_id,
            **fields,
        )

    async def _pre_stream(
        self, request: TaskRequest, fault: Any, timeline: RetryTimeline
    ) -> tuple[WorkerError | None, Any]:
        """The outcome before the first byte, with the same retries an HTTP adapter makes.

        Every retry draws the fault again, as a new HTTP request would (``first=N`` ends, a
        per-request fault stays). Returns the error (or None) and the fault in effect.
        """
        current: list[Any] = [fault]

        async def op(attempt: int) -> None:
            if attempt > 1:
                current[0] = self._fault_for(request)
            outcome = fault_outcome(current[0])
            err = outcome.error
            if err is None:
                return
            if not outcome.retried:
                raise _NoRetry(err)
            raise err

        try:
            await retry_async(op, self.retry_policy, idempotent=True, timeline=timeline)
        except _NoRetry as wrapped:
            return wrapped.error, current[0]
        except WorkerError as err:
            return err, current[0]
        return None, current[0]

    async def _run(self, request: TaskRequest, fault: Any) -> AsyncIterator[TokenEvent]:
        task = _MockTask()
        self._tasks[request.task_id] = task
        t0 = anyio.current_time()
        deadline = t0 + request.deadline_ms / 1000.0
        labels = self._labels(request)
        fid: str | None = fault.id if fault is not None else None
        timeline = RetryTimeline()
        self.last_retry_timeline = timeline
        self._log(
            logging.INFO,
            "submit",
            f"Submitting a completion of up to {request.max_tokens} tokens",
            request,
            fault=fid,
        )
        emitted = 0
        t_first: float | None = None
        try:
            with anyio.CancelScope(deadline=deadline) as pre_scope:
                task.scope = pre_scope
                err: WorkerError | None = None
                try:
                    err, fault = await self._pre_stream(request, fault, timeline)
                finally:
                    task.scope = None
            outcome = fault_outcome(fault)
            stall = outcome.stall
            if pre_scope.cancelled_caught and not task.is_cancelled():
                err = error_for_condition(
                    UpstreamCondition.DEADLINE, "deadline_ms exceeded before the stream started"
                )
            if task.is_cancelled():
                yield self._started(request)
                yield self._cancelled(request, labels, 0, None)
                return
            if err is not None:
                self.metrics.rejected(self.engine, err.code.value)
                yield self._error(request, err, 0)
                return
            if stall is not None and stall.where != "after_tokens":
                # A late head, or headers but no body byte: an HTTP adapter has no good frame
                # yet, so no started.
                failure = await self._stall(
                    task, stall.delay_s, self.http_config.first_byte_timeout_s, deadline, request, 0
                )
                if failure is not None:
                    if stall.where == "first_byte":
                        self.metrics.rejected(self.engine, failure.code.value)
                    yield self._error(request, failure, 0)
                    return
            plan = self._plan(request)
            self.metrics.started(labels)
            yield self._started(request, plan.prompt_tokens)
            tokens: Sequence[str] = plan.tokens
            stop_at, after_error = outcome.end(tokens)
            stall_after = -1
            if stall is not None and stall.where == "after_tokens":
                stall_after = stall.after
            for n, text in enumerate(tokens[:stop_at]):
                if n == stall_after:
                    failure = await self._stall(
                        task,
                        stall.delay_s if stall is not None else 0.0,
                        self.http_config.inter_chunk_timeout_s,
                        deadline,
                        request,
                        emitted,
                    )
                    if failure is not None:
                        yield self._error(request, failure, emitted)
                        return
                if self.token_delay_s and not await self._sleep(task, self.token_delay_s, deadline):
                    if task.is_cancelled():
                        break
                    yield self._error(request, _deadline(request, emitted), emitted)
                    return
                if task.is_cancelled():
                    break
                if anyio.current_time() >= deadline:
                    yield self._error(request, _deadline(request, emitted), emitted)
                    return
                if t_first is None:
                    t_first = anyio.current_time()
                yield TokenEvent.token(text, emitted)
                emitted += 1
            if task.is_cancelled():
                yield self._cancelled(request, labels, emitted, t_first)
                return
            if after_error is not None:
                yield self._error(request, after_error, emitted)
                return
            t_end = anyio.current_time()
            first_ms = None if t_first is None else (t_first - t0) * 1000.0
            decode_ms = 0.0 if t_first is None else (t_end - t_first) * 1000.0
            self.metrics.finished(
                labels,
                tokens_in=plan.prompt_tokens,
                tokens_out=emitted,
                first_token_ms=first_ms,
                decode_ms=decode_ms,
            )
            metrics: dict[str, Any] = {"latency_decode_ms": int(decode_ms), "tokens_out": emitted}
            if first_ms is not None:
                metrics["latency_first_token_ms"] = int(first_ms)
            yield TokenEvent.metrics(**metrics)
            end: dict[str, Any] = {
                "stop_reason": plan.stop_reason,
                "engine_stop_reason": plan.stop_reason,
                "usage": {
                    "prompt_tokens": plan.prompt_tokens,
                    "completion_tokens": plan.completion_tokens,
                },
            }
            if plan.stop_string:
                end["stop_string"] = plan.stop_string
            self._log(
                logging.INFO,
                "end",
                f"Stream finished ({plan.stop_reason}) after {emitted} tokens",
                request,
                tokens_in=plan.prompt_tokens,
                tokens_out=emitted,
                decode_time_ms=int(decode_ms),
            )
            yield TokenEvent.end(emitted, int(decode_ms), **end)
        finally:
            if self._tasks.get(request.task_id) is task:
                del self._tasks[request.task_id]

    async def _stall(
        self,
        task: _MockTask,
        delay_s: float,
        timeout_s: float,
        deadline: float,
        request: TaskRequest,
        emitted: int,
    ) -> WorkerError | None:
        if not await self._sleep(task, min(delay_s, timeout_s), deadline):
            if task.is_cancelled():
                return None
            return _deadline(request, emitted)
        if delay_s > timeout_s:
            return error_for_condition(
                UpstreamCondition.TIMEOUT,
                f"no stream bytes for {timeout_s:g} s after {emitted} tokens",
            )
        return None

    def _started(self, request: TaskRequest, tokens_in: int | None = None) -> TokenEvent:
        event = TokenEvent.started(
            engine=self.engine,
            engine_version=self._engine_version,
            seed=request.seed,
            sampler_profile_version=request.sampler_profile_version or self.sampler_profile_version,
        )
        if tokens_in is not None:
            event.data["tokens_in"] = tokens_in
        return event

    def _cancelled(
        self,
        request: TaskRequest,
        labels: Mapping[str, object],
        emitted: int,
        t_first: float | None,
    ) -> TokenEvent:
        decode_ms = 0 if t_first is None else int((anyio.current_time() - t_first) * 1000)
        self.metrics.canceled(labels, "client")
        self._log(
            logging.INFO,
            "end",
            f"Stream cancelled by the caller after {emitted} tokens",
            request,
            tokens_out=emitted,
        )
        return TokenEvent.end(emitted, decode_ms, stop_reason="cancelled")

    def _error(self, request: TaskRequest, err: WorkerError, emitted: int) -> TokenEvent:
        self._log(
            logging.WARNING,
            "error",
            f"Stream failed with {err.code.value}: {err.message}",
            request,
            tokens_out=emitted,
            error_kind=err.kind.value,
            retriable=err.retriable,
            retry_after_ms=err.retry_after_ms,
        )
        return TokenEvent.error(err)


def _deadline(request: TaskRequest, emitted: int) -> WorkerError:
    return error_for_condition(
        UpstreamCondition.DEADLINE,
        f"deadline_ms {request.deadline_ms} exceeded after {emitted} tokens",
    )
