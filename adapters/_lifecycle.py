"""The one stream lifecycle of every adapter: open (with retries) → read frames → finish.

An adapter's ``submit`` hands :meth:`StreamAdapter._run` a :class:`FrameSource` — the HTTP
adapters one that reads their engine's SSE body (``adapters._base``), the mock adapter one that
renders its deterministic plan and fault outcomes (``adapters.mock``) — and everything else is
written once, here, as a chain of short steps in the manner of httpx's ``send`` →
``_send_handling_auth`` → ``_send_handling_redirects`` → ``_send_single_request``:

``_run``
    registers the task, then: ``_open_step`` → ``_read`` → ``_settle`` → ``_close`` →
    ``_closing_events``, and always ``_forget`` (the task leaves the registry, the source is
    closed, shielded from cancellation).
``_open_step``
    the source's ``open`` (retries before the first byte live there) inside one cancel scope on
    the task deadline, so ``cancel`` and ``deadline_ms`` interrupt it at once.
``_read``
    frames → ``token`` events with the adapter's own index ``i`` counting 0, 1, 2, ...; one cancel
    scope per *read* (never across a ``yield``), bounded by the first-byte timeout for the first
    read and the inter-chunk timeout after it, and by the deadline; ``started`` at the first
    well-formed frame.
``_settle``
    after the last frame: a body that ended (EOF) must have ended properly (the source judges);
    after a terminal frame the source may read the little that follows (connection reuse).
``_closing_events``
    exactly one terminal event: ``end`` (``stop_reason: "cancelled"`` after a cancel), or the
    mapped ``error``; ``metrics`` before a normal ``end``.

Every failure after submission becomes that one terminal ``error`` event built from the mapping
table, never an exception; an exception that is not a :class:`WorkerError` is the table's
``ADAPTER_BUG`` row, logged with its traceback. Counts an engine reports (``tokens_in``,
``usage``) are checked before they are passed on: a negative count, or one beyond ``int32`` (the
contract's type of ``tokens_out``), is the engine's protocol violation (PROTOCOL row), never a
number in ``started`` or ``end.usage`` (issue 16 item 15).

Hot path: per token one read step of the source, one ``parse`` and one ``yield``; no logging,
metric update or clock read per token (the clock is read once, for the first token).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar, Final, Self

import anyio

from ._observability import AdapterMetrics, log_event
from .api import (
    InvalidTaskRequest,
    ProtocolError,
    TaskRequest,
    TokenEvent,
    UpstreamCondition,
    WorkerError,
    Workload,
    error_for_condition,
)
from .http_util import HttpClientConfig, RetryPolicy, RetryTimeline, redact

__all__ = ["FrameSource", "StreamAdapter", "StreamRun", "StreamState", "protocol_error"]

#: How many recent per-task retry timelines are kept as evidence.
_TIMELINES_KEPT: Final = 256
#: Upper bound for ``cancel`` waiting for the reader to close the upstream response.
_CANCEL_WAIT_S: Final = 0.5

#: The largest token count passed on (``int32``, the contract's type of ``tokens_out``).
MAX_COUNT: Final = 2**31 - 1

_STOP_NORMAL: Final[Mapping[str, str]] = {
    # llama.cpp stop_type
    "limit": "length",
    "eos": "eos",
    "word": "stop",
    # OpenAI / vLLM finish_reason
    "length": "length",
    "stop": "stop",
    # TGI finish_reason
    "eos_token": "eos",
    "stop_sequence": "stop",
}


def protocol_error(message: str) -> WorkerError:
    """The table's PROTOCOL row (``ADAPTER``/``INTERNAL``, not retriable)."""
    return error_for_condition(UpstreamCondition.PROTOCOL, message)


class StreamState:
    """Mutable per-stream facts the frame parser fills in while frames arrive.

    Slotted because it is touched once per frame on the hot path.
    """

    __slots__ = (
        "completion_tokens",
        "done",
        "engine_stop_reason",
        "extra",
        "last_index",
        "prompt_tokens",
        "stop_reason",
        "stop_string",
    )

    def __init__(self) -> None:
        self.done = False
        self.stop_reason: str | None = None
        self.engine_stop_reason: str | None = None
        self.stop_string: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.last_index: int | None = None
        self.extra: dict[str, Any] = {}

    def finished(self) -> bool:
        # A method so the reader re-reads the flag the parser sets (no stale type narrowing).
        return self.done

    def check_index(self, index: object) -> None:
        """Upstream indices must rise by exactly one (a repeat or reversal: protocol error)."""
        if isinstance(index, bool) or not isinstance(index, int):
            return
        last = self.last_index
        if last is not None and index != last + 1:
            kind = "repeated" if index == last else "out of order"
            raise protocol_error(f"upstream token index {kind}: {index} after {last}")
        self.last_index = index

    def set_stop(self, raw: str | None) -> None:
        if raw is None:
            return
        self.engine_stop_reason = raw
        self.stop_reason = _STOP_NORMAL.get(raw, raw)


class FrameSource:
    """Where one stream's frames come from; the only part of the lifecycle an adapter writes.

    ``open`` reaches the engine (retrying what may be retried before the first byte) and returns
    ``None`` when the body can be read, or the terminal :class:`WorkerError`. ``read`` returns
    the next batch of frames (possibly empty) or ``None`` at the end of the body; it runs inside
    the lifecycle's cancel scope and may raise a :class:`WorkerError`. ``parse`` turns one frame
    into the token text (``None``/empty: no token) and fills in the :class:`StreamState` (sets
    ``done`` at the terminal frame). ``at_eof`` judges a body that ended without a terminal
    frame; ``finish`` reads what follows a terminal frame; ``aclose`` releases the upstream and is
    idempotent (``cancel`` calls it when the reader is parked at a ``yield``).
    """

    #: Extra fields for the ``submit`` log line (e.g. the mock's fault id).
    log_fields: Mapping[str, object] = {}

    async def open(self, run: StreamRun) -> WorkerError | None:
        raise NotImplementedError

    async def read(self) -> Sequence[Any] | None:
        raise NotImplementedError

    def parse(self, frame: Any, st: StreamState) -> str | None:
        raise NotImplementedError

    def at_eof(self, st: StreamState, emitted: int) -> WorkerError | None:
        if st.done:
            return None
        return error_for_condition(
            UpstreamCondition.RESET,
            f"stream ended before its terminal frame after {emitted} tokens",
        )

    async def finish(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class _Task:
    __slots__ = ("cancelled", "closed", "scope", "source", "task_id")

    def __init__(self, task_id: str, source: FrameSource) -> None:
        self.task_id = task_id
        self.source = source
        self.scope: anyio.CancelScope | None = None
        self.cancelled = False
        self.closed = anyio.Event()

    def is_cancelled(self) -> bool:
        # A method, not the attribute: another task flips it while the reader is suspended,
        # which a type checker's narrowing of the attribute cannot know.
        return self.cancelled


@dataclasses.dataclass(slots=True, eq=False)
class StreamRun:
    """The facts of one stream while it runs (the lifecycle's and the source's shared state)."""

    request: TaskRequest
    task: _Task
    timeline: RetryTimeline
    labels: dict[str, object]
    t0: float
    deadline: float
    version: str
    st: StreamState = dataclasses.field(default_factory=StreamState)
    emitted: int = 0
    started: bool = False
    t_first: float | None = None
    eof: bool = False
    cancelled: bool = False


class StreamAdapter:
    """What every adapter shares: configuration, the task registry, ``cancel`` and the stream.

    Subclasses build a :class:`FrameSource` per task in ``submit`` and return
    ``self._run(request, source)``.
    """

    engine: ClassVar[str] = "unknown"
    #: The ``cancel`` log line's text.
    cancel_note: ClassVar[str] = "Cancel requested; upstream stream closed"

    def _init_stream(
        self,
        *,
        http: HttpClientConfig,
        retry: RetryPolicy | None,
        pool_id: str,
        replica_id: str,
        sampler_profile_version: str | None,
        metrics: AdapterMetrics | None,
        logger: logging.Logger,
        secrets: tuple[str, ...] = (),
        model: str | None = None,
    ) -> None:
        self.http_config = http
        self.retry_policy = retry if retry is not None else RetryPolicy()
        self.pool_id = pool_id
        self.replica_id = replica_id
        self.sampler_profile_version = sampler_profile_version
        self.metrics = metrics if metrics is not None else AdapterMetrics()
        self.logger = logger
        self.model = model
        self._secrets = secrets
        self._engine_version: str | None = None
        self._ctx_max: int | None = None
        self._tasks: dict[str, _Task] = {}
        self._timelines: OrderedDict[str, RetryTimeline] = OrderedDict()
        #: Timeline of the most recent operation (submit or control GET), as proof evidence.
        self.last_retry_timeline: RetryTimeline = RetryTimeline()

    # -- registry and cancel ----------------------------------------------------------------
    async def aclose(self) -> None:
        """Cancel what is in flight."""
        for task_id in list(self._tasks):
            await self.cancel(task_id)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def retry_timeline(self, task_id: str) -> RetryTimeline | None:
        """The retry evidence of a recent task (the last 256 are kept)."""
        return self._timelines.get(task_id)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    async def cancel(self, task_id: str) -> None:
        """Stop the task: no token after this returns; upstream closed; idempotent; unknown ids ok."""
        task = self._tasks.get(task_id)
        if task is None or task.cancelled:
            return
        task.cancelled = True
        scope = task.scope
        if scope is not None:
            # The reader is inside a read: interrupt it; it closes the source itself.
            scope.cancel()
            with anyio.move_on_after(_CANCEL_WAIT_S):
                await task.closed.wait()
        else:
            # The reader is parked at a yield (or gone): nobody reads, so close it from here.
            await task.source.aclose()
        log_event(
            self.logger,
            logging.INFO,
            "cancel",
            self.cancel_note,
            secrets=self._secrets,
            job_id=task_id,
            engine=self.engine,
            engine_version=self._engine_version,
            pool_id=self.pool_id,
            replica_id=self.replica_id,
        )

    # -- hooks ------------------------------------------------------------------------------
    def _validate(self, request: TaskRequest) -> str:
        """Engine-independent checks (raising :class:`InvalidTaskRequest`); returns the prompt."""
        if request.workload is not Workload.COMPLETION:
            raise InvalidTaskRequest(
                "workload",
                f"the {self.engine} adapter streams completions only",
                str(request.workload),
            )
        if request.max_tokens > request.ctx:
            raise InvalidTaskRequest(
                "max_tokens", f"must not exceed ctx ({request.ctx})", request.max_tokens
            )
        if self._ctx_max is not None and request.ctx > self._ctx_max:
            raise InvalidTaskRequest(
                "ctx", f"exceeds the engine's context window ({self._ctx_max})", request.ctx
            )
        if request.task_id in self._tasks:
            raise InvalidTaskRequest(
                "task_id", "is already in flight on this adapter", request.task_id
            )
        if request.prompt is not None:
            return request.prompt
        return "\n".join(request.inputs or ())

    def _finalize(self, st: StreamState, request: TaskRequest, emitted: int) -> None:
        """Last look at the state before ``end`` (e.g. infer a stop reason the wire lacks)."""

    def _log(
        self, level: int, action: str, human: str, request: TaskRequest, **fields: Any
    ) -> None:
        log_event(
            self.logger,
            level,
            action,
            human,
            secrets=self._secrets,
            job_id=request.task_id,
            session_id=request.session_id,
            engine=self.engine,
            engine_version=self._engine_version,
            pool_id=self.pool_id,
            replica_id=self.replica_id,
            **(
                {"correlation_id": request.extra["correlation_id"]}
                if "correlation_id" in request.extra
                else {}
            ),
            **fields,
        )

    # -- the lifecycle ----------------------------------------------------------------------
    async def _run(self, request: TaskRequest, source: FrameSource) -> AsyncIterator[TokenEvent]:
        """open → read → settle → one terminal event; see the module docstring."""
        run = self._begin(request, source)
        try:
            failure: WorkerError | None = None
            try:
                failure = await self._open_step(run, source)
                if failure is None and not run.cancelled:
                    async for event in self._read(run, source):
                        yield event
                    failure = await self._settle(run, source)
            except Exception as exc:
                failure = self._failure_of(run, exc)
            await source.aclose()  # upstream closed before the caller sees the terminal event
            run.task.closed.set()
            try:
                closing = self._closing_events(run, failure)
            except Exception as exc:  # e.g. a dialect's _finalize: still one terminal event
                err = self._failure_of(run, exc)
                closing = [self._fail(run.request, err, run.emitted, run.started)]
            for event in closing:
                yield event
        finally:
            await self._forget(run)

    def _begin(self, request: TaskRequest, source: FrameSource) -> StreamRun:
        task = _Task(request.task_id, source)
        self._tasks[request.task_id] = task
        timeline = RetryTimeline()
        self.last_retry_timeline = timeline
        self._timelines[request.task_id] = timeline
        while len(self._timelines) > _TIMELINES_KEPT:
            self._timelines.popitem(last=False)
        t0 = anyio.current_time()
        labels: dict[str, object] = {
            "engine": self.engine,
            "engine_version": self._engine_version,
            "pool_id": self.pool_id,
            "replica_id": self.replica_id,
            "priority": str(request.priority),
        }
        self._log(
            logging.INFO,
            "submit",
            f"Submitting a completion of up to {request.max_tokens} tokens",
            request,
            **source.log_fields,
        )
        return StreamRun(
            request=request,
            task=task,
            timeline=timeline,
            labels=labels,
            t0=t0,
            deadline=t0 + request.deadline_ms / 1000.0,
            version=self._engine_version or "unknown",
        )

    async def _open_step(self, run: StreamRun, source: FrameSource) -> WorkerError | None:
        """The source's ``open`` under the deadline and ``cancel``; retries are logged once."""
        failure: WorkerError | None = None
        with anyio.CancelScope(deadline=run.deadline) as scope:
            run.task.scope = scope
            try:
                failure = await source.open(run)
            finally:
                run.task.scope = None
        if len(run.timeline):
            # OC-ADAPT-OAI-6030: retries and back-off are logged (once, not per attempt).
            self._log(
                logging.INFO,
                "retry",
                f"Retried {len(run.timeline)} time(s) before the stream started",
                run.request,
                retries=run.timeline.to_list(),
            )
        if run.task.is_cancelled():
            run.cancelled = True
            return None
        if scope.cancelled_caught:
            return error_for_condition(
                UpstreamCondition.DEADLINE, "deadline_ms exceeded before the stream started"
            )
        if failure is None:
            self._log(
                logging.INFO,
                "stream_start",
                "Engine accepted the task; streaming tokens",
                run.request,
            )
        return failure

    async def _read(self, run: StreamRun, source: FrameSource) -> AsyncIterator[TokenEvent]:
        """Frames → ``started`` and ``token`` events, until the terminal frame, EOF or cancel."""
        st, task, parse = run.st, run.task, source.parse
        silence_s = self.http_config.first_byte_timeout_s
        while not st.finished():
            if task.is_cancelled():
                return
            frames = await self._next_frames(run, source, silence_s)
            if task.is_cancelled():
                return
            if frames is None:
                run.eof = True
                return
            silence_s = self.http_config.inter_chunk_timeout_s
            for frame in frames:
                text = parse(frame, st)
                if not run.started:
                    # At the first good frame: the engine really started, and tokens_in is
                    # known here for engines that report it in every frame.
                    yield self._start(run)
                if text:
                    if task.is_cancelled():
                        return
                    if run.t_first is None:
                        run.t_first = anyio.current_time()
                    yield TokenEvent("token", {"t": text, "i": run.emitted})
                    run.emitted += 1
                if st.finished():
                    return

    async def _next_frames(
        self, run: StreamRun, source: FrameSource, silence_s: float
    ) -> Sequence[Any] | None:
        """One read, bounded by the silence timeout, the deadline and ``cancel``."""
        task = run.task
        frames: Sequence[Any] | None = ()
        with anyio.CancelScope(
            deadline=min(run.deadline, anyio.current_time() + silence_s)
        ) as scope:
            task.scope = scope
            try:
                frames = await source.read()
            finally:
                task.scope = None
        if scope.cancelled_caught and not task.is_cancelled():
            if anyio.current_time() >= run.deadline:
                raise error_for_condition(
                    UpstreamCondition.DEADLINE,
                    f"deadline_ms {run.request.deadline_ms} exceeded after {run.emitted} tokens",
                )
            raise error_for_condition(
                UpstreamCondition.TIMEOUT,
                f"no stream bytes for {silence_s:g} s after {run.emitted} tokens",
            )
        return frames

    async def _settle(self, run: StreamRun, source: FrameSource) -> WorkerError | None:
        """After the last frame: a cancel needs no check; an EOF must have been a proper end."""
        if run.task.is_cancelled():
            run.cancelled = True
            return None
        if run.eof:
            return source.at_eof(run.st, run.emitted)
        await source.finish()
        return None

    def _failure_of(self, run: StreamRun, exc: Exception) -> WorkerError:
        """An exception out of the lifecycle → the terminal error it stands for."""
        if isinstance(exc, WorkerError):
            return exc
        if isinstance(exc, ProtocolError):  # SSEDecodeError: oversized line/event
            return protocol_error(self.redact(str(exc))[:200])
        self.logger.exception(
            "adapter bug while streaming", extra={"llorch": {"job_id": run.request.task_id}}
        )
        return error_for_condition(
            UpstreamCondition.ADAPTER_BUG,
            self.redact(f"adapter bug: {type(exc).__name__}: {exc}")[:200],
        )

    def _closing_events(self, run: StreamRun, failure: WorkerError | None) -> list[TokenEvent]:
        """The events that end the stream: exactly one of them is terminal."""
        if run.cancelled:
            out = [] if run.started else [self._started(run.request, run.version)]
            return [*out, self._cancelled_end(run)]
        if failure is None:
            failure = _count_error(run.st)
        if failure is not None:
            return [self._fail(run.request, failure, run.emitted, run.started)]
        out = [] if run.started else [self._start(run)]  # a clean end without any frame
        return [*out, *self._finish_events(run)]

    async def _forget(self, run: StreamRun) -> None:
        task = run.task
        task.scope = None
        with anyio.CancelScope(shield=True):
            await task.source.aclose()
        task.closed.set()
        if self._tasks.get(run.request.task_id) is task:
            del self._tasks[run.request.task_id]

    # -- event builders ---------------------------------------------------------------------
    def _start(self, run: StreamRun) -> TokenEvent:
        tokens_in = run.st.prompt_tokens
        if tokens_in is not None and not _is_count(tokens_in):
            # Not a number to pass on: the stream ends, unstarted, with the engine's protocol
            # violation.
            raise _count_violation("prompt", tokens_in)
        run.started = True
        self.metrics.started(run.labels)
        return self._started(run.request, run.version, tokens_in)

    def _started(
        self, request: TaskRequest, version: str, tokens_in: int | None = None
    ) -> TokenEvent:
        data: dict[str, Any] = {
            "engine": self.engine,
            "engine_version": version,
            "seed": request.seed,
            "sampler_profile_version": request.sampler_profile_version
            or self.sampler_profile_version,
        }
        if tokens_in is not None:
            data["tokens_in"] = tokens_in
        if self.model is not None:
            data["model"] = self.model
        return TokenEvent("started", data)

    def _finish_events(self, run: StreamRun) -> list[TokenEvent]:
        """``metrics`` and ``end`` of a stream that finished normally."""
        st, emitted = run.st, run.emitted
        t_end = anyio.current_time()
        first_ms = None if run.t_first is None else (run.t_first - run.t0) * 1000.0
        decode_ms = 0.0 if run.t_first is None else (t_end - run.t_first) * 1000.0
        self.metrics.finished(
            run.labels,
            tokens_in=st.prompt_tokens,
            tokens_out=emitted,
            first_token_ms=first_ms,
            decode_ms=decode_ms,
        )
        metrics: dict[str, Any] = {"latency_decode_ms": int(decode_ms), "tokens_out": emitted}
        if first_ms is not None:
            metrics["latency_first_token_ms"] = int(first_ms)
        self._finalize(st, run.request, emitted)
        end = self._end_data(st, emitted)
        self._log(
            logging.INFO,
            "end",
            f"Stream finished ({end['stop_reason']}) after {emitted} tokens",
            run.request,
            tokens_in=st.prompt_tokens,
            tokens_out=emitted,
            decode_time_ms=int(decode_ms),
        )
        return [TokenEvent.metrics(**metrics), TokenEvent.end(emitted, int(decode_ms), **end)]

    def _end_data(self, st: StreamState, emitted: int) -> dict[str, Any]:
        data: dict[str, Any] = {"stop_reason": st.stop_reason or "eos"}
        if st.engine_stop_reason is not None:
            data["engine_stop_reason"] = st.engine_stop_reason
        if st.stop_string:
            data["stop_string"] = st.stop_string
        if st.prompt_tokens is not None or st.completion_tokens is not None:
            data["usage"] = {
                "prompt_tokens": st.prompt_tokens,
                "completion_tokens": st.completion_tokens
                if st.completion_tokens is not None
                else emitted,
            }
        return data

    def _cancelled_end(self, run: StreamRun) -> TokenEvent:
        decode_ms = 0 if run.t_first is None else int((anyio.current_time() - run.t_first) * 1000)
        self.metrics.canceled(run.labels, "client")
        self._log(
            logging.INFO,
            "end",
            f"Stream cancelled by the caller after {run.emitted} tokens",
            run.request,
            tokens_out=run.emitted,
            decode_time_ms=decode_ms,
        )
        return TokenEvent.end(run.emitted, decode_ms, stop_reason="cancelled")

    def _fail(
        self, request: TaskRequest, err: WorkerError, emitted: int, started: bool
    ) -> TokenEvent:
        """The one terminal ``error`` event; its message is redacted (an engine may echo a key)."""
        if not started:
            self.metrics.rejected(self.engine, err.code.value)
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
        data = err.to_event_data()
        data["message"] = self.redact(err.message)
        return TokenEvent("error", data)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


def _count_error(st: StreamState) -> WorkerError | None:
    """Counts the engine reported must be counts before they reach ``end.usage``."""
    for name, value in (("prompt", st.prompt_tokens), ("completion", st.completion_tokens)):
        if value is not None and not _is_count(value):
            return _count_violation(name, value)
    return None


def _count_violation(name: str, value: object) -> WorkerError:
    text = str(value) if isinstance(value, int) else repr(value)
    if len(text) > 24:
        text = f"{text[:12]}…({len(text)} characters)"
    return protocol_error(f"engine reported an impossible {name} token count: {text}")
